//! Building and running one server: `Application::build` connects storage and binds the listener
//! (port 0 picks a free port, which tests use), `run_until_stopped` serves until shutdown, with
//! the realtime publisher and the session clock running beside the HTTP server.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rand::RngCore;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wrenchline_protocol::realtime::topics::Topic;

use crate::auth::TokenSigner;
use crate::config::Settings;
use crate::events::{Change, Events};
use crate::lifecycle;
use crate::limits::Limiters;
use crate::metrics::Metrics;
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
    state: AppState,
    changes: mpsc::UnboundedReceiver<Change>,
}

fn random_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let store = Store::connect(&settings.database_url).await?;
        let secret = match &settings.token_secret {
            Some(secret) => secret.clone(),
            None => store.secret("token_hs256", random_secret).await?,
        };
        let listener = TcpListener::bind(settings.bind).await?;
        let addr = listener.local_addr()?;
        let (events, changes) = Events::new();
        let hub = Arc::new(Hub::new(&settings.limits));
        let limiters = Limiters::new(settings.limits.clone());
        let state = AppState(Arc::new(Inner {
            limiters,
            signer: TokenSigner::new(secret.as_bytes()),
            settings,
            store,
            events,
            metrics: Metrics::new(),
            presence: hub.clone(),
            hub,
        }));
        Ok(Application {
            listener,
            addr,
            state,
            changes,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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
        let accounts = tokio::spawn(realtime::watch_accounts(self.state.clone()));
        let dispatch = tokio::spawn(realtime::changes::dispatch(
            self.state.clone(),
            self.changes,
        ));
        let router = crate::http::router(self.state.clone());
        let hub = self.state.hub.clone();
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            hub.shutdown_token().cancel();
        })
        .await;
        clock.abort();
        accounts.abort();
        dispatch.abort();
        self.state.store.close().await;
        served
    }
}

/// Completes live sessions whose time is up, including those that expired while the server was
/// down (the first pass runs at start-up), and warns participants shortly before the end.
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
        }
        match lifecycle::expire_due(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(completed = n, "sessions completed at the end of their time"),
            Err(e) => tracing::warn!(error = %e, "expiry pass failed"),
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
                        let seconds_left = (ends_at - now).whole_seconds().max(0);
                        state.hub.server_broadcast(
                            Topic::SessionChat(id),
                            "session_ending",
                            json!({ "session_id": id, "ends_at": ends_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(), "seconds_left": seconds_left }),
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "ending check failed"),
        }
    }
}
