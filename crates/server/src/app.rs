//! Building and running one server: `Application::build` connects storage and binds the
//! listeners (port 0 picks a free port, which tests use), `run_until_stopped` serves until
//! shutdown, with the realtime publisher, the session clock and the mail worker running beside
//! the HTTP server.
//! The HTTP side is served here connection by connection: each connection gets hyper's header
//! timer (which also ends idle kept-alive connections) and one of its address's connection
//! slots, and each request the body and response timeouts of the limits file. `/metrics` has a
//! listener of its own (`--metrics-bind`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rand::RngCore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tower_http::timeout::RequestBodyTimeoutLayer;
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::realtime::SessionEnding;

use crate::auth::TokenSigner;
use crate::cluster::{self, Cluster};
use crate::config::Settings;
use crate::counters::RedisCounters;
use crate::error::ApiError;
use crate::events::{Change, Events};
use crate::lifecycle;
use crate::limits::Limiters;
use crate::mail::{self, Mail};
use crate::metrics::Metrics;
use crate::presence::PresenceView;
use crate::realtime::bus::Outbound;
use crate::realtime::{self, Hub};
use crate::state::{AppState, Inner};
use crate::storage::Store;

/// How often live sessions are checked for expiry.
const CLOCK_TICK: Duration = Duration::from_millis(500);
/// How long before the end participants are warned.
pub const ENDING_WARNING: time::Duration = time::Duration::seconds(60);

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    changes: mpsc::UnboundedReceiver<Change>,
    /// What the hub hands to the bus, for the cluster's writer (cluster mode).
    outbound: Option<mpsc::UnboundedReceiver<Outbound>>,
}

