//! The session lifecycle (docs/architecture.md): who may move a session, and where to. Storage
//! makes each move one conditional update; this module decides which move a request asks for,
//! answers losers with 409 and the current state, and publishes every committed change. It also
//! runs the lifecycle's timers (time up, requests nobody accepts, mechanics who do not join): each
//! is a conditional update that every server node may try and exactly one wins.

use uuid::Uuid;
use wrenchline_protocol::presence::Participants;
use wrenchline_protocol::{EndReason, Message, Role, Session, SessionStatus};

use crate::error::ApiError;
use crate::events::Change;
use crate::extract::Caller;
use crate::state::AppState;
use crate::storage::{PostRefused, Transition};

/// Who is present on a session's presence channel, as the realtime hub sees it.
pub trait PresenceView: Send + Sync {
    fn participants(&self, session: &Session) -> Participants;
}

/// Statuses in which chat messages are taken.
pub const OPEN_FOR_MESSAGES: &[SessionStatus] = &[SessionStatus::Waiting, SessionStatus::Live];

/// Whether `caller` may read the session: its customer, its mechanic, or any mechanic while it is
/// offered.
pub fn can_read(caller: &Caller, session: &Session) -> bool {
    is_participant(caller, session) || (caller.role() == Role::Mechanic && session.is_offered())
}

/// The caller takes part in the session, and its identity reaches it (a browser that came in by a
/// resume link reaches the linked session only).
pub fn is_participant(caller: &Caller, session: &Session) -> bool {
    session.is_participant(caller.user.id) && caller.reaches(session.id)
}

/// Loads a session the caller may read; others' sessions are indistinguishable from missing ones.
pub async fn readable(state: &AppState, caller: &Caller, id: Uuid) -> Result<Session, ApiError> {
    match state.store.session(id).await? {
        Some(session) if can_read(caller, &session) => Ok(session),
        _ => Err(ApiError::not_found("session")),
    }
}

