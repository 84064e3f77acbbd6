//! The outbox worker, one per node: it claims due mail (a lease, so a node that dies mid-send
//! gives its mail back when the lease ends), renders it with a fresh single-use link, sends it,
//! and records it as sent. Failed attempts are retried with exponential backoff up to
//! `retry_max`; a permanent refusal (a 5xx answer) or a mail still unsent after a day is given up.
//!
//! The worker sleeps until a mail is due and is woken at once when this node queues one; on
//! PostgreSQL it also `LISTEN`s on the channel every commit that queues mail notifies, so any
//! node's worker takes mail queued on another. A poll every few seconds only covers a listener
//! that is reconnecting.
//!
//! Sent once: a mail is recorded as sent right after the SMTP server took it. A node that stops
//! between those two steps leaves the mail claimed; it is sent again when the lease ends, the one
//! case that gives a duplicate (at most one per crash).

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{MultiPart, SinglePart};
use lettre::AsyncTransport;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::task::AbortOnDropHandle;
use wrenchline_protocol::Session;

use super::templates::{render, MailData};
use super::MailKind;
use crate::auth;
use crate::state::AppState;
use crate::storage::{ClaimedMail, Engine, MAIL_CHANNEL};

/// How long a claim holds a mail: longer than one SMTP exchange may take (each of its commands
/// may take `SMTP_TIMEOUT`), so a slow send is never taken by another node as well.
const LEASE: time::Duration = time::Duration::minutes(5);
/// Mails claimed at once: one, so a claim's lease covers one send only.
const BATCH: i64 = 1;
/// Longest sleep without a wake-up (covers a PostgreSQL listener that is reconnecting).
const POLL: Duration = Duration::from_secs(5);
/// First retry delay; doubled per attempt up to `retry_max`.
const FIRST_RETRY: time::Duration = time::Duration::seconds(1);
/// A mail still unsent this long after it was queued is given up.
const GIVE_UP_AFTER: time::Duration = time::Duration::days(1);
/// Most messages quoted in the transcript of the mail that ends a session.
const TRANSCRIPT_MAX: i64 = 500;

