//! What the shell shows outside the page's own state: the main window brought forward, and the
//! request list (the `requests` event) with its count on the tray.

use tauri::{AppHandle, Emitter, Manager};
use wrenchline_protocol::Session;

use crate::tray::Tray;

/// Brings the main window forward (tray, a second launch, a notification).
pub fn show_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

/// The list in the UI and the count on the tray.
pub fn show_requests(app: &AppHandle, rows: Vec<Session>) {
    if let Some(tray) = app.try_state::<Tray>() {
        tray.show_pending(rows.len());
    }
    let _ = app.emit("requests", rows);
}
