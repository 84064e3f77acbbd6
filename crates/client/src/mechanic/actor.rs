//! The task that owns the request feed: it joins the `requests` topic (with presence, tracking
//! the mechanic's availability), loads the list after every (re)subscription, applies row changes
//! in between, rebuilds the channel when the server closes it, and takes [`Command`]s from the
//! session handle. The list, the feed's status and the availability are published on `watch`
//! channels (read by the handle without locks) and as [`MechanicEvent`]s. The feed is `Live` once
//! a load after the subscription is in: the list is current and changes are being applied.
//! Row changes that arrive during a load wait in the channel and are applied after it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;
use wrenchline_protocol::presence::{Availability, PresencePayload};
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::{Role, Session, User};

use super::auth::Auth;
use super::feed::{FeedChange, RequestFeed};
use super::{now_rfc3339, FeedStatus, MechanicEvent};
use crate::realtime::{Channel, ChannelEvent, ChannelOptions, PostgresChanges, RealtimeClient};

/// What the handle asks of the feed task.
#[derive(Debug)]
pub(super) enum Command {
    SetAvailability(Availability),
    /// A request is gone (accepted here, or lost to another mechanic).
    Remove(Uuid),
}

pub(super) struct Watches {
    pub requests: watch::Sender<Vec<Session>>,
    pub status: watch::Sender<FeedStatus>,
    pub availability: watch::Sender<Availability>,
}

pub(super) struct FeedTask {
    pub auth: Arc<Auth>,
    pub realtime: RealtimeClient,
    pub me: User,
    pub events: mpsc::UnboundedSender<MechanicEvent>,
    pub watches: Watches,
    pub resubscribe_after: Duration,
    pub feed: RequestFeed,
}

/// The mechanics' request feed on `realtime`, as a session joins it: row changes of offered
/// sessions, with presence (where the availability is tracked). The load generator joins the
/// same.
pub fn requests_channel(realtime: &RealtimeClient) -> Channel {
    realtime.channel(
        &Topic::Requests.name(),
        ChannelOptions {
            postgres_changes: vec![
                PostgresChanges::new("*", "sessions").filter("status=eq.pending")
            ],
            presence_enabled: true,
            ..ChannelOptions::default()
        },
    )
}

impl FeedTask {
    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // Until a first load is in, a load lists its requests quietly (see `reload`).
        let mut loaded = false;
        loop {
            let channel = requests_channel(&self.realtime);
            let mut events = channel.events();
            self.set_status(FeedStatus::Connecting);
            if let Err(e) = channel.subscribe().await {
                tracing::warn!("request feed: join failed: {e}");
                self.set_status(FeedStatus::Reconnecting);
                self.pause(&mut commands, None).await;
                continue;
            }
            self.track(&channel).await;
            loaded |= self.reload(loaded).await;
            self.set_status(FeedStatus::Live);
            loop {
                tokio::select! {
                    command = commands.recv() => match command {
                        Some(command) => self.handle(command, Some(&channel)).await,
                        None => return,
                    },
                    event = events.recv() => match event {
                        Ok(ChannelEvent::PostgresChange(change)) if change.table == "sessions" => {
                            let outcome = self.feed.apply(
                                change.change_type.as_str(),
                                &change.record,
                                change.old_record.as_ref(),
                            );
                            self.publish_change(outcome);
                        }
                        Ok(ChannelEvent::Reconnecting) => self.set_status(FeedStatus::Reconnecting),
                        Ok(ChannelEvent::Rejoined) => {
                            loaded |= self.reload(loaded).await;
                            self.set_status(FeedStatus::Live);
                        }
                        Ok(ChannelEvent::Closed { reason }) => {
                            tracing::warn!("request feed closed by the server: {reason}");
                            break;
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => loaded |= self.reload(loaded).await,
                        Err(RecvError::Closed) => break,
                    },
                }
            }
            self.set_status(FeedStatus::Reconnecting);
            self.pause(&mut commands, None).await;
        }
    }

    /// Waits before rebuilding the channel, still taking commands meanwhile.
    async fn pause(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        channel: Option<&Channel>,
    ) {
        let until = tokio::time::Instant::now() + self.resubscribe_after;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                command = commands.recv() => match command {
                    Some(command) => self.handle(command, channel).await,
                    None => return,
                },
            }
        }
    }

    async fn handle(&mut self, command: Command, channel: Option<&Channel>) {
        match command {
            Command::SetAvailability(availability) => {
                self.watches.availability.send_replace(availability);
                if let Some(channel) = channel {
                    self.track(channel).await;
                }
            }
            Command::Remove(id) => {
                let outcome = self.feed.remove(id);
                self.publish_change(outcome);
            }
        }
    }

    /// Tracks the availability on `requests` (the client tracks it again by itself after a
    /// rejoin; the payload is re-sent after each change), then says it is shared.
    async fn track(&self, channel: &Channel) {
        let availability = *self.watches.availability.borrow();
        let payload = PresencePayload {
            user_id: self.me.id.to_string(),
            role: Role::Mechanic,
            online_at: now_rfc3339(),
            availability: Some(availability),
        };
        let payload = serde_json::to_value(payload).unwrap_or_default();
        match channel.track(payload).await {
            Ok(()) => {
                let _ = self.events.send(MechanicEvent::Availability(availability));
            }
            Err(e) => tracing::warn!("could not share availability: {e}"),
        }
    }

    /// Loads the offered requests; answers whether it could. With `announce`, the ones not seen
    /// before are announced (offered while the feed was away). Without (the first load after
    /// signing in), they are listed quietly: most were on offer before the mechanic came, and one
    /// offered since the subscription is announced by its row change, applied after the load.
    async fn reload(&mut self, announce: bool) -> bool {
        match self
            .auth
            .call(|api| async move { api.requests().await })
            .await
        {
            Ok(sessions) => {
                let added = if announce {
                    self.feed.replace(sessions)
                } else {
                    self.feed.load(sessions);
                    Vec::new()
                };
                self.publish();
                for session in added {
                    let _ = self
                        .events
                        .send(MechanicEvent::NewRequest(Box::new(session)));
                }
                true
            }
            Err(e) => {
                tracing::warn!("could not load the requests: {e}");
                false
            }
        }
    }

    fn publish_change(&self, change: FeedChange) {
        match change {
            FeedChange::Unchanged => {}
            FeedChange::Added(session) => {
                self.publish();
                let _ = self.events.send(MechanicEvent::NewRequest(session));
            }
            FeedChange::Updated | FeedChange::Removed(_) => self.publish(),
        }
    }

    fn publish(&self) {
        let rows = self.feed.rows().to_vec();
        self.watches.requests.send_replace(rows.clone());
        let _ = self.events.send(MechanicEvent::Requests(rows));
    }

    fn set_status(&self, status: FeedStatus) {
        let previous = self.watches.status.send_replace(status);
        if previous != status {
            tracing::info!("request feed: {}", status.as_str());
        }
        let _ = self.events.send(MechanicEvent::FeedStatus(status));
    }
}
