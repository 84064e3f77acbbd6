//! "Start at login": the OS entry (an XDG autostart file, a launch agent, a registry key) is the
//! autostart plugin's; this reconciles it with the setting.

use tauri::AppHandle;
use tauri_plugin_autostart::ManagerExt;

pub fn apply(app: &AppHandle, wanted: bool) {
    let launcher = app.autolaunch();
    if launcher.is_enabled().unwrap_or(false) == wanted {
        return;
    }
    let result = if wanted {
        launcher.enable()
    } else {
        launcher.disable()
    };
    if let Err(e) = result {
        log::warn!("could not change start at login to {wanted}: {e}");
    }
}
