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
