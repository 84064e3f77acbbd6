//! A launch that meets an instance on its way out. The single-instance plugin hands a second
//! launch's arguments to the running instance (over the session D-Bus on Linux) and exits; when
//! that instance quits between the check and the handoff, the handoff fails ("the recipient
//! disconnected without replying") and the plugin fails the whole start. Such a launch starts
//! again after a moment, as the same process with the same arguments (so a WebDriver session or a
//! launcher waiting on it sees one process): by then the old instance is gone and this one runs,
//! or one is running and takes the arguments.

use std::ffi::OsString;
use std::time::Duration;

/// How many times a launch starts again before it gives up.
const ATTEMPTS: u32 = 5;
/// The pause before each new attempt, long enough for a quitting process to be gone.
const PAUSE: Duration = Duration::from_millis(400);
/// Carries the attempt number across the restart; removed as soon as it is read.
const ATTEMPT_VAR: &str = "WRENCHLINE_LAUNCH_ATTEMPT";

/// How many times this launch has started again (0 for a plain launch). Takes the variable out of the
/// environment, so nothing the app starts later inherits it; call it before any thread exists.
pub fn take_attempt() -> u32 {
    let attempt = parse_attempt(std::env::var_os(ATTEMPT_VAR));
    if attempt > 0 {
        std::env::remove_var(ATTEMPT_VAR);
    }
    attempt
}

fn parse_attempt(value: Option<OsString>) -> u32 {
    value
        .and_then(|v| v.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// What a failed handoff leads to.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    StartAgain { attempt: u32 },
    GiveUp,
}

fn next(attempt: u32) -> Next {
    if attempt < ATTEMPTS {
        Next::StartAgain {
            attempt: attempt + 1,
        }
    } else {
        Next::GiveUp
    }
}

/// Starts this launch again after a failed handoff, or exits with the reason after the last
/// attempt. Never returns.
pub fn after_failed_handoff(attempt: u32, reason: &str) -> ! {
    let attempt = match next(attempt) {
        Next::StartAgain { attempt } => attempt,
        Next::GiveUp => {
            eprintln!(
                "wrenchline-desk: another instance holds the single-instance lock but does not \
                 answer ({reason}); quit it and start Wrenchline again"
            );
            std::process::exit(1);
        }
    };
    eprintln!(
        "wrenchline-desk: the running instance went away during the handoff ({reason}); \
         starting again (restart {attempt} of {ATTEMPTS})"
    );
    std::thread::sleep(PAUSE);
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("wrenchline-desk: cannot find its own executable to start again: {e}");
            std::process::exit(1);
        }
    };
    let mut command = std::process::Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .env(ATTEMPT_VAR, attempt.to_string());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Only returns on failure.
        let e = command.exec();
        eprintln!("wrenchline-desk: could not start again: {e}");
        std::process::exit(1);
    }
    #[cfg(not(unix))]
    match command.spawn() {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("wrenchline-desk: could not start again: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_number_survives_only_as_a_number() {
        assert_eq!(parse_attempt(None), 0);
        assert_eq!(parse_attempt(Some("3".into())), 3);
        assert_eq!(parse_attempt(Some("three".into())), 0);
        assert_eq!(parse_attempt(Some("-1".into())), 0);
        assert_eq!(parse_attempt(Some("".into())), 0);
    }

    #[test]
    fn a_failed_handoff_starts_again_a_bounded_number_of_times() {
        assert_eq!(next(0), Next::StartAgain { attempt: 1 });
        assert_eq!(next(ATTEMPTS - 1), Next::StartAgain { attempt: ATTEMPTS });
        assert_eq!(next(ATTEMPTS), Next::GiveUp);
        assert_eq!(next(u32::MAX), Next::GiveUp);
    }
}
