//! Realtime rate limits per user: joins, presence events and broadcasts counted over all of a
//! user's connections (and, for broadcasts, the HTTP broadcast endpoint), so that opening more
//! sockets buys no more budget. The counters sit behind [`UserRates`]: [`LocalRates`] counts in
//! this process, `crate::counters::RedisCounters` counts for every node of a cluster.

use std::time::Duration;

use futures_util::future::BoxFuture;
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use uuid::Uuid;

use crate::limits::{quota, Limits};

/// What a user does on a realtime channel that costs the server work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Join,
    Presence,
    Broadcast,
}

/// Per-user realtime budgets.
pub trait UserRates: Send + Sync {
    /// Counts one `action` by `user`; `false` when the user is over its budget (nothing counted).
    fn admit(&self, user: Uuid, action: Action) -> BoxFuture<'_, bool>;
    /// Forgets users that have not acted recently, so the counters do not grow without bound.
    fn forget_idle(&self);
}

/// The counters of one process.
pub struct LocalRates {
    joins: DefaultKeyedRateLimiter<Uuid>,
    presence: DefaultKeyedRateLimiter<Uuid>,
    broadcasts: DefaultKeyedRateLimiter<Uuid>,
}

impl LocalRates {
    pub fn new(limits: &Limits) -> Self {
        let second = Duration::from_secs(1);
        LocalRates {
            joins: RateLimiter::keyed(quota(second, limits.joins_per_user_per_second)),
            presence: RateLimiter::keyed(quota(second, limits.presence_per_user_per_second)),
            broadcasts: RateLimiter::keyed(quota(second, limits.broadcasts_per_user_per_second)),
        }
    }
}

impl LocalRates {
    /// [`UserRates::admit`], without waiting.
    pub fn admit_now(&self, user: Uuid, action: Action) -> bool {
        let limiter = match action {
            Action::Join => &self.joins,
            Action::Presence => &self.presence,
            Action::Broadcast => &self.broadcasts,
        };
        limiter.check_key(&user).is_ok()
    }
}

impl UserRates for LocalRates {
    fn admit(&self, user: Uuid, action: Action) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(self.admit_now(user, action)))
    }

    fn forget_idle(&self) {
        self.joins.retain_recent();
        self.presence.retain_recent();
        self.broadcasts.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budgets_are_per_user_and_per_action() {
        let rates = LocalRates::new(&Limits {
            broadcasts_per_user_per_second: 2,
            ..Limits::default()
        });
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(rates.admit(a, Action::Broadcast).await);
        assert!(rates.admit(a, Action::Broadcast).await);
        assert!(
            !rates.admit(a, Action::Broadcast).await,
            "a's third in the same second"
        );
        assert!(
            rates.admit(b, Action::Broadcast).await,
            "b has its own budget"
        );
        assert!(
            rates.admit(a, Action::Join).await,
            "joins are counted apart"
        );
    }
}
