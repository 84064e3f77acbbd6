//! Native notifications for new requests, through `notify-rust` (the freedesktop Notifications
//! service on Linux, the notification centres on macOS and Windows). Each notification waits on
//! its own thread for the mechanic's answer: a click brings the window forward on the request,
//! "Accept" (Linux and Windows) accepts it from the notification. The sound is the platform's
//! message sound, asked for by name (and explicitly suppressed when the mechanic turned it off).

use notify_rust::Notification;
use tauri::AppHandle;
use wrenchline_protocol::Session;

use crate::feed;

/// The freedesktop sound theme's name for an incoming message.
#[cfg(all(unix, not(target_os = "macos")))]
const SOUND: &str = "message-new-instant";
#[cfg(target_os = "macos")]
const SOUND: &str = "Glass";
#[cfg(target_os = "windows")]
const SOUND: &str = "IM";

/// Shows the notification for a new request; never blocks the caller.
pub fn new_request(app: &AppHandle, session: &Session, sound: bool) {
    let (summary, body) = feed::notice(session);
    let id = session.id;
    let app = app.clone();
    let spawned = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            let body = if renders_markup() {
                escape_markup(&body)
            } else {
                body
            };
            let mut n = Notification::new();
            n.appname("Wrenchline")
                .summary(&summary)
                .body(&body)
                .icon("wrenchline-desk")
                .action("default", "Open")
                .action("accept", "Accept");
            with_sound(&mut n, sound);
            match n.show() {
                Ok(handle) => {
                    log::info!("notified of request {id}");
                    handle.wait_for_action(|action| match action {
                        "accept" => crate::desk::accept_from_notification(&app, id),
                        "default" => crate::desk::open_request(&app, id),
                        _ => {}
                    });
                }
                Err(e) => log::warn!("could not show the notification for {id}: {e}"),
            }
        });
    if let Err(e) = spawned {
        log::warn!("could not start the notification thread: {e}");
    }
}

/// Whether the notification daemon reads the body as markup (the freedesktop `body-markup`
/// capability). The body is the customer's words: then it must be escaped, or `<a href>` and
/// `<img>` in a concern would become links and images in the mechanic's notification.
#[cfg(all(unix, not(target_os = "macos")))]
fn renders_markup() -> bool {
    notify_rust::get_capabilities()
        .map(|caps| caps.iter().any(|c| c == "body-markup"))
        .unwrap_or(true)
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn renders_markup() -> bool {
    false
}

/// Text as the freedesktop notification markup shows it literally.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(all(unix, not(target_os = "macos")))]
fn with_sound(n: &mut Notification, sound: bool) {
    use notify_rust::Hint;
    n.hint(Hint::Category("im.received".into()))
        .hint(Hint::DesktopEntry("wrenchline-desk".into()));
    if sound {
        n.sound_name(SOUND);
    } else {
        n.hint(Hint::SuppressSound(true));
    }
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn with_sound(n: &mut Notification, sound: bool) {
    if sound {
        n.sound_name(SOUND);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_a_concern_is_shown_as_text() {
        assert_eq!(
            escape_markup(r#"<a href="https://x">win</a> & <img src=x>"#),
            r#"&lt;a href="https://x"&gt;win&lt;/a&gt; &amp; &lt;img src=x&gt;"#
        );
        assert_eq!(escape_markup("Brakes squeal"), "Brakes squeal");
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn the_sound_is_asked_for_by_name_or_suppressed() {
        use notify_rust::Hint;
        let mut on = Notification::new();
        with_sound(&mut on, true);
        assert!(on.hints.contains(&Hint::SoundName(SOUND.into())));
        assert!(!on.hints.contains(&Hint::SuppressSound(true)));
        let mut off = Notification::new();
        with_sound(&mut off, false);
        assert!(off.hints.contains(&Hint::SuppressSound(true)));
        assert!(!off.hints.iter().any(|h| matches!(h, Hint::SoundName(_))));
    }
}
