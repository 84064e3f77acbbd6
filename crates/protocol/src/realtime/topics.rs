//! The channel topics Wrenchline serves, named and parsed in one place (docs/architecture.md says
//! who may join which). realtime-js prefixes every channel name with `realtime:`.

use uuid::Uuid;

pub const PREFIX: &str = "realtime:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `chat:session-{id}`: typing broadcasts and the session's and its messages' row changes.
    SessionChat(Uuid),
    /// `chat:session-{id}:presence`: who is in the chat; drives the live start.
    SessionPresence(Uuid),
    /// `requests`: offered requests, for mechanics.
    Requests,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("unmatched topic")]
    Unmatched,
    #[error("TopicNameRequired: You must provide a topic name")]
    Empty,
    #[error("UnknownTopic: {0} is not a Wrenchline channel")]
    Unknown(String),
}

impl Topic {
    /// Parses a full topic (`realtime:…`).
    pub fn parse(full: &str) -> Result<Topic, TopicError> {
        let name = full.strip_prefix(PREFIX).ok_or(TopicError::Unmatched)?;
        if name.is_empty() {
            return Err(TopicError::Empty);
        }
        if name == "requests" {
            return Ok(Topic::Requests);
        }
        let unknown = || TopicError::Unknown(name.to_string());
        let rest = name.strip_prefix("chat:session-").ok_or_else(unknown)?;
        let (id, presence) = match rest.strip_suffix(":presence") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        let id = Uuid::parse_str(id).map_err(|_| unknown())?;
        if id.hyphenated().to_string() != id_text(rest, presence) {
            return Err(unknown());
        }
        Ok(if presence {
            Topic::SessionPresence(id)
        } else {
            Topic::SessionChat(id)
        })
    }

    /// The name without the `realtime:` prefix: the channel name a client asks for, and what
    /// `system` messages report.
    pub fn name(&self) -> String {
        match self {
            Topic::SessionChat(id) => format!("chat:session-{id}"),
            Topic::SessionPresence(id) => format!("chat:session-{id}:presence"),
            Topic::Requests => "requests".into(),
        }
    }

    pub fn full(&self) -> String {
        full(&self.name())
    }

    pub fn session(&self) -> Option<Uuid> {
        match self {
            Topic::SessionChat(id) | Topic::SessionPresence(id) => Some(*id),
            Topic::Requests => None,
        }
    }
}

/// The wire topic of a channel name: `realtime:{name}`.
pub fn full(name: &str) -> String {
    format!("{PREFIX}{name}")
}

impl std::fmt::Display for Topic {
    /// The channel name ([`Topic::name`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Only the canonical lower-case hyphenated form names a topic, so one session has one topic.
fn id_text(rest: &str, presence: bool) -> &str {
    if presence {
        &rest[..rest.len() - ":presence".len()]
    } else {
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrenchline_topics() {
        let id = Uuid::new_v4();
        assert_eq!(
            Topic::parse(&format!("realtime:chat:session-{id}")),
            Ok(Topic::SessionChat(id))
        );
        assert_eq!(
            Topic::parse(&format!("realtime:chat:session-{id}:presence")),
            Ok(Topic::SessionPresence(id))
        );
        assert_eq!(Topic::parse("realtime:requests"), Ok(Topic::Requests));
        assert_eq!(
            Topic::SessionPresence(id).full(),
            format!("realtime:chat:session-{id}:presence")
        );
    }

    #[test]
    fn refuses_others() {
        assert_eq!(Topic::parse("room1"), Err(TopicError::Unmatched));
        assert_eq!(Topic::parse("realtime:"), Err(TopicError::Empty));
        assert!(matches!(
            Topic::parse("realtime:room1"),
            Err(TopicError::Unknown(_))
        ));
        assert!(matches!(
            Topic::parse("realtime:chat:session-nope"),
            Err(TopicError::Unknown(_))
        ));
        let id = Uuid::new_v4().to_string().to_uppercase();
        assert!(matches!(
            Topic::parse(&format!("realtime:chat:session-{id}")),
            Err(TopicError::Unknown(_))
        ));
    }
}
