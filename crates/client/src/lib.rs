//! wrenchline-client: what the desktop app, the load generator and the tests use to talk to
//! wrenchline-server: the HTTP API ([`api`]), the realtime socket ([`realtime`]), and on top of
//! both one signed-in mechanic's session ([`mechanic`]: feed, accept, chats, token refresh).

pub mod api;
pub mod mechanic;
pub mod realtime;
mod sensitive;

pub use api::{ApiClient, ClientError, Media, MediaVariant, Upload};
pub use mechanic::{
    ChatEvent, FeedStatus, MechanicEvent, MechanicEvents, MechanicOptions, MechanicSession,
};
pub use realtime::{
    Channel, ChannelEvent, ChannelOptions, ConnectionState, JoinReply, PostgresChange,
    PostgresChanges, RealtimeClient, RealtimeError, RealtimeOptions,
};
pub use sensitive::Sensitive;
