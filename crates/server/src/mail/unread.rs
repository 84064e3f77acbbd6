//! The customer is away and the mechanic wrote: when the mechanic posts while the customer has
//! no open connection to the session, the session is marked unread; when it is still unread
//! `unread_after` later (the customer did not come back: coming back re-reads the chat, which
//! clears the mark), the customer is mailed, at most once per `quiet_period`. The decision is a
//! conditional update on the session row, so with several nodes it is still taken once.

use wrenchline_protocol::{Message, Role, Session, SessionStatus};

use super::{Mail, MailKind};
use crate::error::ApiError;
use crate::presence::{participants, PresenceUnavailable};
use crate::state::AppState;

/// Whether the customer has a connection to the session's chat now, on any node (the presence
/// the session rules read: this node's hub alone, the shared presence in a cluster). The one
/// place that asks; `Err` while the presence cannot be read, when nothing is decided.
pub async fn customer_connected(
    state: &AppState,
    session: &Session,
) -> Result<bool, PresenceUnavailable> {
    Ok(participants(state.presence.as_ref(), session)
        .await?
        .customer_present)
}

/// After a message is stored: a mechanic's message to a customer who is away marks the session
/// unread.
pub async fn message_posted(state: &AppState, session: &Session, message: &Message) {
    if state.mail.is_none() || message.sender_role != Role::Mechanic {
        return;
    }
    // A presence that cannot be read marks nothing: no mail on a guess.
    if customer_connected(state, session).await.unwrap_or(true) {
        return;
    }
    if let Err(e) = state
        .store
        .mark_unread(session.id, message.created_at)
        .await
    {
        tracing::warn!(error = %e, session_id = %session.id, "marking a session unread failed");
    }
}

/// The customer read the chat (fetched its history): nothing is unread any more.
pub async fn customer_caught_up(state: &AppState, session: &Session) {
    if state.mail.is_none() {
        return;
    }
    if let Err(e) = state.store.clear_unread(session.id).await {
        tracing::warn!(error = %e, session_id = %session.id, "clearing the unread mark failed");
    }
}

/// One pass, as the session clock runs it: mails customers whose sessions have been unread for
/// `unread_after` while they stayed away; returns how many mails were queued.
pub async fn run(state: &AppState) -> Result<usize, ApiError> {
    let Some(mail) = &state.mail else {
        return Ok(0);
    };
    let Some(settings) = &state.settings.mail else {
        return Ok(0);
    };
    let now = state.now();
    let mut queued = 0;
    for (id, unread) in state
        .store
        .unread_since(now - settings.unread_after)
        .await?
    {
        let Some(session) = state.store.session(id).await? else {
            continue;
        };
        let open = matches!(session.status, SessionStatus::Waiting | SessionStatus::Live);
        let connected = match open {
            true => match customer_connected(state, &session).await {
                Ok(connected) => connected,
                Err(PresenceUnavailable) => continue,
            },
            false => false,
        };
        if !open || connected {
            state.store.clear_unread(id).await?;
            continue;
        }
        if state
            .store
            .queue_unread_mail(
                id,
                unread,
                now - settings.quiet_period,
                Mail::queue(MailKind::UnreadMessages, now),
            )
            .await?
        {
            mail.queued(&state.metrics);
            queued += 1;
        }
    }
    Ok(queued)
}
