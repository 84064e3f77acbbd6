//! Who is present on a topic, as the session rules ask it: the entries of one topic, from this
//! node's hub (a node alone) or from the shared presence in Redis (a cluster), and the questions
//! answered from them, always by payload `user_id` across every key.

use std::collections::HashSet;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use wrenchline_protocol::presence::Participants;
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::{Role, Session};

/// One tracked presence: the connection's presence key, who tracked it, and the payload as
/// subscribers see it (with `phx_ref`). The shared presence of a cluster stores these as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceEntry {
    pub key: String,
    pub user_id: Uuid,
    pub role: Role,
    pub meta: Value,
}

/// The presence could not be read (the cluster's Redis is away): nothing that depends on who is
/// present may be decided now.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("presence is unavailable")]
pub struct PresenceUnavailable;

/// Who is present on a topic: this node's hub on a single node, the shared presence in a
/// cluster.
pub trait PresenceView: Send + Sync {
    fn entries(
        &self,
        topic: Topic,
    ) -> BoxFuture<'_, Result<Vec<PresenceEntry>, PresenceUnavailable>>;
}

/// Distinct users present on a topic.
pub async fn present_users(
    view: &dyn PresenceView,
    topic: Topic,
) -> Result<HashSet<Uuid>, PresenceUnavailable> {
    Ok(view
        .entries(topic)
        .await?
        .iter()
        .map(|e| e.user_id)
        .collect())
}

/// Which of a session's participants are present on its presence channel (by payload user,
/// across every key).
pub async fn participants(
    view: &dyn PresenceView,
    session: &Session,
) -> Result<Participants, PresenceUnavailable> {
    let present = present_users(view, Topic::SessionPresence(session.id)).await?;
    Ok(Participants {
        customer_present: present.contains(&session.customer_id),
        mechanic_present: session.mechanic_id.is_some_and(|m| present.contains(&m)),
    })
}
