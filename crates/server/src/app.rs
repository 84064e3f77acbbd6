//! Building and running one server: `Application::build` connects storage and binds the listener
//! (port 0 picks a free port, which tests use), `run_until_stopped` serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rand::RngCore;
use tokio::net::TcpListener;

use crate::auth::TokenSigner;
use crate::config::Settings;
use crate::events::Events;
use crate::lifecycle::{self, NobodyPresent};
use crate::metrics::Metrics;
use crate::state::{AppState, Inner};
use crate::storage::Store;

/// How often live sessions are checked for expiry.
const EXPIRY_TICK: Duration = Duration::from_millis(500);

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
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
        let state = AppState(Arc::new(Inner {
            signer: TokenSigner::new(secret.as_bytes()),
            settings,
            store,
            events: Events::new(4096),
            metrics: Metrics::new(),
            presence: Arc::new(NobodyPresent),
        }));
        Ok(Application {
            listener,
            addr,
            state,
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
        let expiry = tokio::spawn(expire_sessions(self.state.clone()));
        let router = crate::http::router(self.state.clone());
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        expiry.abort();
        self.state.store.close().await;
        served
    }
}

/// Completes live sessions whose time is up, including those that expired while the server was
/// down (the first pass runs at start-up).
async fn expire_sessions(state: AppState) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match lifecycle::expire_due(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(completed = n, "sessions completed at the end of their time"),
            Err(e) => tracing::warn!(error = %e, "expiry pass failed"),
        }
    }
}
