//! Prometheus metrics of one server instance, rendered as text at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub to: String,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub session_transitions: Family<TransitionLabels, Counter>,
    pub messages_posted: Counter,
    pub realtime_connections: Gauge,
    /// Set at each scrape from the hub's presence on `requests`, so it is what
    /// `GET /api/availability` answers at that moment.
    pub mechanics_available: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wrenchline");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered",
            http_requests.clone(),
        );
        let session_transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "session_transitions",
            "Sessions entering each status",
            session_transitions.clone(),
        );
        let messages_posted = Counter::default();
        registry.register(
            "messages_posted",
            "Chat messages stored",
            messages_posted.clone(),
        );
        let realtime_connections = Gauge::default();
        registry.register(
            "realtime_connections",
            "Open realtime websocket connections",
            realtime_connections.clone(),
        );
        let mechanics_available = Gauge::default();
        registry.register(
            "mechanics_available",
            "Mechanics connected to the request feed and not away, each counted once",
            mechanics_available.clone(),
        );
        Metrics {
            registry,
            http_requests,
            session_transitions,
            messages_posted,
            realtime_connections,
            mechanics_available,
        }
    }

    pub fn transition(&self, to: &str) {
        self.session_transitions
            .get_or_create(&TransitionLabels { to: to.into() })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
