//! wrenchline-client: what the desktop app, the load generator and the tests use to talk to
//! wrenchline-server: the HTTP API ([`api`]) and the realtime socket ([`realtime`]).

pub mod api;
pub mod realtime;

pub use api::{ApiClient, ClientError};
pub use realtime::{
    Channel, ChannelEvent, ChannelOptions, ConnectionState, JoinReply, PostgresChange,
    PostgresChanges, RealtimeClient, RealtimeError, RealtimeOptions,
};
