//! The tray icon: the pending count (drawn on the icon by `wrenchline_desk_core::badge`; also the
//! title beside the icon where the platform shows one, the tooltip, and the first menu line), a
//! way back to the window, online/away, and quit. Clicks become [`Intent`]s.

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Wry};
use wrenchline_desk_core::badge;
use wrenchline_desk_core::notice::pending_text;
use wrenchline_protocol::presence::Availability;

use crate::intents::{Intent, Intents};

pub struct Tray {
    icon: TrayIcon,
    /// The plain icon (RGBA, width, height) the count is drawn on.
    base: (Vec<u8>, u32, u32),
    shown_count: std::sync::Mutex<Option<usize>>,
    pending: MenuItem<Wry>,
    away: CheckMenuItem<Wry>,
}

pub fn build(app: &AppHandle, intents: Intents) -> tauri::Result<Tray> {
    let pending = MenuItem::with_id(app, "pending", pending_text(0), false, None::<&str>)?;
    let show = MenuItem::with_id(app, "show", "Show Wrenchline", true, None::<&str>)?;
    let away = CheckMenuItem::with_id(
        app,
        "away",
        "Away (no notifications)",
        true,
        false,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(app, "quit", "Quit Wrenchline", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &pending,
            &PredefinedMenuItem::separator(app)?,
            &show,
            &away,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    let image = Image::from_bytes(include_bytes!("../icons/64x64.png"))?;
    let base = (image.rgba().to_vec(), image.width(), image.height());
    let clicks = intents.clone();
    let away_item = away.clone();
    let icon = TrayIconBuilder::with_id("main")
        .icon(image)
        .tooltip(format!("Wrenchline: {}", pending_text(0)))
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(move |_, event| match event.id().as_ref() {
            "show" => intents.send(Intent::ShowWindow),
            "away" => {
                let away = away_item.is_checked().unwrap_or(false);
                intents.send(Intent::SetAvailability(if away {
                    Availability::Away
                } else {
                    Availability::Online
                }));
            }
            "quit" => intents.send(Intent::Quit),
            _ => {}
        })
        .on_tray_icon_event(move |_, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                clicks.send(Intent::ShowWindow);
            }
        })
        .build(app)?;
    Ok(Tray {
        icon,
        base,
        shown_count: std::sync::Mutex::new(Some(0)),
        pending,
        away,
    })
}

impl Tray {
    pub fn show_pending(&self, count: usize) {
        let text = pending_text(count);
        let _ = self.pending.set_text(&text);
        let _ = self.icon.set_tooltip(Some(format!("Wrenchline: {text}")));
        // Linux shows the title as a label beside the icon, macOS in the menu bar.
        let _ = self
            .icon
            .set_title((count > 0).then(|| count.to_string()).as_deref());
        let label = badge::label(count);
        let mut shown = self.shown_count.lock().unwrap_or_else(|e| e.into_inner());
        if shown.is_some_and(|n| badge::label(n) == label) {
            return;
        }
        let (rgba, width, height) = &self.base;
        let image = Image::new_owned(badge::draw(rgba, *width, *height, count), *width, *height);
        match self.icon.set_icon(Some(image)) {
            Ok(()) => *shown = Some(count),
            Err(e) => {
                log::warn!("could not draw the pending count on the tray icon: {e}");
                *shown = None;
            }
        }
    }

    pub fn show_availability(&self, availability: Availability) {
        let _ = self.away.set_checked(availability == Availability::Away);
    }
}
