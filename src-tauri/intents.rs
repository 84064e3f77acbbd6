//! What the tray, notifications, deep links and a second launch ask of the app: [`Intent`]s sent
//! over one channel to the task in `events.rs` that acts on them. None of those callers reaches
//! into the app's state, and none imports it, so the modules form no cycle.

use tokio::sync::mpsc;
use uuid::Uuid;
use wrenchline_protocol::presence::Availability;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Bring the main window forward (tray, a second launch).
    ShowWindow,
    /// A click on a request's notification: the list, focused on it.
    OpenRequest(Uuid),
    /// A `wrenchline://session/{id}` link.
    OpenSession(Uuid),
    /// "Accept" on a request's notification: accept, then open the chat.
    Accept(Uuid),
    SetAvailability(Availability),
    Quit,
}

/// The sending side, managed as state and cloned into the tray's and notifications' callbacks.
#[derive(Clone)]
pub struct Intents(mpsc::UnboundedSender<Intent>);

impl Intents {
    pub fn channel() -> (Intents, mpsc::UnboundedReceiver<Intent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Intents(tx), rx)
    }

    pub fn send(&self, intent: Intent) {
        if self.0.send(intent).is_err() {
            log::warn!("{intent:?} arrived while the app is shutting down");
        }
    }
}
