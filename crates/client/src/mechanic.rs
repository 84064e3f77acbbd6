//! [`MechanicSession`]: one signed-in mechanic's connection to one server, everything the
//! desktop app (and the example mechanic, and the load generator) does with it, with no UI and no
//! Tauri: sign-in and restore, single-flight token refresh (and a timer ahead of expiry), the
//! request feed (live row changes, re-fetched after every reconnect), accept, chat links,
//! attachments (upload, send, fetch for display, save to disk: the token stays here) and
//! availability.
//!
//! It is a small actor, like the realtime client's connection: background tasks own the state
//! ([`actor`]: the feed and availability; [`auth`]: the tokens and the refresh timer; [`chat`]:
//! one task per open chat), the handle is a cheap clone that sends commands and reads `watch`
//! snapshots, and everything that happens arrives in order on one [`MechanicEvents`] receiver,
//! which the owner drains (the desktop shell forwards each event to the UI and the OS).

mod actor;
mod auth;
mod chat;
mod feed;
mod review;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;
use wrenchline_protocol::presence::Availability;
use wrenchline_protocol::{Attachment, AuthTokens, Message, Role, ServerTime, Session, User};

pub use actor::requests_channel;
pub use chat::ChatEvent;
pub use feed::{FeedChange, RequestFeed};
pub use review::{SessionRecord, HISTORY_PAGE};

use crate::realtime::{RealtimeClient, RealtimeOptions};
use crate::{ApiClient, ClientError, Media, MediaVariant, Sensitive, Upload};
use actor::{Command, FeedTask, Watches};
use auth::Auth;
use chat::ChatLink;

/// Tuning; the defaults are the desktop app's.
#[derive(Debug, Clone)]
pub struct MechanicOptions {
    pub realtime: RealtimeOptions,
    /// Refresh the access token this long before it expires (or at 80 % of a shorter life).
    pub refresh_margin: Duration,
    /// Retry a refresh that could not reach the server after this long.
    pub retry_after: Duration,
    /// Rebuild the request channel this long after the server closed it.
    pub resubscribe_after: Duration,
    /// The availability tracked from the first join on.
    pub availability: Availability,
}

impl Default for MechanicOptions {
    fn default() -> Self {
        MechanicOptions {
            realtime: RealtimeOptions::default(),
            refresh_margin: Duration::from_secs(60),
            retry_after: Duration::from_secs(10),
            resubscribe_after: Duration::from_secs(2),
            availability: Availability::Online,
        }
    }
}

/// The request feed's health: `Live` once the list is loaded after a (re)subscription and row
/// changes are being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedStatus {
    Connecting,
    Live,
    Reconnecting,
}

impl FeedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedStatus::Connecting => "connecting",
            FeedStatus::Live => "live",
            FeedStatus::Reconnecting => "reconnecting",
        }
    }
}

/// What happens, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum MechanicEvent {
    /// Keep this refresh token for the next start (the one before it is spent): sent at the start
    /// and after every refresh.
    StoreRefreshToken(Sensitive<String>),
    /// The server refused the refresh token: only a new sign-in helps. Calls now fail with
    /// [`ClientError::SignInExpired`]; the owner stops the session.
    SignedOut,
    FeedStatus(FeedStatus),
    /// The offered requests, oldest first, after any change.
    Requests(Vec<Session>),
    /// A request offered since the feed subscribed, announced once per offer: from a row change,
    /// or from the re-fetch after a reconnect (one offered while the feed was away). What the
    /// first load after signing in finds is only listed, except a request offered between the
    /// subscription and that load: its row change announces it. Whether to notify is the owner's
    /// choice.
    NewRequest(Box<Session>),
    /// The availability is shared with the server (tracked on `requests`).
    Availability(Availability),
    Chat(ChatEvent),
}

/// The receiving end of a session's events.
pub type MechanicEvents = mpsc::UnboundedReceiver<MechanicEvent>;

/// A signed-in mechanic; see the module documentation. Clones share the session; [`stop`]
/// (or [`sign_out`]) ends it, and so does dropping the last clone.
///
/// [`stop`]: MechanicSession::stop
/// [`sign_out`]: MechanicSession::sign_out
#[derive(Clone)]
pub struct MechanicSession {
    shared: Arc<Shared>,
}

