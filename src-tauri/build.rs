// Build script of the desktop app: lets tauri-build read `tauri.conf.json`, check the icons and
// capabilities, and prepare what `tauri::generate_context!()` embeds.

fn main() {
    tauri_build::build();
}
