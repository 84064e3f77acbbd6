//! Committed changes, in commit order, for whoever publishes them to clients (the realtime hub).
//! Nothing is sent here before its transaction has committed.

use std::sync::Arc;

use tokio::sync::broadcast;
use wrenchline_protocol::{Message, Session};

/// A row change, as `postgres_changes` will describe it.
#[derive(Debug, Clone)]
pub enum Change {
    SessionInserted(Session),
    SessionUpdated {
        old: Option<Box<Session>>,
        new: Session,
    },
    MessageInserted(Message),
}

impl Change {
    pub fn session_id(&self) -> uuid::Uuid {
        match self {
            Change::SessionInserted(s) | Change::SessionUpdated { new: s, .. } => s.id,
            Change::MessageInserted(m) => m.session_id,
        }
    }
}

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Arc<Change>>,
}

impl Events {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Events { tx }
    }

    pub fn publish(&self, change: Change) {
        // No subscriber is not an error: the change is committed either way.
        let _ = self.tx.send(Arc::new(change));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }
}