struct Shared {
    server: String,
    user: User,
    realtime: RealtimeClient,
    auth: Arc<Auth>,
    events: mpsc::UnboundedSender<MechanicEvent>,
    commands: mpsc::UnboundedSender<Command>,
    requests: watch::Receiver<Vec<Session>>,
    feed_status: watch::Receiver<FeedStatus>,
    availability: watch::Receiver<Availability>,
    chats: tokio::sync::Mutex<HashMap<Uuid, ChatLink>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

impl MechanicSession {
    /// Signs in with a password. Refuses an account that is not a mechanic's.
    pub async fn sign_in(
        server: &str,
        email: &str,
        password: &str,
        options: MechanicOptions,
    ) -> Result<(MechanicSession, MechanicEvents), ClientError> {
        let tokens = ApiClient::new(server)?.login(email, password).await?;
        if tokens.user.role != Role::Mechanic {
            return Err(ClientError::NotMechanic);
        }
        MechanicSession::start(server, tokens, options)
    }

    /// Signs in again with a stored refresh token. A token the server refuses (revoked, expired,
    /// spent) is [`ClientError::SignInExpired`]; an unreachable server is a transport error (try
    /// again later).
    pub async fn restore(
        server: &str,
        refresh_token: &str,
        options: MechanicOptions,
    ) -> Result<(MechanicSession, MechanicEvents), ClientError> {
        let tokens = match ApiClient::new(server)?.refresh(refresh_token).await {
            Ok(tokens) => tokens,
            Err(e) if e.status().is_some_and(|s| s.is_client_error()) => {
                tracing::warn!("the stored sign-in was refused: {e}");
                return Err(ClientError::SignInExpired);
            }
            Err(e) => return Err(e),
        };
        if tokens.user.role != Role::Mechanic {
            return Err(ClientError::NotMechanic);
        }
        MechanicSession::start(server, tokens, options)
    }

    /// Opens the realtime connection and starts the feed and the refresh timer.
    fn start(
        server: &str,
        tokens: AuthTokens,
        options: MechanicOptions,
    ) -> Result<(MechanicSession, MechanicEvents), ClientError> {
        let server = server.trim_end_matches('/').to_string();
        let (events, receiver) = mpsc::unbounded_channel();
        let realtime = RealtimeClient::connect_with(
            &server,
            tokens.access_token.clone(),
            options.realtime.clone(),
        )?;
        let auth = Arc::new(Auth::new(
            &server,
            &tokens,
            realtime.clone(),
            events.clone(),
        )?);
        let (requests_tx, requests) = watch::channel(Vec::new());
        let (status_tx, feed_status) = watch::channel(FeedStatus::Connecting);
        let (availability_tx, availability) = watch::channel(options.availability);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let feed = FeedTask {
            auth: auth.clone(),
            realtime: realtime.clone(),
            me: tokens.user.clone(),
            events: events.clone(),
            watches: Watches {
                requests: requests_tx,
                status: status_tx,
                availability: availability_tx,
            },
            resubscribe_after: options.resubscribe_after,
            feed: RequestFeed::default(),
        };
        let tasks = vec![
            tokio::spawn(feed.run(commands_rx)),
            tokio::spawn(auth::run_refresh(
                auth.clone(),
                options.refresh_margin,
                options.retry_after,
            )),
        ];
        tracing::info!("signed in to {server} as {}", tokens.user.email);
        let shared = Shared {
            server,
            user: tokens.user,
            realtime,
            auth,
            events,
            commands,
            requests,
            feed_status,
            availability,
            chats: tokio::sync::Mutex::new(HashMap::new()),
            tasks: Mutex::new(tasks),
        };
        Ok((
            MechanicSession {
                shared: Arc::new(shared),
            },
            receiver,
        ))
    }

    pub fn user(&self) -> &User {
        &self.shared.user
    }

    /// The server's base URL, e.g. `https://help.example.com`.
    pub fn server(&self) -> &str {
        &self.shared.server
    }

    /// The refresh token in force (what the last [`MechanicEvent::StoreRefreshToken`] said).
    pub fn refresh_token(&self) -> Sensitive<String> {
        self.shared.auth.refresh_token()
    }

    /// How many refresh requests this session has sent to the server.
    pub fn refreshes_sent(&self) -> u64 {
        self.shared.auth.refreshes_sent()
    }

    /// The offered requests, oldest first.
    pub fn requests(&self) -> Vec<Session> {
        self.shared.requests.borrow().clone()
    }

    pub fn feed_status(&self) -> FeedStatus {
        *self.shared.feed_status.borrow()
    }

    pub fn availability(&self) -> Availability {
        *self.shared.availability.borrow()
    }

    /// The realtime connection (for status displays and tests).
    pub fn realtime(&self) -> &RealtimeClient {
        &self.shared.realtime
    }

    /// Calls the API as the mechanic; an expired access token is refreshed (once, however many
    /// callers saw it expire) and the call repeated.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: Fn(ApiClient) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.shared.auth.call(f).await
    }

    /// Refreshes the access token now, unless a refresh already happened since `generation` was
    /// seen (see [`MechanicSession::token_generation`]).
    pub async fn refresh(&self, generation: u64) -> Result<(), ClientError> {
        self.shared.auth.refresh(generation).await
    }