fn random_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        if settings.redis_url.is_some() && !settings.database_url.starts_with("postgres") {
            anyhow::bail!(
                "--redis-url needs a PostgreSQL database (--database-url postgres://...): the nodes \
                 of a cluster share it, and an SQLite file cannot be shared"
            );
        }
        let store = Store::connect(&settings.database_url).await?;
        let secret = match &settings.token_secret {
            Some(secret) => secret.clone(),
            None => store.secret("token_hs256", random_secret).await?,
        };
        let listener = TcpListener::bind(settings.bind).await?;
        let addr = listener.local_addr()?;
        let metrics_listener = match settings.metrics_bind {
            Some(metrics_bind) => Some(TcpListener::bind(metrics_bind).await?),
            None => None,
        };
        let (events, changes) = Events::new();
        let cluster = match &settings.redis_url {
            Some(url) => {
                let node = settings
                    .node_id
                    .clone()
                    .unwrap_or_else(cluster::default_node_id);
                Some(Arc::new(Cluster::new(url, node)?))
            }
            None => None,
        };
        // In a cluster the limits that protect accounts, addresses and users are counted in
        // Redis, for every node; alone, in this process.
        let (hub, limiters) = match &cluster {
            Some(cluster) => {
                let counters = Arc::new(RedisCounters::new(cluster.connection(), &settings.limits));
                tokio::spawn(counters.clone().keep_slots());
                let hub = Hub::with_rates(&settings.limits, counters.clone());
                (Arc::new(hub), counters.limiters())
            }
            None => (
                Arc::new(Hub::new(&settings.limits)),
                Limiters::new(settings.limits.clone()),
            ),
        };
        let outbound = cluster
            .as_ref()
            .map(|cluster| hub.connect_relay(cluster.node()));
        let presence: Arc<dyn PresenceView> = match &cluster {
            Some(cluster) => cluster.clone(),
            None => hub.clone(),
        };
        let mail = settings.mail.as_ref().map(Mail::new).transpose()?;
        let media = crate::media::Media::open(&settings)?;
        tracing::info!(
            "media: {}{}",
            media.store.describe(),
            if media.ffmpeg {
                ""
            } else {
                " (ffmpeg not found: clips and voice notes keep their metadata, clips get no thumbnail)"
            }
        );
        let state = AppState(Arc::new(Inner {
            limiters,
            signer: TokenSigner::new(secret.as_bytes()),
            settings,
            store,
            events,
            metrics: Metrics::new(),
            presence,
            hub,
            mail,
            cluster,
            draining: Default::default(),
            node_key: uuid::Uuid::new_v4().to_string(),
            media,
        }));
        Ok(Application {
            listener,
            addr,
            metrics_listener,
            state,
            changes,
            outbound,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, when `metrics_bind` was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The address customers use, for printed links.
    pub fn public_url(&self) -> String {
        self.state
            .settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let clock = tokio::spawn(session_clock(self.state.clone()));
        let availability = tokio::spawn(crate::availability::sync(self.state.clone()));
        let accounts = tokio::spawn(realtime::watch_accounts(self.state.clone()));
        let mailer = tokio::spawn(mail::worker::run(self.state.clone(), self.public_url()));
        let background = CancellationToken::new();
        let cluster_tasks = match (&self.state.cluster, self.outbound) {
            (Some(cluster), Some(outbound)) => cluster::spawn(
                self.state.clone(),
                cluster.clone(),
                outbound,
                background.clone(),
            ),
            _ => Vec::new(),
        };
        let dispatch_stop = CancellationToken::new();
        let media_sweeps = tokio::spawn(crate::media::run_sweeps(self.state.clone()));
        let dispatch = tokio::spawn(realtime::changes::dispatch(
            self.state.clone(),
            self.changes,
            dispatch_stop.clone(),
        ));
        let limits = &self.state.limiters.limits;
        let header_timeout = Duration::from_secs(limits.http_header_timeout_seconds);
        let router = crate::http::router(self.state.clone())
            .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
                limits.http_body_timeout_seconds,
            )))
            .layer(middleware::from_fn_with_state(
                self.state.clone(),
                request_deadline,
            ))
            .layer(middleware::from_fn_with_state(
                self.state.clone(),
                admit_forwarded,
            ));
        let stop = CancellationToken::new();
        let public = serve_http(
            self.listener,
            router,
            Some(self.state.clone()),
            header_timeout,
            stop.clone(),
        );
        let metrics_listener = self.metrics_listener;
        let metrics_router = crate::http::meta::metrics_router(self.state.clone());
        let metrics_stop = stop.clone();
        let metrics = async move {
            if let Some(listener) = metrics_listener {
                serve_http(listener, metrics_router, None, header_timeout, metrics_stop).await;
            }
        };
        let draining = self.state.clone();
        let signal = async move {
            shutdown.await;
            // Not ready first, so that load balancers send new clients elsewhere; then the
            // realtime clients are closed with "going away" (they reconnect, through the load
            // balancer, to another node) and the HTTP requests under way finish.
            draining
                .draining
                .store(true, std::sync::atomic::Ordering::Release);
            let grace = draining.settings.drain_grace;
            if !grace.is_zero() {
                tracing::info!(
                    seconds = grace.as_secs_f64(),
                    "draining: reporting not ready"
                );
                tokio::time::sleep(grace).await;
            }
            draining.hub.shutdown_token().cancel();
            stop.cancel();
        };
        tokio::join!(public, metrics, signal);
        // The realtime connections leave (their presences with them) before the node does.
        let closing = async {
            while self.state.metrics.realtime_connections.get() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
        clock.abort();
        accounts.abort();
        mailer.abort();
        dispatch_stop.cancel();
        let _ = dispatch.await;
        if let Some(cluster) = &self.state.cluster {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.state.hub.flushed()).await;
            cluster.leave().await;
        }
        background.cancel();
        for task in cluster_tasks {
            task.abort();
        }
        availability.abort();
        let _ = availability.await;
        crate::availability::leave(&self.state).await;
        media_sweeps.abort();
        self.state.store.close().await;
        Ok(())
    }
}

