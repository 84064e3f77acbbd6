//! wrenchline-server: the REST API, storage and session lifecycle behind the customer web link and
//! the mechanics' desktop app.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod extract;
pub mod http;
pub mod lifecycle;
pub mod limits;
pub mod media;
pub mod memory;
pub mod metrics;
pub mod proxy;
pub mod realtime;
pub mod retention;
pub mod state;
pub mod storage;

pub use app::Application;
pub use config::Settings;
