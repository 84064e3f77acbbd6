//! wrenchline-client: what the desktop app, the load generator and the tests use to talk to
//! wrenchline-server.

pub mod api;

pub use api::{ApiClient, ClientError};