/// Loads a session the caller takes part in.
pub async fn participating(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<Session, ApiError> {
    match state.store.session(id).await? {
        Some(session) if is_participant(caller, &session) => Ok(session),
        _ => Err(ApiError::not_found("session")),
    }
}

/// Publishes a committed change and counts the status entered (`offered` for a signed waiver).
fn publish_update(state: &AppState, old: Option<Session>, new: &Session) {
    let entered = match (&old, new.status) {
        (Some(old), SessionStatus::Pending) if old.waiver_signed_at.is_none() => "offered",
        (_, status) => status.as_str(),
    };
    state.metrics.transition(entered);
    state.events.publish(Change::SessionUpdated {
        old: old.map(Box::new),
        new: new.clone(),
    });
}

pub async fn sign_waiver(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    signed_name: &str,
) -> Result<Session, ApiError> {
    caller.require_customer()?;
    let before = participating(state, caller, id).await?;
    let version = state.settings.waiver.version.clone();
    match state
        .store
        .sign_waiver(id, caller.user.id, signed_name, &version, state.now())
        .await?
    {
        Some(Transition::Done(session)) => {
            publish_update(state, Some(before), &session);
            Ok(session)
        }
        Some(Transition::Conflict(session)) => Err(ApiError::conflict(
            if session.waiver_signed_at.is_some() {
                "already_signed"
            } else {
                "session_closed"
            },
            "The waiver for this session is already signed or the session has closed",
            Some(session),
        )),
        None => Err(ApiError::not_found("session")),
    }
}

pub async fn accept(state: &AppState, caller: &Caller, id: Uuid) -> Result<Session, ApiError> {
    caller.require_mechanic()?;
    let Some(before) = state.store.session(id).await? else {
        return Err(ApiError::not_found("session"));
    };
    if before.status == SessionStatus::Pending && before.waiver_signed_at.is_none() {
        // Not offered yet: to a mechanic it does not exist.
        return Err(ApiError::not_found("session"));
    }
    match state.store.accept(id, caller.user.id, state.now()).await? {
        Some(Transition::Done(session)) => {
            publish_update(state, Some(before), &session);
            Ok(session)
        }
        Some(Transition::Conflict(session)) => {
            let session = can_read(caller, &session).then_some(session);
            Err(ApiError::conflict(
                "already_accepted",
                "Another mechanic has already taken this request",
                session,
            ))
        }
        None => Err(ApiError::not_found("session")),
    }
}

/// `waiting → live` once both participants are present. Idempotent: a live session is returned
/// as it is.
pub async fn start(state: &AppState, session: Session) -> Result<Session, ApiError> {
    match session.status {
        SessionStatus::Live => return Ok(session),
        SessionStatus::Waiting => {}
        SessionStatus::Pending => {
            return Err(ApiError::conflict(
                "not_accepted",
                "No mechanic has accepted this request yet",
                Some(session),
            ))
        }
        SessionStatus::Completed | SessionStatus::Cancelled => {
            return Err(ApiError::conflict(
                "session_ended",
                "This session has ended",
                Some(session),
            ))
        }
    }
    let participants = state.presence.participants(&session);
    if !participants.both() {
        return Err(ApiError::Conflict {
            code: "participants_not_present",
            message: "Both the customer and the mechanic must be in the chat to start".into(),
            session: Some(Box::new(session)),
            missing: participants.missing(),
        });
    }
    let id = session.id;
    match state.store.start(id, state.now()).await? {
        Some(Transition::Done(live)) => {
            publish_update(state, Some(session), &live);
            Ok(live)
        }
        Some(Transition::Conflict(current)) if current.status == SessionStatus::Live => Ok(current),
        Some(Transition::Conflict(current)) => Err(ApiError::conflict(
            "session_ended",
            "This session can no longer start",
            Some(current),
        )),
        None => Err(ApiError::not_found("session")),
    }
}

/// Ends a session for a participant: a live session completes; one that never went live is
/// cancelled.
pub async fn end(state: &AppState, caller: &Caller, id: Uuid) -> Result<Session, ApiError> {
    let mut session = participating(state, caller, id).await?;
    // A concurrent transition can slip in between the read and the update; follow it a few times.
    for _ in 0..3 {
        let (to, reason) = match (session.status, caller.role()) {
            (SessionStatus::Live, Role::Customer) => {
                (SessionStatus::Completed, EndReason::EndedByCustomer)
            }
            (SessionStatus::Live, Role::Mechanic) => {
                (SessionStatus::Completed, EndReason::EndedByMechanic)
            }
            (SessionStatus::Pending | SessionStatus::Waiting, Role::Customer) => {
                (SessionStatus::Cancelled, EndReason::CancelledByCustomer)
            }
            (SessionStatus::Waiting, Role::Mechanic) => {
                (SessionStatus::Cancelled, EndReason::EndedByMechanic)
            }
            (SessionStatus::Pending, Role::Mechanic) => return Err(ApiError::not_found("session")),
            (SessionStatus::Completed | SessionStatus::Cancelled, _) => {
                return Err(ApiError::conflict(
                    "session_ended",
                    "This session has already ended",
                    Some(session),
                ))
            }
        };
        match state
            .store
            .finish(id, session.status, to, reason, state.now())
            .await?
        {
            Some(Transition::Done(ended)) => {
                publish_update(state, Some(session), &ended);
                return Ok(ended);
            }
            Some(Transition::Conflict(current)) => session = current,
            None => return Err(ApiError::not_found("session")),
        }
    }
    Err(ApiError::conflict(
        "busy",
        "The session is changing; please try again",
        Some(session),
    ))
}

/// One pass of the lifecycle's timers, as the session clock runs it on every node: live sessions
/// whose time is up complete, requests nobody accepted are cancelled, and sessions whose mechanic
/// never joined are offered again. Each move is a conditional update, so when several nodes run
/// the same pass each move still happens once; nothing here depends on this node's memory.
pub async fn run_timers(state: &AppState) {
    match expire_due(state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(completed = n, "sessions completed at the end of their time"),
        Err(e) => tracing::warn!(error = %e, "expiry pass failed"),
    }
    match cancel_unaccepted(state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(cancelled = n, "requests nobody accepted were cancelled"),
        Err(e) => tracing::warn!(error = %e, "request expiry pass failed"),
    }
    match reoffer_unjoined(state).await {
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "mechanic join check failed"),
    }
}

