//! wrenchline-desk-core: the mechanics' desktop app's logic that needs no Tauri, so it is tested
//! without building a window: the settings and IT's managed file ([`settings`]), where the
//! refresh token lives ([`credentials`]: the OS keyring, or memory), the command line answered
//! before any window ([`launch`]), what notifications and the tray say ([`notice`]), the count
//! drawn on the tray icon ([`badge`]), `wrenchline://` links ([`deep_link`]), the addresses and
//! saved files of attachments ([`media`]), starting a launch again after a failed single-instance
//! handoff ([`relaunch`]) and the values the UI is told ([`view`]). The
//! mechanic's connection itself is `wrenchline_client::MechanicSession`; the app crate
//! (`src-tauri/`) only connects these to Tauri and the OS.

pub mod badge;
pub mod credentials;
pub mod deep_link;
mod error;
pub mod launch;
pub mod media;
pub mod notice;
pub mod relaunch;
pub mod settings;
pub mod view;

pub use error::Error;
