//! One open chat: the session's presence topic (where the mechanic is tracked as
//! `{user_id, role: "mechanic", online_at}`) and its chat topic (the session's row changes, its
//! messages, `typing` and the server's `session_ending`), on the app's one realtime connection.
//! Everything that happens is sent as a [`ChatEvent`] (in [`MechanicEvent::Chat`]); the UI decides
//! who is present from the raw presence state's payload `user_id`s (never from the keys, which
//! are per connection).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;
use wrenchline_protocol::presence::PresencePayload;
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::realtime::{SessionEnding, Typing};
use wrenchline_protocol::{Role, User};

use super::{now_rfc3339, MechanicEvent};
use crate::realtime::{Channel, ChannelEvent, ChannelOptions, PostgresChanges, RealtimeClient};
use crate::ClientError;

type Events = mpsc::UnboundedSender<MechanicEvent>;

/// Wait before joining again after the server closed a session's channel.
const REJOIN_AFTER: Duration = Duration::from_secs(2);

/// What happens in an open chat, tagged by `kind` (as the desktop UI reads it).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The link's health: `connecting`, `subscribed`, `reconnecting`, `closed`.
    Status {
        session_id: Uuid,
        status: &'static str,
        detail: Option<String>,
    },
    /// (Re)subscribed: the moment to fetch what was missed.
    Subscribed {
        session_id: Uuid,
    },
    Session {
        session_id: Uuid,
        session: Value,
    },
    Message {
        session_id: Uuid,
        message: Value,
    },
    /// The raw presence state, connection key → `{metas: [payload…]}`.
    Presence {
        session_id: Uuid,
        state: Value,
    },
    Typing {
        session_id: Uuid,
        user_id: String,
        role: String,
    },
    Ending {
        session_id: Uuid,
        ends_at: String,
        seconds_left: i64,
    },
}

/// The session's two channels; replaced when the server closed them and they are joined anew.
#[derive(Clone)]
struct Channels {
    chat: Channel,
    presence: Channel,
}

pub struct ChatLink {
    current: Arc<Mutex<Channels>>,
    me: User,
    task: JoinHandle<()>,
}

fn emit(events: &Events, event: ChatEvent) {
    let _ = events.send(MechanicEvent::Chat(event));
}

fn status(events: &Events, id: Uuid, status: &'static str, detail: Option<String>) {
    emit(
        events,
        ChatEvent::Status {
            session_id: id,
            status,
            detail,
        },
    );
}

fn channels(realtime: &RealtimeClient, id: Uuid) -> Channels {
    let chat = realtime.channel(
        &Topic::SessionChat(id).name(),
        ChannelOptions {
            postgres_changes: vec![
                PostgresChanges::new("*", "sessions").filter(format!("id=eq.{id}")),
                PostgresChanges::new("INSERT", "messages").filter(format!("session_id=eq.{id}")),
            ],
            ..ChannelOptions::default()
        },
    );
    let presence = realtime.channel(
        &Topic::SessionPresence(id).name(),
        ChannelOptions {
            presence_enabled: true,
            ..ChannelOptions::default()
        },
    );
    Channels { chat, presence }
}

impl ChatLink {
    /// Opens the session's topics in the background and tracks the mechanic as present.
    pub(super) fn open(events: &Events, realtime: RealtimeClient, me: User, id: Uuid) -> ChatLink {
        let current = Arc::new(Mutex::new(channels(&realtime, id)));
        let task = tokio::spawn(run(
            events.clone(),
            realtime,
            me.clone(),
            id,
            current.clone(),
        ));
        ChatLink { current, me, task }
    }