/// Forgets resume links a day after they expired (until then a late click still hears "expired").
pub async fn forget_old_resume_links(state: &AppState) {
    let before = state.now() - time::Duration::days(1);
    if let Err(e) = state.store.forget_resume_links(before).await {
        tracing::warn!(error = %e, "forgetting old resume links failed");
    }
}

/// Completes every live session whose time is up; returns how many were completed.
pub async fn expire_due(state: &AppState) -> Result<usize, ApiError> {
    let now = state.now();
    let mut completed = 0;
    for id in state.store.sessions_due(now).await? {
        if let Some(Transition::Done(session)) = state.store.expire(id, now).await? {
            publish_update(state, None, &session);
            completed += 1;
        }
    }
    Ok(completed)
}

/// Cancels offered requests that nobody accepted within `request_accept_timeout` of being
/// offered (`not_accepted`); returns how many.
pub async fn cancel_unaccepted(state: &AppState) -> Result<usize, ApiError> {
    let now = state.now();
    let offered_by = now - state.settings.request_accept_timeout;
    let mut cancelled = 0;
    for before in state.store.offered_before(offered_by).await? {
        if let Some(Transition::Done(session)) = state
            .store
            .cancel_unaccepted(before.id, offered_by, now)
            .await?
        {
            publish_update(state, Some(before), &session);
            cancelled += 1;
        }
    }
    Ok(cancelled)
}

/// Offers again the waiting sessions whose mechanic accepted more than `mechanic_join_timeout`
/// ago and is not in the chat: the session goes back to `pending` without a mechanic, and
/// mechanics see it in the feed again. Returns how many.
pub async fn reoffer_unjoined(state: &AppState) -> Result<usize, ApiError> {
    let now = state.now();
    let accepted_by = now - state.settings.mechanic_join_timeout;
    let mut reoffered = 0;
    for before in state.store.waiting_accepted_before(accepted_by).await? {
        let Some(mechanic) = before.mechanic_id else {
            continue;
        };
        if state.presence.participants(&before).mechanic_present {
            continue;
        }
        if let Some(Transition::Done(session)) = state
            .store
            .reoffer(before.id, mechanic, accepted_by, now)
            .await?
        {
            tracing::info!(session_id = %session.id, "the mechanic did not join: offered again");
            publish_update(state, Some(before), &session);
            reoffered += 1;
        }
    }
    Ok(reoffered)
}

pub async fn post_message(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    client_id: &str,
    body: &str,
    attachments: &[Uuid],
) -> Result<(Message, bool), ApiError> {
    participating(state, caller, id).await?;
    let posted = state
        .store
        .post_message_with(
            id,
            &caller.user,
            client_id,
            body,
            attachments,
            OPEN_FOR_MESSAGES,
            state.now(),
        )
        .await?;
    let time_up = |session: &Session| {
        session.status == SessionStatus::Live && session.ends_at.is_some_and(|at| at <= state.now())
    };
    match posted {
        Ok(posted) => {
            if posted.created {
                state.metrics.messages_posted.inc();
                state
                    .events
                    .publish(Change::MessageInserted(posted.message.clone()));
            }
            Ok((posted.message, posted.created))
        }
        Err(PostRefused::UnknownAttachment(attachment)) => Err(ApiError::NotFound {
            code: "attachment_not_found",
            message: format!(
                "No attachment {attachment} of yours is waiting to be sent in this session"
            ),
        }),
        Err(PostRefused::AttachmentSent(attachment)) => Err(ApiError::conflict(
            "attachment_already_sent",
            format!("Attachment {attachment} was already sent with another message"),
            None,
        )),
        Err(PostRefused::NotOpen(session)) if time_up(&session) => Err(ApiError::conflict(
            "session_ended",
            "This session's time is up; messages can no longer be sent",
            Some(*session),
        )),
        Err(PostRefused::NotOpen(session)) => Err(ApiError::conflict(
            if session.status.is_final() {
                "session_ended"
            } else {
                "not_accepted"
            },
            if session.status.is_final() {
                "This session has ended; messages can no longer be sent"
            } else {
                "Messages can be sent once a mechanic has accepted"
            },
            Some(*session),
        )),
    }
}
