//! Native notifications for new requests and new chat messages, through `notify-rust` (the freedesktop Notifications
//! service on Linux, the notification centres on macOS and Windows). Each notification waits on
//! its own thread for the mechanic's answer and turns it into an [`Intent`]: a click opens the
//! request, "Accept" (Linux and Windows) accepts it. The text is `RequestNotice`'s, escaped when
//! the daemon reads markup. The sound is the platform's message sound, asked for by name (and
//! explicitly suppressed when the mechanic turned it off); a Linux notification daemon that plays
//! no sounds (it lacks the freedesktop `sound` capability, as dunst does) gets the app's own
//! chime instead, played through the default audio output.

use notify_rust::Notification;
use wrenchline_desk_core::notice::{MessageNotice, RequestNotice};
use wrenchline_protocol::{Message, Session};

use crate::intents::{Intent, Intents};

/// The freedesktop sound theme's name for an incoming message.
#[cfg(all(unix, not(target_os = "macos")))]
const SOUND: &str = "message-new-instant";
#[cfg(target_os = "macos")]
const SOUND: &str = "Glass";
#[cfg(target_os = "windows")]
const SOUND: &str = "IM";

/// Shows the notification for a new request; never blocks the caller.
pub fn new_request(session: &Session, sound: bool, intents: Intents) {
    let session = session.clone();
    let spawned = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            let id = session.id;
            let RequestNotice { summary, body } = RequestNotice::new(&session, renders_markup());
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
                    if sound && !daemon_plays_sound() {
                        chime::play();
                    }
                    handle.wait_for_action(|action| match action {
                        "accept" => intents.send(Intent::Accept(id)),
                        "default" => intents.send(Intent::OpenRequest(id)),
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

/// Shows the notification for a chat message from the customer ("Photo", "Video", "Voice note"
/// when it carries only that); a click opens the chat. Never blocks the caller.
pub fn new_message(message: Message, from: String, sound: bool, intents: Intents) {
    let spawned = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            let session = message.session_id;
            let MessageNotice { summary, body } =
                MessageNotice::new(&message, &from, renders_markup());
            let mut n = Notification::new();
            n.appname("Wrenchline")
                .summary(&summary)
                .body(&body)
                .icon("wrenchline-desk")
                .action("default", "Open");
            with_sound(&mut n, sound);
            match n.show() {
                Ok(handle) => {
                    log::info!("notified of message {} in {session}", message.id);
                    handle.wait_for_action(|action| {
                        if action == "default" {
                            intents.send(Intent::OpenSession(session));
                        }
                    });
                }
                Err(e) => log::warn!("could not show the notification for a message: {e}"),
            }
        });
    if let Err(e) = spawned {
        log::warn!("could not start the notification thread: {e}");
    }
}

/// Whether the notification daemon reads markup (the freedesktop `body-markup` capability).
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

/// Whether the notification daemon plays the sound it is asked for (the freedesktop `sound`
/// capability); macOS and Windows always do.
#[cfg(all(unix, not(target_os = "macos")))]
fn daemon_plays_sound() -> bool {
    notify_rust::get_capabilities()
        .map(|caps| caps.iter().any(|c| c == "sound"))
        .unwrap_or(false)
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn daemon_plays_sound() -> bool {
    true
}

/// The app's own chime: two short rising tones through the default audio output (ALSA), for
/// daemons that play no sound. Played on the notification's thread; a machine without an audio
/// output only logs why there was no chime.
#[cfg(all(unix, not(target_os = "macos")))]
mod chime {
    use std::time::Duration;

    use rodio::source::{SineWave, Source};

    /// The tones, in hertz, each played for [`TONE`].
    const TONES: [f32; 2] = [880.0, 1318.5];
    const TONE: Duration = Duration::from_millis(140);
    const FADE: Duration = Duration::from_millis(15);

    pub fn play() {
        let mut sink = match rodio::DeviceSinkBuilder::open_default_sink() {
            Ok(sink) => sink,
            Err(e) => {
                log::warn!("no audio output for the notification sound: {e}");
                return;
            }
        };
        sink.log_on_drop(false);
        for freq in TONES {
            let tone = SineWave::new(freq)
                .take_duration(TONE)
                .fade_in(FADE)
                .amplify(0.25);
            sink.mixer().add(tone);
            std::thread::sleep(TONE);
        }
        // The output is closed when the sink drops: let the last samples drain first.
        std::thread::sleep(Duration::from_millis(120));
        log::info!("played the notification sound");
    }
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
mod chime {
    pub fn play() {}
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

#[cfg(all(test, unix, not(target_os = "macos")))]
mod tests {
    use super::*;

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
