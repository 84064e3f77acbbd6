// Executable entry point of the mechanics' desktop app; everything it does lives in the library.

// Keeps release builds on Windows from opening a console window next to the app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    wrenchline_desk::run();
}
