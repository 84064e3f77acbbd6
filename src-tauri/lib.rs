//! The Wrenchline desktop app for mechanics: answers the command line, then builds and runs the
//! Tauri application. This crate is the adapter between Tauri and the OS on one side and plain
//! crates on the other: the mechanic's connection is `wrenchline_client::MechanicSession`, the
//! settings, credentials, notification text and tray badge are `wrenchline_desk_core`'s. Here:
//! the managed state ([`desk`]), the commands the UI invokes ([`commands`]), the loops that
//! forward session events and act on intents ([`events`], [`intents`]), attachments served to
//! the page with the mechanic's token ([`media`]), and the OS integrations (notifications, tray,
//! updates; a launch that meets a quitting instance starts again through
//! `wrenchline_desk_core::relaunch`).
//!
//! Module dependencies run one way, in this order (checked by a test): lib, commands, updates,
//! events, media, desk, ui, notify, tray, intents, autostart, error.

mod autostart;
mod commands;
mod desk;
mod error;
mod events;
mod intents;
mod media;
mod notify;
mod tray;
mod ui;
mod updates;

use wrenchline_desk_core::deep_link;
use wrenchline_desk_core::launch::{self, Launch};
use wrenchline_desk_core::relaunch;

use crate::intents::{Intent, Intents};

fn version_line() -> String {
    format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

/// Runs the desktop app, or answers the command line's flags without starting Tauri (so
/// without a display): packaging tests and IT use them on machines with none.
pub fn run() {
    commands::mark_launch();
    match Launch::from_args(std::env::args_os()) {
        Launch::PrintVersion => println!("{}", version_line()),
        Launch::PrintHelp => print!("{}", launch::usage(env!("CARGO_PKG_NAME"))),
        Launch::CheckManagedSettings(file) => match launch::check_managed_settings(&file) {
            Ok(report) => println!("{report}"),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        },
        Launch::Usage(message) => {
            eprint!("{message}\n\n{}", launch::usage(env!("CARGO_PKG_NAME")));
            std::process::exit(2);
        }
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
            if let Some(intents) = app.try_state::<Intents>() {
                intents.send(Intent::ShowWindow);
                if let Some(id) = deep_link::from_args(&argv) {
                    intents.send(Intent::OpenSession(id));
                }
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
        .register_asynchronous_uri_scheme_protocol(
            wrenchline_desk_core::media::SCHEME,
            media::serve,
        )
        .setup(move |app| {
            let handle = app.handle().clone();
            let config_dir = app.path().app_config_dir()?;
            let desk = desk::Desk::new(config_dir);
            autostart::apply(&handle, desk.settings().start_at_login);
            app.manage(desk);
            let (intents, received) = Intents::channel();
            app.manage(intents.clone());
            events::run_intents(&handle, received);
            updates::run(&handle);
            match tray::build(&handle, intents.clone()) {
                Ok(tray) => {
                    app.manage(tray);
                }
                Err(e) => log::warn!("no tray icon: {e}"),
            }
            setup_deep_links(&handle, &intents);
            tauri::async_runtime::spawn(async move {
                if let Some(started) = handle.state::<desk::Desk>().restore(&handle).await {
                    events::forward(&handle, started);
                }
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
            media::upload_attachment,
            media::save_attachment,
            media::attachment_bytes,
            commands::start_session,
            commands::end_session,
            commands::open_chat,
            commands::close_chat,
            commands::typing,
            commands::server_time,
            commands::check_for_update,
            commands::install_update,
            commands::restart_app,
            commands::history,
            commands::session_record,
            commands::write_summary,
            commands::write_notes,
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
fn setup_deep_links(app: &tauri::AppHandle, intents: &Intents) {
    use tauri_plugin_deep_link::DeepLinkExt;

    #[cfg(any(target_os = "linux", windows))]
    if let Err(e) = app.deep_link().register_all() {
        log::warn!("could not register the {} scheme: {e}", deep_link::SCHEME);
    }
    if let Ok(Some(urls)) = app.deep_link().get_current() {
        if let Some(id) = deep_link::from_args(urls.iter().map(|u| u.as_str())) {
            intents.send(Intent::OpenSession(id));
        }
    }
    let intents = intents.clone();
    app.deep_link().on_open_url(move |event| {
        if let Some(id) = deep_link::from_args(event.urls().iter().map(|u| u.as_str())) {
            intents.send(Intent::OpenSession(id));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_names_the_binary_and_version() {
        assert_eq!(
            version_line(),
            format!("wrenchline-desk {}", env!("CARGO_PKG_VERSION"))
        );
    }

    /// The shell's modules depend on each other one way only (the order in this crate's doc
    /// comment): each `crate::m` a module names must come later in that order than the module.
    #[test]
    fn modules_form_no_cycle() {
        let order = [
            "lib",
            "commands",
            "updates",
            "events",
            "media",
            "desk",
            "ui",
            "notify",
            "tray",
            "intents",
            "autostart",
            "error",
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src-tauri");
        for (rank, module) in order.iter().enumerate().skip(1) {
            let mut text = std::fs::read_to_string(dir.join(format!("{module}.rs"))).unwrap();
            // A module's own parts (desk/restore.rs) count as the module.
            for part in std::fs::read_dir(dir.join(module)).into_iter().flatten() {
                text += &std::fs::read_to_string(part.unwrap().path()).unwrap();
            }
            for used in &order[1..=rank] {
                let named = text.contains(&format!("crate::{used}::"))
                    || text.contains(&format!("use crate::{used};"));
                assert!(
                    !named,
                    "{module}.rs names crate::{used}, which comes before it (or is itself)"
                );
            }
        }
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(
            files,
            order.len() + 4,
            "main.rs, build.rs, permissions/, desk/ (desk's own parts) and the modules"
        );
    }
}
