//! The tray icon: the pending count (drawn on the icon, see [`crate::badge`]; also the title
//! beside the icon where the platform shows one, the tooltip, and the first menu line), a way
//! back to the window, online/away, and quit.

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Wry};

use crate::desk::{self, Availability};

pub struct Tray {
    icon: TrayIcon,
    /// The plain icon (RGBA, width, height) the count is drawn on.
    base: (Vec<u8>, u32, u32),
    shown_count: std::sync::Mutex<Option<usize>>,
    pending: MenuItem<Wry>,
    away: CheckMenuItem<Wry>,
}

/// "No pending requests", "1 pending request", "3 pending requests".
pub fn pending_text(count: usize) -> String {
    match count {
        0 => "No pending requests".to_string(),
        1 => "1 pending request".to_string(),
        n => format!("{n} pending requests"),
    }
}

pub fn build(app: &AppHandle) -> tauri::Result<Tray> {
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
    let icon = TrayIconBuilder::with_id("main")
        .icon(image)
        .tooltip(format!("Wrenchline: {}", pending_text(0)))
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "show" => desk::show_window(app),
            "away" => {
                let away = app
                    .try_state::<Tray>()
                    .and_then(|t| t.away.is_checked().ok())
                    .unwrap_or(false);
                let availability = if away {
                    Availability::Away
                } else {
                    Availability::Online
                };
                desk::set_availability(app, availability);
            }
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                desk::show_window(tray.app_handle());
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
        let badge = crate::badge::label(count);
        let mut shown = self.shown_count.lock().unwrap_or_else(|e| e.into_inner());
        if shown.is_some_and(|n| crate::badge::label(n) == badge) {
            return;
        }
        let (rgba, width, height) = &self.base;
        let image = Image::new_owned(
            crate::badge::draw(rgba, *width, *height, count),
            *width,
            *height,
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_count_reads_well() {
        assert_eq!(pending_text(0), "No pending requests");
        assert_eq!(pending_text(1), "1 pending request");
        assert_eq!(pending_text(4), "4 pending requests");
    }
}
