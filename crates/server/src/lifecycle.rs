//! The session rules (docs/architecture.md, "Session lifecycle"): who may move a session, and
//! where to. Storage makes each move one conditional update; this module decides which move an
//! actor asks for, refuses losers with the current state ([`RuleError`], which the HTTP API turns
//! into 409 and the like), and publishes every committed change. It knows nothing of HTTP. It also
//! runs the lifecycle's timers (time up, requests nobody accepts, mechanics who do not join): each
//! is a conditional update that every server node may try and exactly one wins. The moves the
//! customer is mailed about queue their mail in the same transaction (see `mail`).

use uuid::Uuid;
use wrenchline_protocol::{EndReason, Message, Role, Session, SessionStatus, User};

use crate::auth::{scope_reaches, Scope};
use crate::events::Change;
use crate::mail::{self, Mail, MailKind};
use crate::presence::{participants, PresenceUnavailable};
use crate::state::AppState;
use crate::storage::{PostRefused, QueueMail, StoreError, Transition};

/// Why a session rule refused a move. The HTTP API answers each with its status and code
/// (`impl From<RuleError> for ApiError`).
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// No such session, or one the actor may not know of.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The actor's role may not do this.
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    /// The session is not in a state that allows the move; here is the state it is in.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: &'static str,
        session: Option<Box<Session>>,
        /// Who is missing, for a start refused because a participant is absent.
        missing: Vec<Role>,
    },
    /// A message names an attachment that is not one of the sender's unsent uploads in this
    /// session.
    #[error("no unsent attachment {0} of the sender in this session")]
    UnknownAttachment(Uuid),
    /// A message names an attachment already sent with another message.
    #[error("attachment {0} was already sent with another message")]
    AttachmentSent(Uuid),
    /// Who is present cannot be known right now (the cluster's bus is away).
    #[error(transparent)]
    Presence(#[from] PresenceUnavailable),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RuleError {
    fn conflict(code: &'static str, message: &'static str, session: Option<Session>) -> Self {
        RuleError::Conflict {
            code,
            message,
            session: session.map(Box::new),
            missing: Vec::new(),
        }
    }
}

/// Who asks for a move: an authenticated user, and the sessions the identity reaches.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub user: &'a User,
    pub scope: &'a Scope,
}

impl Actor<'_> {
    pub fn role(&self) -> Role {
        self.user.role
    }

    fn reaches(&self, session: Uuid) -> bool {
        scope_reaches(self.scope, session)
    }

    fn require(&self, role: Role) -> Result<(), RuleError> {
        match (self.user.role == role, role) {
            (true, _) => Ok(()),
            (false, Role::Mechanic) => Err(RuleError::Forbidden {
                code: "mechanics_only",
                message: "Only mechanics can do this",
            }),
            (false, Role::Customer) => Err(RuleError::Forbidden {
                code: "customers_only",
                message: "Only the customer can do this",
            }),
        }
    }
}

/// Statuses in which chat messages are taken.
pub const OPEN_FOR_MESSAGES: &[SessionStatus] = &[SessionStatus::Waiting, SessionStatus::Live];

/// Whether `caller` may read the session: its customer, its mechanic, or any mechanic while it is
/// offered.
pub fn can_read(caller: &Actor<'_>, session: &Session) -> bool {
    is_participant(caller, session) || (caller.role() == Role::Mechanic && session.is_offered())
}

/// The caller takes part in the session, and its identity reaches it (a browser that came in by a
/// resume link reaches the linked session only).
pub fn is_participant(caller: &Actor<'_>, session: &Session) -> bool {
    session.is_participant(caller.user.id) && caller.reaches(session.id)
}

/// Loads a session the caller may read; others' sessions are indistinguishable from missing ones.
pub async fn readable(
    state: &AppState,
    caller: &Actor<'_>,
    id: Uuid,
) -> Result<Session, RuleError> {
    match state.store.session(id).await? {
        Some(session) if can_read(caller, &session) => Ok(session),
        _ => Err(RuleError::NotFound("session")),
    }
}

