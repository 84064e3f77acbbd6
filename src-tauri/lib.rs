//! The Wrenchline desktop app for mechanics: handles the command line, then builds and runs the
//! Tauri application. The shell stays thin; domain logic belongs in the crates under `crates/`.

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

/// Runs the desktop app, or answers `--version` without starting Tauri.
pub fn run() {
    match Launch::from_args(std::env::args_os()) {
        Launch::PrintVersion => println!("{}", version_line()),
        Launch::App => tauri::Builder::default()
            .run(tauri::generate_context!())
            .expect("the Tauri application failed to start"),
    }
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
