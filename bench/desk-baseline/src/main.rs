//! A bare Tauri window: one static page and one command, the page's signal that it can be used.
//! `tests/desktop/measure.sh` measures it beside wrenchline-desk, so the desktop app's launch
//! time, memory and size are read as ratios against what Tauri itself costs on the machine.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::sync::OnceLock;
use std::time::Instant;

static LAUNCHED: OnceLock<Instant> = OnceLock::new();

/// Called by the page once it has loaded; logged in the form the desktop app uses.
#[tauri::command]
fn ready() {
    static FIRST: std::sync::Once = std::sync::Once::new();
    FIRST.call_once(|| {
        let ms = LAUNCHED.get().map_or(0, |t| t.elapsed().as_millis());
        println!("ui ready {ms} ms after launch");
    });
}

fn main() {
    LAUNCHED.get_or_init(Instant::now);
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![ready])
        .run(tauri::generate_context!())
        .expect("the baseline window runs");
}