/// Loads a session the caller takes part in.
pub async fn participating(
    state: &AppState,
    caller: &Actor<'_>,
    id: Uuid,
) -> Result<Session, RuleError> {
    match state.store.session(id).await? {
        Some(session) if is_participant(caller, &session) => Ok(session),
        _ => Err(RuleError::NotFound("session")),
    }
}

/// The customer's mail a transition queues with it, when mail is configured.
fn mail_for(state: &AppState, kind: MailKind) -> Option<QueueMail<'static>> {
    state.mail.as_ref().map(|_| Mail::queue(kind, state.now()))
}

/// A transition that queued mail committed: wake the mail worker.
fn mail_queued(state: &AppState) {
    if let Some(mail) = &state.mail {
        mail.queued(&state.metrics);
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
    caller: &Actor<'_>,
    id: Uuid,
    signed_name: &str,
) -> Result<Session, RuleError> {
    caller.require(Role::Customer)?;
    let before = participating(state, caller, id).await?;
    let version = state.settings.waiver.version.clone();
    match state
        .store
        .mailing(mail_for(state, MailKind::RequestReceived))
        .sign_waiver(id, caller.user.id, signed_name, &version, state.now())
        .await?
    {
        Some(Transition::Done(session)) => {
            mail_queued(state);
            publish_update(state, Some(before), &session);
            Ok(session)
        }
        Some(Transition::Conflict(session)) => Err(RuleError::conflict(
            if session.waiver_signed_at.is_some() {
                "already_signed"
            } else {
                "session_closed"
            },
            "The waiver for this session is already signed or the session has closed",
            Some(session),
        )),
        None => Err(RuleError::NotFound("session")),
    }
}

pub async fn accept(state: &AppState, caller: &Actor<'_>, id: Uuid) -> Result<Session, RuleError> {
    caller.require(Role::Mechanic)?;
    let Some(before) = state.store.session(id).await? else {
        return Err(RuleError::NotFound("session"));
    };
    if before.status == SessionStatus::Pending && before.waiver_signed_at.is_none() {
        // Not offered yet: to a mechanic it does not exist.
        return Err(RuleError::NotFound("session"));
    }
    match state
        .store
        .mailing(mail_for(state, MailKind::Accepted))
        .accept(id, caller.user.id, state.now())
        .await?
    {
        Some(Transition::Done(session)) => {
            mail_queued(state);
            publish_update(state, Some(before), &session);
            Ok(session)
        }
        Some(Transition::Conflict(session)) => {
            let session = can_read(caller, &session).then_some(session);
            Err(RuleError::conflict(
                "already_accepted",
                "Another mechanic has already taken this request",
                session,
            ))
        }
        None => Err(RuleError::NotFound("session")),
    }
}

/// `waiting → live` once both participants are present. Idempotent: a live session is returned
/// as it is.
pub async fn start(state: &AppState, session: Session) -> Result<Session, RuleError> {
    match session.status {
        SessionStatus::Live => return Ok(session),
        SessionStatus::Waiting => {}
        SessionStatus::Pending => {
            return Err(RuleError::conflict(
                "not_accepted",
                "No mechanic has accepted this request yet",
                Some(session),
            ))
        }
        SessionStatus::Completed | SessionStatus::Cancelled => {
            return Err(RuleError::conflict(
                "session_ended",
                "This session has ended",
                Some(session),
            ))
        }
    }
    let participants = participants(&*state.presence, &session).await?;
    if !participants.both() {
        return Err(RuleError::Conflict {
            code: "participants_not_present",
            message: "Both the customer and the mechanic must be in the chat to start",
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
        Some(Transition::Conflict(current)) => Err(RuleError::conflict(
            "session_ended",
            "This session can no longer start",
            Some(current),
        )),
        None => Err(RuleError::NotFound("session")),
    }
}

/// Ends a session for a participant: a live session completes; one that never went live is
/// cancelled.
pub async fn end(state: &AppState, caller: &Actor<'_>, id: Uuid) -> Result<Session, RuleError> {
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
            (SessionStatus::Pending, Role::Mechanic) => return Err(RuleError::NotFound("session")),
            (SessionStatus::Completed | SessionStatus::Cancelled, _) => {
                return Err(RuleError::conflict(
                    "session_ended",
                    "This session has already ended",
                    Some(session),
                ))
            }
        };
        // A request never offered (no waiver) was never mailed about: its end is not either.
        let mail = match session.waiver_signed_at {
            Some(_) => mail_for(state, MailKind::Ended),
            None => None,
        };
        match state
            .store
            .mailing(mail)
            .finish(id, session.status, to, reason, state.now())
            .await?
        {
            Some(Transition::Done(ended)) => {
                if mail.is_some() {
                    mail_queued(state);
                }
                publish_update(state, Some(session), &ended);
                return Ok(ended);
            }
            Some(Transition::Conflict(current)) => session = current,
            None => return Err(RuleError::NotFound("session")),
        }
    }
    Err(RuleError::conflict(
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
pub async fn expire_due(state: &AppState) -> Result<usize, RuleError> {
    let now = state.now();
    let mut completed = 0;
    for id in state.store.sessions_due(now).await? {
        if let Some(Transition::Done(session)) = state
            .store
            .mailing(mail_for(state, MailKind::Ended))
            .expire(id, now)
            .await?
        {
            mail_queued(state);
            publish_update(state, None, &session);
            completed += 1;
        }
    }
    Ok(completed)
}

/// Cancels offered requests that nobody accepted within `request_accept_timeout` of being
/// offered (`not_accepted`); returns how many.
pub async fn cancel_unaccepted(state: &AppState) -> Result<usize, RuleError> {
    let now = state.now();
    let offered_by = now - state.settings.request_accept_timeout;
    let mut cancelled = 0;
    for before in state.store.offered_before(offered_by).await? {
        if let Some(Transition::Done(session)) = state
            .store
            .mailing(mail_for(state, MailKind::NotAccepted))
            .cancel_unaccepted(before.id, offered_by, now)
            .await?
        {
            mail_queued(state);
            publish_update(state, Some(before), &session);
            cancelled += 1;
        }
    }
    Ok(cancelled)
}

/// Offers again the waiting sessions whose mechanic accepted more than `mechanic_join_timeout`
/// ago and is not in the chat: the session goes back to `pending` without a mechanic, and
/// mechanics see it in the feed again. Returns how many.
pub async fn reoffer_unjoined(state: &AppState) -> Result<usize, RuleError> {
    let now = state.now();
    let accepted_by = now - state.settings.mechanic_join_timeout;
    let mut reoffered = 0;
    for before in state.store.waiting_accepted_before(accepted_by).await? {
        let Some(mechanic) = before.mechanic_id else {
            continue;
        };
        // Unknown presence (the cluster's bus is away) offers nothing again.
        match participants(&*state.presence, &before).await {
            Ok(p) if !p.mechanic_present => {}
            _ => continue,
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
    caller: &Actor<'_>,
    id: Uuid,
    client_id: &str,
    body: &str,
    attachments: &[Uuid],
) -> Result<(Message, bool), RuleError> {
    let session = participating(state, caller, id).await?;
    let posted = state
        .store
        .post_message_with(
            id,
            caller.user,
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
                mail::unread::message_posted(state, &session, &posted.message).await;
            }
            Ok((posted.message, posted.created))
        }
        Err(PostRefused::UnknownAttachment(attachment)) => {
            Err(RuleError::UnknownAttachment(attachment))
        }
        Err(PostRefused::AttachmentSent(attachment)) => Err(RuleError::AttachmentSent(attachment)),
        Err(PostRefused::NotOpen(session)) if time_up(&session) => Err(RuleError::conflict(
            "session_ended",
            "This session's time is up; messages can no longer be sent",
            Some(*session),
        )),
        Err(PostRefused::NotOpen(session)) => Err(RuleError::conflict(
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