/// Runs the worker until the task is aborted. `public_url` starts every link.
pub async fn run(state: AppState, public_url: String) {
    let Some(mail) = &state.mail else {
        return;
    };
    let bell = mail.bell();
    // Stops with the worker.
    let _listener = (state.store.engine() == Engine::Postgres).then(|| {
        AbortOnDropHandle::new(tokio::spawn(listen(
            state.settings.database_url.clone(),
            bell.clone(),
        )))
    });
    let mut cleaned = OffsetDateTime::UNIX_EPOCH;
    loop {
        send_due(&state, &public_url).await;
        let now = state.now();
        if now - cleaned > time::Duration::hours(1) {
            cleaned = now;
            if let Err(e) = state
                .store
                .forget_old_mail(now - time::Duration::days(1))
                .await
            {
                tracing::warn!(error = %e, "forgetting sent mail failed");
            }
        }
        let wait = match state.store.next_mail_due().await {
            Ok(Some(due)) => (due - state.now())
                .clamp(
                    time::Duration::milliseconds(50),
                    time::Duration::try_from(POLL).unwrap_or_default(),
                )
                .try_into()
                .unwrap_or(POLL),
            Ok(None) => POLL,
            Err(e) => {
                tracing::warn!(error = %e, "reading the mail queue failed");
                POLL
            }
        };
        tokio::select! {
            () = bell.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Wakes the worker whenever any node commits mail (PostgreSQL `LISTEN`), reconnecting after
/// a lost connection.
async fn listen(database_url: String, bell: Arc<Notify>) {
    loop {
        match sqlx::postgres::PgListener::connect(&database_url).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(MAIL_CHANNEL).await {
                    tracing::warn!(error = %e, "listening for queued mail failed");
                } else {
                    // Mail may have been queued while the listener was away.
                    bell.notify_one();
                    loop {
                        match listener.recv().await {
                            Ok(_) => bell.notify_one(),
                            Err(e) => {
                                tracing::warn!(error = %e, "the queued-mail listener lost its connection");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for queued mail"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Claims and sends mail until none is due.
async fn send_due(state: &AppState, public_url: &str) {
    loop {
        let claimed = match state.store.claim_mail(state.now(), LEASE, BATCH).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "claiming queued mail failed");
                return;
            }
        };
        if claimed.is_empty() {
            return;
        }
        for mail in claimed {
            if let Err(e) = deliver(state, public_url, &mail).await {
                tracing::warn!(error = %e, mail_id = %mail.id, "recording a mail attempt failed");
            }
        }
    }
}

/// What became of one attempt.
enum Attempt {
    Sent,
    /// Worth trying again later.
    Failed(String),
    /// Never going to work (the SMTP server refused it for good, or there is nothing to send).
    Refused(String),
}

async fn deliver(
    state: &AppState,
    public_url: &str,
    claimed: &ClaimedMail,
) -> Result<(), crate::storage::StoreError> {
    let now = state.now();
    let attempt = attempt(state, public_url, claimed).await;
    let metrics = &state.metrics;
    if claimed.attempts > 1 {
        metrics.mail_retried.inc();
    }
    match attempt {
        Attempt::Sent => {
            metrics.mail_sent.inc();
            if !state.store.mail_sent(claimed, state.now()).await? {
                tracing::warn!(mail_id = %claimed.id, "a mail was sent after its claim ran out");
            }
            tracing::info!(mail_id = %claimed.id, kind = %claimed.kind, session_id = %claimed.session_id, "mail sent");
        }
        Attempt::Failed(error) if now - claimed.created_at < GIVE_UP_AFTER => {
            let retry_max = state
                .settings
                .mail
                .as_ref()
                .map_or(super::config::DEFAULT_RETRY_MAX, |m| m.retry_max);
            let delay = backoff(claimed.attempts, retry_max);
            tracing::warn!(mail_id = %claimed.id, attempt = claimed.attempts, retry_in = ?delay, %error, "sending a mail failed");
            state.store.mail_retry(claimed, now + delay, &error).await?;
        }
        Attempt::Failed(error) | Attempt::Refused(error) => {
            metrics.mail_failed.inc();
            tracing::error!(mail_id = %claimed.id, attempt = claimed.attempts, %error, "a mail was given up");
            state.store.mail_failed(claimed, now, &error).await?;
        }
    }
    Ok(())
}

/// The delay before attempt `attempts + 1`: 1 s, 2 s, 4 s… up to `max`.
pub fn backoff(attempts: i64, max: time::Duration) -> time::Duration {
    let exponent = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    (FIRST_RETRY * 2i32.pow(exponent.min(16))).min(max)
}

async fn attempt(state: &AppState, public_url: &str, claimed: &ClaimedMail) -> Attempt {
    let Some(mail) = &state.mail else {
        return Attempt::Failed("mail is not configured".into());
    };
    let Some(kind) = MailKind::parse(&claimed.kind) else {
        return Attempt::Refused(format!("unknown mail kind {}", claimed.kind));
    };
    let to = match claimed.recipient.parse() {
        Ok(to) => to,
        Err(_) => return Attempt::Refused("the recipient is not a valid address".into()),
    };
    let session = match state.store.session(claimed.session_id).await {
        Ok(Some(session)) => session,
        Ok(None) => return Attempt::Refused("the session no longer exists".into()),
        Err(e) => return Attempt::Failed(format!("reading the session: {e}")),
    };
    let (rendered, link_hash) = match compose(state, public_url, kind, claimed, &session).await {
        Ok(composed) => composed,
        Err(e) => return Attempt::Failed(format!("composing the mail: {e}")),
    };
    let message = lettre::Message::builder()
        .from(mail.from.clone())
        .to(to)
        .subject(rendered.subject)
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(rendered.text))
                .singlepart(SinglePart::html(rendered.html)),
        );
    let attempt = match message {
        Ok(message) => match mail.transport.send(message).await {
            Ok(_) => Attempt::Sent,
            Err(e) if e.is_permanent() => Attempt::Refused(e.to_string()),
            Err(e) => Attempt::Failed(e.to_string()),
        },
        Err(e) => Attempt::Refused(format!("building the mail: {e}")),
    };
    if !matches!(attempt, Attempt::Sent) {
        // The link went nowhere; the next attempt makes its own.
        if let Err(e) = state.store.forget_unused_resume_link(&link_hash).await {
            tracing::warn!(error = %e, "forgetting an unsent mail link failed");
        }
    }
    attempt
}

/// Renders a mail with a new single-use link to the customer's chat; returns it with the
/// link's stored hash.
async fn compose(
    state: &AppState,
    public_url: &str,
    kind: MailKind,
    claimed: &ClaimedMail,
    session: &Session,
) -> Result<(super::templates::Rendered, String), crate::storage::StoreError> {
    let now = state.now();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let ttl = state
        .settings
        .mail
        .as_ref()
        .map_or(super::config::DEFAULT_LINK_TTL, |m| m.link_ttl);
    let token = auth::random_token();
    let hash = auth::token_hash(&token);
    state
        .store
        .insert_resume_link(&hash, session.id, session.customer_id, now, now + ttl)
        .await?;
    let (transcript, summary) = if kind == MailKind::Ended {
        // The summary as the mechanic left it by the time the mail goes out.
        let summary = state.store.summary(session.id).await?.map(|s| {
            format!(
                "What was found:\n{}\n\nWhat to do next:\n{}\n\nHow urgent: {}",
                s.found,
                s.next_steps,
                s.urgency.label()
            )
        });
        (
            state.store.messages(session.id, 0, TRANSCRIPT_MAX).await?,
            summary,
        )
    } else {
        (Vec::new(), None)
    };
    let plan_name = state
        .settings
        .plan(&session.plan)
        .map_or(session.plan.as_str(), |p| p.name.as_str());
    let link = format!("{public_url}/resume#token={token}");
    let home = format!("{public_url}/");
    let rendered = render(&MailData {
        kind,
        session,
        plan_name,
        mechanic_name: claimed.mechanic_name.as_deref(),
        link: &link,
        home: &home,
        transcript: &transcript,
        summary,
    });
    Ok((rendered, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_the_cap() {
        let cap = time::Duration::seconds(60);
        assert_eq!(backoff(1, cap), time::Duration::seconds(1));
        assert_eq!(backoff(2, cap), time::Duration::seconds(2));
        assert_eq!(backoff(6, cap), time::Duration::seconds(32));
        assert_eq!(backoff(7, cap), cap);
        assert_eq!(backoff(1000, cap), cap);
    }
}
