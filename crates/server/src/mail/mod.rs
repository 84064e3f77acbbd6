//! Mail to customers, sent once through an outbox: what each mail is ([`MailKind`]), the SMTP
//! settings (`config`), the messages themselves (`templates`), the worker that sends queued
//! mail on every node (`worker`) and the rule that mails a customer who is away when the
//! mechanic writes (`unread`). A mail is queued in the transaction of the change that causes it
//! (see `storage::QueueMail`), so nothing is mailed for a change that did not commit, and a
//! committed change is mailed even if this node stops right after.

pub mod config;
pub mod templates;
pub mod unread;
pub mod worker;

use std::sync::Arc;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use time::OffsetDateTime;
use tokio::sync::Notify;

pub use config::{MailConfigError, MailSettings};

use crate::metrics::Metrics;
use crate::storage::QueueMail;

/// The mails a customer receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// The waiver is signed and the request is offered to mechanics.
    RequestReceived,
    /// A mechanic accepted: join now.
    Accepted,
    /// The mechanic wrote while the customer was away.
    UnreadMessages,
    /// The session completed, or a participant ended it before it went live.
    Ended,
    /// Nobody accepted the request in time.
    NotAccepted,
}

impl MailKind {
    pub const ALL: [MailKind; 5] = [
        MailKind::RequestReceived,
        MailKind::Accepted,
        MailKind::UnreadMessages,
        MailKind::Ended,
        MailKind::NotAccepted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::RequestReceived => "request_received",
            MailKind::Accepted => "accepted",
            MailKind::UnreadMessages => "unread_messages",
            MailKind::Ended => "ended",
            MailKind::NotAccepted => "not_accepted",
        }
    }

    pub fn parse(text: &str) -> Option<MailKind> {
        MailKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// This node's mail: the SMTP transport, the sender, and the bell that wakes the worker when
/// this node queues mail (other nodes are woken through the database, see `worker`).
pub struct Mail {
    pub transport: AsyncSmtpTransport<Tokio1Executor>,
    pub from: Mailbox,
    wake: Arc<Notify>,
}

impl Mail {
    pub fn new(settings: &MailSettings) -> Result<Mail, MailConfigError> {
        Ok(Mail {
            transport: settings.transport()?,
            from: settings.from.clone(),
            wake: Arc::new(Notify::new()),
        })
    }

    /// What a transition passes to storage to queue `kind` with it.
    pub fn queue(kind: MailKind, at: OffsetDateTime) -> QueueMail<'static> {
        QueueMail {
            kind: kind.as_str(),
            at,
        }
    }

    /// A mail was committed to the outbox: count it and wake this node's worker.
    pub fn queued(&self, metrics: &Metrics) {
        metrics.mail_queued.inc();
        self.wake.notify_one();
    }

    pub(crate) fn bell(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
