//! wrenchline-server: the REST API, storage and session lifecycle behind the customer web link and
//! the mechanics' desktop app.

pub mod app;
pub mod auth;
pub mod availability;
pub mod cluster;
pub mod config;
pub mod counters;
pub mod error;
pub mod events;
pub mod extract;
pub mod http;
pub mod lifecycle;
pub mod limits;
pub mod mail;
pub mod media;
pub mod memory;
pub mod metrics;
pub mod presence;
pub mod proxy;
pub mod realtime;
pub mod retention;
pub mod state;
pub mod storage;

pub use app::Application;
pub use config::Settings;
