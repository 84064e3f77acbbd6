//! The state every request handler shares: settings, storage, token signing, the change bus,
//! metrics, the realtime hub, the presence view the start rule consults, mail, the media store,
//! and in cluster mode this node's membership of the cluster.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use time::OffsetDateTime;

use crate::auth::TokenSigner;
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::events::Events;
use crate::limits::Limiters;
use crate::mail::Mail;
use crate::media::Media;
use crate::metrics::Metrics;
use crate::presence::PresenceView;
use crate::realtime::Hub;
use crate::storage::Store;

pub struct Inner {
    pub settings: Settings,
    pub store: Store,
    pub signer: TokenSigner,
    pub events: Events,
    pub metrics: Metrics,
    pub presence: Arc<dyn PresenceView>,
    pub hub: Arc<Hub>,
    pub limiters: Limiters,
    /// Mail to customers, when configured.
    pub mail: Option<Mail>,
    /// This node in a cluster (`--redis-url`); `None` for a node that runs alone.
    pub cluster: Option<Arc<Cluster>>,
    /// Set once the node was asked to stop: it reports not ready while it drains.
    pub draining: AtomicBool,
    /// Names this process's rows of shared state (`crate::availability`); random per start.
    pub node_key: String,
    pub media: Media,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The server's clock; every timestamp the server writes comes from here.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
