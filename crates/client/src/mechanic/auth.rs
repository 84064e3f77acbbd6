//! A mechanic's tokens: the access token every call and the socket carry, and the refresh token
//! that the server rotates at each use. Refreshes are single-flight: reusing a spent refresh token
//! revokes the whole sign-in, so callers that saw an expired token all wait for the one refresh in
//! flight, and a caller whose token was already replaced (the generation moved on) sends nothing.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use wrenchline_protocol::AuthTokens;

use super::MechanicEvent;
use crate::realtime::RealtimeClient;
use crate::{ApiClient, ClientError, Sensitive};

struct Tokens {
    api: ApiClient,
    refresh: Sensitive<String>,
    /// Bumped at each refresh, so concurrent callers that saw a 401 refresh only once.
    generation: u64,
    expires_at: Instant,
}

pub(super) struct Auth {
    server: String,
    tokens: RwLock<Tokens>,
    refreshing: tokio::sync::Mutex<()>,
    realtime: RealtimeClient,
    events: mpsc::UnboundedSender<MechanicEvent>,
    /// Refresh requests sent to the server.
    sent: AtomicU64,
    /// The server refused the refresh token: nothing more is sent.
    expired: AtomicBool,
}

impl Auth {
    pub(super) fn new(
        server: &str,
        tokens: &AuthTokens,
        realtime: RealtimeClient,
        events: mpsc::UnboundedSender<MechanicEvent>,
    ) -> Result<Auth, ClientError> {
        let refresh = Sensitive::new(tokens.refresh_token.clone());
        let _ = events.send(MechanicEvent::StoreRefreshToken(refresh.clone()));
        Ok(Auth {
            server: server.to_string(),
            tokens: RwLock::new(Tokens {
                api: ApiClient::new(server)?.with_token(tokens.access_token.clone()),
                refresh,
                generation: 0,
                expires_at: Instant::now() + Duration::from_secs(tokens.expires_in),
            }),
            refreshing: tokio::sync::Mutex::new(()),
            realtime,
            events,
            sent: AtomicU64::new(0),
            expired: AtomicBool::new(false),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Tokens) -> T) -> T {
        f(&self.tokens.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The API as the mechanic, and the generation of its token.
    pub(super) fn api(&self) -> Result<(ApiClient, u64), ClientError> {
        if self.expired.load(Ordering::Acquire) {
            return Err(ClientError::SignInExpired);
        }
        Ok(self.read(|t| (t.api.clone(), t.generation)))
    }

    pub(super) fn refresh_token(&self) -> Sensitive<String> {
        self.read(|t| t.refresh.clone())
    }

    pub(super) fn refreshes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// When the access token expires, and its generation.
    pub(super) fn expiry(&self) -> (Instant, u64) {
        self.read(|t| (t.expires_at, t.generation))
    }

    /// Calls the API as the mechanic; an expired access token is refreshed once and the call
    /// repeated.
    pub(super) async fn call<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: Fn(ApiClient) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let (api, generation) = self.api()?;
        match f(api).await {
            Err(e) if e.is_unauthorized() => {
                self.refresh(generation).await?;
                let (api, _) = self.api()?;
                f(api).await
            }
            other => other,
        }
    }

    /// Trades the refresh token for new tokens, unless another caller already did since
    /// `seen_generation`. A refused refresh token ends the sign-in ([`MechanicEvent::SignedOut`]).
    pub(super) async fn refresh(&self, seen_generation: u64) -> Result<(), ClientError> {
        let _one_at_a_time = self.refreshing.lock().await;
        if self.expired.load(Ordering::Acquire) {
            return Err(ClientError::SignInExpired);
        }
        let (refresh, generation) = self.read(|t| (t.refresh.clone(), t.generation));
        if generation != seen_generation {
            return Ok(());
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        let tokens = match ApiClient::new(&self.server)?
            .refresh(refresh.expose())
            .await
        {
            Ok(tokens) => tokens,
            Err(e) if e.status().is_some_and(|s| s.is_client_error()) => {
                tracing::warn!("the server refused the refresh token: {e}");
                self.expired.store(true, Ordering::Release);
                let _ = self.events.send(MechanicEvent::SignedOut);
                return Err(ClientError::SignInExpired);
            }
            Err(e) => return Err(e),
        };
        let refresh = Sensitive::new(tokens.refresh_token.clone());
        {
            let mut t = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
            t.api = t.api.clone().with_token(tokens.access_token.clone());
            t.refresh = refresh.clone();
            t.generation += 1;
            t.expires_at = Instant::now() + Duration::from_secs(tokens.expires_in);
        }
        let _ = self.events.send(MechanicEvent::StoreRefreshToken(refresh));
        if let Err(e) = self.realtime.set_token(tokens.access_token).await {
            tracing::warn!("could not hand the new token to the realtime connection: {e}");
        }
        tracing::info!("access token refreshed");
        Ok(())
    }
}

/// When to refresh a token that lives `life` from now: a `margin` ahead of its expiry, or at
/// 80 % of a shorter life, never sooner than a second (whatever lifetime the server hands out,
/// this never busy-loops).
pub(super) fn refresh_wait(life: Duration, margin: Duration) -> Duration {
    life.saturating_sub(margin)
        .max(
            life.mul_f32(0.8)
                .min(life.saturating_sub(Duration::from_secs(5))),
        )
        .max(Duration::from_secs(1))
}

/// Keeps the access token fresh ahead of its expiry; ends when the sign-in does.
pub(super) async fn run_refresh(auth: std::sync::Arc<Auth>, margin: Duration, retry: Duration) {
    loop {
        let (expires_at, generation) = auth.expiry();
        let life = expires_at.saturating_duration_since(Instant::now());
        tokio::time::sleep(refresh_wait(life, margin)).await;
        let Err(e) = auth.refresh(generation).await else {
            continue;
        };
        if matches!(e, ClientError::SignInExpired) {
            return; // the owner hears of it as MechanicEvent::SignedOut
        }
        tracing::warn!("token refresh failed, retrying: {e}");
        tokio::time::sleep(retry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_happen_ahead_of_expiry_and_never_in_a_busy_loop() {
        let margin = Duration::from_secs(60);
        assert_eq!(
            refresh_wait(Duration::from_secs(900), margin),
            Duration::from_secs(840)
        );
        // A short life: at 80 % (or 5 s before the end when that is sooner).
        assert_eq!(
            refresh_wait(Duration::from_secs(40), margin),
            Duration::from_secs(32)
        );
        assert_eq!(refresh_wait(Duration::ZERO, margin), Duration::from_secs(1));
    }
}
