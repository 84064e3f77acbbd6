//! The Wrenchline desktop app for mechanics: handles the command line, then builds and runs the
//! Tauri application. The shell stays thin: domain logic belongs in the crates under `crates/`
//! and in the plain modules here (settings, feed, deep_link), state lives in [`desk::Desk`]
//! (managed), and the UI reaches it only through the commands in [`commands`].

mod badge;
mod chat;
mod commands;
mod credentials;
mod deep_link;
mod desk;
mod error;
mod feed;
mod notify;
mod relaunch;
mod sensitive;
mod settings;
mod tray;
mod updates;

use std::ffi::OsString;

/// What the command line asks of the process before any window exists.
#[derive(Debug, PartialEq, Eq)]
enum Launch {
    /// Print `wrenchline-desk <version>` and exit: packaging tests check the installed binary this
    /// way, without a display.
    PrintVersion,
    /// Start the desktop app.
    App,
}

impl Launch {
    /// Reads OS strings so that an argument that is not UTF-8 (a file path, say) cannot panic
    /// the app. Only the first argument counts, so a deep link that happens to contain the word
    /// never turns a normal start into a version print.
    fn from_args<I: IntoIterator<Item = OsString>>(args: I) -> Self {
        match args.into_iter().nth(1) {
            Some(arg) if arg == "--version" => Launch::PrintVersion,
            _ => Launch::App,
        }
    }
}

fn version_line() -> String {
    format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

/// When the process started, for the "launch to interactive" figure the log reports.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Milliseconds since the process started.
pub(crate) fn since_start_ms() -> u128 {
    STARTED.get().map(|t| t.elapsed().as_millis()).unwrap_or(0)
}

/// Runs the desktop app, or answers `--version` without starting Tauri.
pub fn run() {
    STARTED.get_or_init(std::time::Instant::now);
    match Launch::from_args(std::env::args_os()) {
        Launch::PrintVersion => println!("{}", version_line()),
        Launch::App => app(relaunch::take_attempt()),
    }
}

/// `attempt`: how many times this launch has started again after a failed handoff to an
/// instance that was quitting (see [`relaunch`]).
fn app(attempt: u32) {
    use tauri::Manager;

    let result = tauri::Builder::default()
        // First, so that a second launch hands its arguments over and exits before anything else.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            log::info!("second launch: focusing this instance");
            desk::show_window(app);
            if let Some(id) = deep_link::from_args(&argv) {
                desk::open_session(app, id);
            }
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(
            tauri_plugin_log::Builder::new()
                .clear_targets()
                .target(tauri_plugin_log::Target::new(
                    tauri_plugin_log::TargetKind::LogDir { file_name: None },
                ))
                .target(tauri_plugin_log::Target::new(
                    tauri_plugin_log::TargetKind::Stderr,
                ))
                .level(log::LevelFilter::Info)
                .level_for("zbus", log::LevelFilter::Warn)
                // Connection attempts, joins and losses of the realtime socket.
                .level_for("wrenchline_client", log::LevelFilter::Debug)
                .build(),
        )
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ))
        .setup(move |app| {
            let handle = app.handle().clone();
            let config_dir = app.path().app_config_dir()?;
            app.manage(desk::Desk::new(config_dir));
            updates::run(&handle);
            match tray::build(&handle) {
                Ok(tray) => {
                    app.manage(tray);
                }
                Err(e) => log::warn!("no tray icon: {e}"),
            }
            desk::apply_start_at_login(&handle, desk::desk(&handle).settings().start_at_login);
            setup_deep_links(&handle);
            tauri::async_runtime::spawn(async move {
                desk::desk(&handle).restore(&handle).await;
            });
            if attempt > 0 {
                log::info!(
                    "{} started again after the previous instance went away during the handoff \
                     (restart {attempt})",
                    version_line()
                );
            } else {
                log::info!("{} started", version_line());
            }
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window keeps the app (and its notifications) running in the tray;
            // "Quit" in the tray menu ends it.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                if window.app_handle().try_state::<tray::Tray>().is_some() {
                    api.prevent_close();
                    let _ = window.hide();
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_state,
            commands::sign_in,
            commands::sign_out,
            commands::me,
            commands::requests,
            commands::accept,
            commands::set_availability,
            commands::change_setting,
            commands::take_navigation,
            commands::session,
            commands::messages,
            commands::send_message,
            commands::start_session,
            commands::end_session,
            commands::open_chat,
            commands::close_chat,
            commands::typing,
            commands::server_time,
            commands::check_for_update,
            commands::install_update,
            commands::restart_app,
        ])
        .run(tauri::generate_context!());
    match result {
        Ok(()) => {}
        Err(tauri::Error::PluginInitialization(plugin, reason)) if plugin == "single-instance" => {
            relaunch::after_failed_handoff(attempt, &reason)
        }
        Err(e) => panic!("the Tauri application failed to start: {e}"),
    }
}

/// `wrenchline://session/{id}`: registered at run time on Linux and Windows (an installed
/// bundle registers it too), read from the launch arguments, and from the OS while running.
fn setup_deep_links(app: &tauri::AppHandle) {
    use tauri_plugin_deep_link::DeepLinkExt;

    #[cfg(any(target_os = "linux", windows))]
    if let Err(e) = app.deep_link().register_all() {
        log::warn!("could not register the {} scheme: {e}", deep_link::SCHEME);
    }
    if let Ok(Some(urls)) = app.deep_link().get_current() {
        if let Some(id) = deep_link::from_args(urls.iter().map(|u| u.as_str())) {
            desk::open_session(app, id);
        }
    }
    let handle = app.clone();
    app.deep_link().on_open_url(move |event| {
        if let Some(id) = deep_link::from_args(event.urls().iter().map(|u| u.as_str())) {
            desk::open_session(&handle, id);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(args: &[&str]) -> Launch {
        Launch::from_args(args.iter().map(OsString::from))
    }

    #[test]
    fn version_flag_prints_version_instead_of_starting() {
        assert_eq!(
            launch(&["wrenchline-desk", "--version"]),
            Launch::PrintVersion
        );
    }

    #[test]
    fn anything_else_starts_the_app() {
        assert_eq!(launch(&["wrenchline-desk"]), Launch::App);
        assert_eq!(
            launch(&["wrenchline-desk", "wrenchline://session/x", "--version"]),
            Launch::App
        );
    }

    #[test]
    fn version_line_names_the_binary_and_version() {
        assert_eq!(
            version_line(),
            format!("wrenchline-desk {}", env!("CARGO_PKG_VERSION"))
        );
    }
}