    /// Bumped at each refresh.
    pub fn token_generation(&self) -> u64 {
        self.shared.auth.expiry().1
    }

    /// Accepts a request. Won or lost (`already_accepted`, another mechanic was first), the
    /// request leaves the list.
    pub async fn accept(&self, id: Uuid) -> Result<Session, ClientError> {
        let result = self.call(|api| async move { api.accept(id).await }).await;
        let lost = matches!(&result, Err(e) if e.code() == Some("already_accepted"));
        if result.is_ok() || lost {
            let _ = self.shared.commands.send(Command::Remove(id));
        }
        result
    }

    /// Online (notified of new requests, counted as available to customers) or away.
    pub fn set_availability(&self, availability: Availability) {
        let _ = self
            .shared
            .commands
            .send(Command::SetAvailability(availability));
    }

    pub async fn server_time(&self) -> Result<ServerTime, ClientError> {
        ApiClient::new(&self.shared.server)?.time().await
    }

    /// Joins a session's presence and chat topics, tracked as present, and reports what happens
    /// there as [`MechanicEvent::Chat`]. Opening a chat that is open re-sends its subscription and
    /// presence state (for a UI that opens it again).
    pub async fn open_chat(&self, id: Uuid) {
        let mut chats = self.shared.chats.lock().await;
        match chats.get(&id) {
            Some(link) => {
                let events = &self.shared.events;
                let _ = events.send(MechanicEvent::Chat(ChatEvent::Subscribed {
                    session_id: id,
                }));
                let _ = events.send(MechanicEvent::Chat(ChatEvent::Presence {
                    session_id: id,
                    state: link.presence(),
                }));
            }
            None => {
                let link = ChatLink::open(
                    &self.shared.events,
                    self.shared.realtime.clone(),
                    self.shared.user.clone(),
                    id,
                );
                chats.insert(id, link);
            }
        }
    }

    /// Leaves a session's topics: the mechanic is no longer present there.
    pub async fn close_chat(&self, id: Uuid) {
        let link = self.shared.chats.lock().await.remove(&id);
        if let Some(link) = link {
            link.close().await;
        }
    }

    /// Uploads a file to a session (stored by the server, sent by the next message naming it).
    pub async fn upload(&self, session: Uuid, upload: Upload) -> Result<Attachment, ClientError> {
        self.call(|api| {
            let upload = upload.clone();
            async move { api.upload_attachment(session, &upload).await }
        })
        .await
    }

    /// Sends a message with a body, attachments, or both; repeating a `client_id` answers the
    /// message stored under it.
    pub async fn send(
        &self,
        session: Uuid,
        client_id: &str,
        body: &str,
        attachment_ids: &[Uuid],
    ) -> Result<Message, ClientError> {
        self.call(|api| async move {
            api.post_message_with(session, client_id, body, attachment_ids)
                .await
        })
        .await
    }

    /// An attachment's file or thumbnail (or a range of it, for players), fetched with the
    /// mechanic's token, for a view that must not hold the token.
    pub async fn media(
        &self,
        id: Uuid,
        variant: MediaVariant,
        range: Option<&str>,
    ) -> Result<Media, ClientError> {
        self.call(|api| async move { api.media(id, variant, range).await })
            .await
    }

    /// Saves an attachment's file to `path` (whole or not at all); answers the bytes written.
    pub async fn save_attachment(
        &self,
        id: Uuid,
        path: &std::path::Path,
    ) -> Result<u64, ClientError> {
        self.call(|api| async move { api.save_attachment(id, path).await })
            .await
    }

    /// Tells the other side of an open chat that the mechanic is typing.
    pub async fn typing(&self, id: Uuid) -> Result<(), ClientError> {
        match self.shared.chats.lock().await.get(&id) {
            Some(link) => link.typing().await,
            None => Ok(()),
        }
    }

    /// Signs out: the server forgets the refresh token, and the session stops.
    pub async fn sign_out(&self) {
        let refresh = self.refresh_token();
        match ApiClient::new(&self.shared.server) {
            Ok(api) => {
                if let Err(e) = api.logout(refresh.expose()).await {
                    tracing::warn!("logout at the server failed (signing out here anyway): {e}");
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
        self.stop().await;
    }

    /// Stops everything: the tasks, the chats (leaving their topics) and the socket.
    pub async fn stop(&self) {
        let tasks: Vec<_> = self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        for task in tasks {
            task.abort();
        }
        let chats: Vec<ChatLink> = self
            .shared
            .chats
            .lock()
            .await
            .drain()
            .map(|(_, c)| c)
            .collect();
        for chat in chats {
            chat.close().await;
        }
        self.shared.realtime.disconnect().await;
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