    fn channels(&self) -> Channels {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Tells the other side that the mechanic is typing.
    pub(super) async fn typing(&self) -> Result<(), ClientError> {
        self.channels()
            .chat
            .broadcast(
                Typing::EVENT,
                serde_json::to_value(Typing {
                    user_id: self.me.id,
                    role: self.me.role,
                })
                .expect("a typing payload serializes"),
            )
            .await?;
        Ok(())
    }

    /// The current presence state, for a UI that (re)opens the chat.
    pub(super) fn presence(&self) -> Value {
        self.channels().presence.presence().to_value()
    }

    /// Leaves both topics: the mechanic is no longer present.
    pub(super) async fn close(self) {
        self.task.abort();
        let Channels { chat, presence } = self.channels();
        let _ = presence.untrack().await;
        let _ = presence.leave().await;
        let _ = chat.leave().await;
    }
}

async fn run(
    events: Events,
    realtime: RealtimeClient,
    me: User,
    id: Uuid,
    current: Arc<Mutex<Channels>>,
) {
    let renew = || {
        let fresh = channels(&realtime, id);
        *current.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        fresh
    };
    let Channels {
        mut chat,
        mut presence,
    } = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
    loop {
        status(&events, id, "connecting", None);
        let mut chat_events = chat.events();
        let mut presence_events = presence.events();
        let joined = async {
            chat.subscribe().await?;
            presence.subscribe().await?;
            let payload = PresencePayload {
                user_id: me.id.to_string(),
                role: Role::Mechanic,
                online_at: now_rfc3339(),
                availability: None,
            };
            presence
                .track(serde_json::to_value(payload).unwrap_or_default())
                .await
        }
        .await;
        if let Err(e) = joined {
            tracing::warn!("chat {id}: join failed: {e}");
            status(&events, id, "reconnecting", Some(e.to_string()));
            let _ = chat.leave().await;
            let _ = presence.leave().await;
            tokio::time::sleep(REJOIN_AFTER).await;
            Channels { chat, presence } = renew();
            continue;
        }
        status(&events, id, "subscribed", None);
        emit(&events, ChatEvent::Subscribed { session_id: id });
        emit(
            &events,
            ChatEvent::Presence {
                session_id: id,
                state: presence.presence().to_value(),
            },
        );
        loop {
            tokio::select! {
                event = chat_events.recv() => match event {
                    Ok(ChannelEvent::PostgresChange(change)) => {
                        let event = if change.table == "messages" {
                            ChatEvent::Message { session_id: id, message: change.record }
                        } else {
                            ChatEvent::Session { session_id: id, session: change.record }
                        };
                        emit(&events, event);
                    }
                    Ok(ChannelEvent::Broadcast { event, payload }) => match event.as_str() {
                        Typing::EVENT => {
                            if let Ok(typing) = serde_json::from_value::<Typing>(payload) {
                                if typing.user_id != me.id {
                                    emit(&events, ChatEvent::Typing {
                                        session_id: id,
                                        user_id: typing.user_id.to_string(),
                                        role: typing.role.as_str().to_string(),
                                    });
                                }
                            }
                        }
                        SessionEnding::EVENT => {
                            if let Ok(ending) = serde_json::from_value::<SessionEnding>(payload) {
                                emit(&events, ChatEvent::Ending {
                                    session_id: id,
                                    ends_at: ending
                                        .ends_at
                                        .format(&time::format_description::well_known::Rfc3339)
                                        .unwrap_or_default(),
                                    seconds_left: ending.seconds_left,
                                });
                            }
                        }
                        _ => {}
                    },
                    Ok(ChannelEvent::Reconnecting) => status(&events, id, "reconnecting", None),
                    Ok(ChannelEvent::Rejoined) => {
                        status(&events, id, "subscribed", None);
                        emit(&events, ChatEvent::Subscribed { session_id: id });
                    }
                    Ok(ChannelEvent::Closed { reason }) => {
                        status(&events, id, "reconnecting", Some(reason));
                        break;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                },
                event = presence_events.recv() => match event {
                    Ok(ChannelEvent::PresenceSync) | Err(RecvError::Lagged(_)) => emit(&events, ChatEvent::Presence {
                        session_id: id,
                        state: presence.presence().to_value(),
                    }),
                    Ok(ChannelEvent::Closed { reason }) => {
                        status(&events, id, "reconnecting", Some(reason));
                        break;
                    }
                    Ok(_) => {}
                    Err(RecvError::Closed) => break,
                },
            }
        }
        let _ = chat.leave().await;
        let _ = presence.leave().await;
        tokio::time::sleep(REJOIN_AFTER).await;
        Channels { chat, presence } = renew();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_tagged_by_kind_with_the_session() {
        let id: Uuid = "3f2c1d2e-8a7b-4c5d-9e0f-1a2b3c4d5e6f".parse().unwrap();
        let value = serde_json::to_value(ChatEvent::Typing {
            session_id: id,
            user_id: "u".into(),
            role: "customer".into(),
        })
        .unwrap();
        assert_eq!(
            value,
            json!({"kind": "typing", "session_id": id, "user_id": "u", "role": "customer"})
        );
    }
}
