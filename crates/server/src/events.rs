//! Committed changes, in commit order, for the realtime hub to publish. Nothing is sent here
//! before its transaction has committed, and nothing sent is dropped: the queue is unbounded
//! because each change is already durable and small.

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use wrenchline_protocol::{Message, Session};

/// A row change, as `postgres_changes` will describe it (and as the bus carries it between
/// nodes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    SessionInserted(Session),
    SessionUpdated {
        old: Option<Box<Session>>,
        new: Session,
    },
    MessageInserted(Message),
}

#[derive(Clone)]
pub struct Events {
    tx: mpsc::UnboundedSender<Change>,
}

impl Events {
    pub fn new() -> (Events, mpsc::UnboundedReceiver<Change>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Events { tx }, rx)
    }

    pub fn publish(&self, change: Change) {
        // After shutdown there is no reader; the change is committed either way.
        let _ = self.tx.send(change);
    }
}
