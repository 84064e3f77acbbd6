//! `wrenchline://session/{id}` links: opened from an e-mail or a colleague's chat, they bring the
//! app forward on that session. Plain parsing, no Tauri; the plugin delivers the URLs.

use uuid::Uuid;

pub const SCHEME: &str = "wrenchline";

/// The session a link points at, if it is one of ours and well-formed.
pub fn session_id(url: &str) -> Option<Uuid> {
    let rest = url.trim().strip_prefix("wrenchline://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let id = rest.strip_prefix("session/")?.trim_end_matches('/');
    id.parse().ok()
}

/// The first session link among command-line arguments (a second launch, a cold start).
pub fn from_args<I, S>(args: I) -> Option<Uuid>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    args.into_iter().find_map(|a| session_id(a.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2c1d2e-8a7b-4c5d-9e0f-1a2b3c4d5e6f";

    #[test]
    fn session_links_parse() {
        let id: Uuid = ID.parse().unwrap();
        assert_eq!(session_id(&format!("wrenchline://session/{ID}")), Some(id));
        assert_eq!(session_id(&format!("wrenchline://session/{ID}/")), Some(id));
        assert_eq!(
            session_id(&format!("wrenchline://session/{ID}?from=mail")),
            Some(id)
        );
    }

    #[test]
    fn anything_else_is_ignored() {
        assert_eq!(session_id("wrenchline://session/not-a-uuid"), None);
        assert_eq!(session_id(&format!("https://session/{ID}")), None);
        assert_eq!(session_id(&format!("wrenchline://request/{ID}")), None);
        assert_eq!(session_id(""), None);
    }

    #[test]
    fn the_link_is_found_among_arguments() {
        let args = [
            "wrenchline-desk",
            "--flag",
            &format!("wrenchline://session/{ID}"),
        ];
        assert_eq!(from_args(args), Some(ID.parse().unwrap()));
        assert_eq!(from_args(["wrenchline-desk"]), None);
    }
}
