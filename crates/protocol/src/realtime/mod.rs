//! The Supabase Realtime wire protocol (Phoenix Channels framing) as Wrenchline speaks it; see
//! `docs/realtime-protocol.md`. Frames, the join config, `postgres_changes` filters and records,
//! the topics and the broadcasts Wrenchline sends on them, and the Phoenix presence sync
//! algorithm live here, without I/O, so the server, the Rust client and the fuzzers share one
//! implementation.

pub mod filter;
pub mod frame;
pub mod join;
pub mod payloads;
pub mod presence_sync;
pub mod topics;

pub use filter::{Filter, FilterError};
pub use frame::{BroadcastPayload, Frame, FrameError, Inbound, UserBroadcast, Vsn};
pub use join::{JoinConfig, JoinPayload, PgBinding};
pub use payloads::{ChangeType, PostgresChange, PostgresChangesMessage, SessionEnding, Typing};
pub use topics::Topic;
