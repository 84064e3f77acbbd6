//! The state every request handler shares: settings, storage, token signing, the change bus,
//! metrics, the realtime hub, the presence view the start rule consults, and the media store.

use std::ops::Deref;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::auth::TokenSigner;
use crate::config::Settings;
use crate::events::Events;
use crate::lifecycle::PresenceView;
use crate::limits::Limiters;
use crate::media::Media;
use crate::metrics::Metrics;
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
}