/// Serves HTTP/1.1 on `listener` until `stop`, then lets the requests under way finish. With
/// `admit`, a connection takes one of its peer's slots for as long as it speaks HTTP (a WebSocket
/// hands its connection over and frees the slot); a trusted proxy's connections carry many
/// clients, so [`admit_forwarded`] counts those per request instead.
async fn serve_http(
    listener: TcpListener,
    router: Router,
    admit: Option<AppState>,
    header_timeout: Duration,
    stop: CancellationToken,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let slot = match &admit {
            Some(state) if !state.settings.trusted_proxies.contains(peer.ip()) => {
                match state.limiters.http_connection(peer.ip()) {
                    Some(slot) => Some(slot),
                    None => {
                        refuse(stream);
                        continue;
                    }
                }
            }
            _ => None,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            });
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = stop.cancelled() => {
                    // Finishes the request under way, if any, then closes.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Errors of one connection (it was reset before it was accepted) are nothing; others (out of
/// file descriptors) are logged and given a moment to pass.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// What a connection over its address's cap is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
content-length: 75\r\nretry-after: 5\r\nconnection: close\r\n\r\n\
{\"error\":\"rate_limited\",\"message\":\"Too many connections from this address\"}";

/// Turns a connection away without spending a task on it: the answer is written only if the
/// socket takes it at once (a new socket's buffer is empty, so it does), then the socket closes.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSED);
}

/// Requests that arrive through a trusted proxy count against the client it forwards them for,
/// each while it is handled, under the same cap as a direct client's connections.
async fn admit_forwarded(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let proxies = &state.settings.trusted_proxies;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let Some(peer) = peer.filter(|peer| proxies.contains(*peer)) else {
        return next.run(request).await;
    };
    let client = proxies.client_addr(peer, request.headers());
    let Some(_slot) = state.limiters.http_connection(client) else {
        return ApiError::TooManyRequests {
            message: "Too many connections from this address".into(),
            retry_after: Duration::from_secs(5),
        }
        .into_response();
    };
    next.run(request).await
}

/// Answers 408 when a request's response has not started within `http_request_timeout_seconds`
/// (`upload_timeout_seconds` for attachment uploads).
async fn request_deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits = &state.settings.limits;
    let upload = request.method() == axum::http::Method::POST
        && request.uri().path().starts_with("/api/sessions/")
        && request.uri().path().ends_with("/attachments");
    let seconds = if upload {
        limits.upload_timeout_seconds
    } else {
        limits.http_request_timeout_seconds
    };
    match tokio::time::timeout(Duration::from_secs(seconds), next.run(request)).await {
        Ok(response) => response,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

/// Runs the lifecycle's timers (`lifecycle::run_timers`: time up, requests nobody accepted,
/// mechanics who did not join), including for what came due while the server was down (the
/// first pass runs at start-up), and warns participants shortly before the end.
async fn session_clock(state: AppState) {
    let mut tick = tokio::time::interval(CLOCK_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned: HashSet<uuid::Uuid> = HashSet::new();
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        if ticks % 120 == 0 {
            state.limiters.forget_idle();
            lifecycle::forget_old_resume_links(&state).await;
        }
        lifecycle::run_timers(&state).await;
        if ticks % 4 == 0 {
            match mail::unread::run(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(mails = n, "customers mailed about unread messages"),
                Err(e) => tracing::warn!(error = %e, "unread message check failed"),
            }
        }
        let now = state.now();
        match state
            .store
            .live_sessions_ending_by(now + ENDING_WARNING)
            .await
        {
            Ok(ending) => {
                warned.retain(|id| ending.iter().any(|(e, _)| e == id));
                for (id, ends_at) in ending {
                    if warned.insert(id) {
                        let ending = SessionEnding {
                            session_id: id,
                            ends_at,
                            seconds_left: (ends_at - now).whole_seconds().max(0),
                        };
                        state.hub.server_broadcast(
                            Topic::SessionChat(id),
                            SessionEnding::EVENT,
                            serde_json::to_value(ending).expect("session_ending serializes"),
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "ending check failed"),
        }
    }
}
