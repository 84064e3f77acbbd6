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
    /// Mail committed to the outbox, sent, attempts after the first, and mail given up.
    pub mail_queued: Counter,
    pub mail_sent: Counter,
    pub mail_retried: Counter,
    pub mail_failed: Counter,
    pub realtime_connections: Gauge,
    /// Set at each scrape from the hub's presence on `requests`, so it is what
    /// `GET /api/availability` answers at that moment.
    pub mechanics_available: Gauge,
    /// Set at each scrape from the allocators (see `memory`).
    pub heap_allocated: Gauge,
    pub heap_resident: Gauge,
    pub c_malloc_in_use: Gauge,
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
        let mail_queued = Counter::default();
        registry.register(
            "mail_queued",
            "Mails queued in the outbox by this node",
            mail_queued.clone(),
        );
        let mail_sent = Counter::default();
        registry.register(
            "mail_sent",
            "Mails this node handed to the SMTP server",
            mail_sent.clone(),
        );
        let mail_retried = Counter::default();
        registry.register(
            "mail_retried",
            "Attempts to send a mail after an earlier attempt failed",
            mail_retried.clone(),
        );
        let mail_failed = Counter::default();
        registry.register(
            "mail_failed",
            "Mails given up: refused for good by the SMTP server, or unsent after a day",
            mail_failed.clone(),
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
        let heap_allocated = Gauge::default();
        registry.register(
            "heap_allocated_bytes",
            "Bytes held by the server's own allocations",
            heap_allocated.clone(),
        );
        let heap_resident = Gauge::default();
        registry.register(
            "heap_resident_bytes",
            "Bytes of memory the allocator keeps for the server's allocations",
            heap_resident.clone(),
        );
        let c_malloc_in_use = Gauge::default();
        registry.register(
            "c_malloc_in_use_bytes",
            "Bytes held through the C library's malloc (SQLite among others)",
            c_malloc_in_use.clone(),
        );
        Metrics {
            registry,
            http_requests,
            session_transitions,
            messages_posted,
            mail_queued,
            mail_sent,
            mail_retried,
            mail_failed,
            realtime_connections,
            mechanics_available,
            heap_allocated,
            heap_resident,
            c_malloc_in_use,
        }
    }

    /// Refreshes the gauges that are read rather than counted.
    pub fn read_heap(&self) {
        if let Some(heap) = crate::memory::heap() {
            let set =
                |gauge: &Gauge, bytes: u64| gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
            set(&self.heap_allocated, heap.allocated);
            set(&self.heap_resident, heap.resident);
            set(&self.c_malloc_in_use, heap.c_malloc_in_use);
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
