//! What the mechanic reads outside the window: a new request's notification ("New request: 2018
//! Honda Civic", the start of the concern and the plan), a new message's (its start, or "Photo",
//! "Video", "Voice note" when it is only an attachment) and the tray's pending count. The
//! vehicle and the concern are the customer's words: where the notification daemon reads markup
//! (the freedesktop `body-markup` capability; some daemons read the summary as markup too), both
//! the summary and the body are escaped, so `<a href>` or `<img>` typed by a customer never
//! becomes a link or an image in the mechanic's notification.

use wrenchline_protocol::{AttachmentKind, Message, Session};

/// A new request's notification text, escaped for a daemon that reads markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestNotice {
    pub summary: String,
    pub body: String,
}

impl RequestNotice {
    pub fn new(session: &Session, daemon_reads_markup: bool) -> RequestNotice {
        let v = &session.vehicle;
        let summary = format!("New request: {} {} {}", v.year, v.make, v.model);
        let body = format!("{}\nPlan: {}", excerpt(&session.concern, 90), session.plan);
        if daemon_reads_markup {
            RequestNotice {
                summary: escape_markup(&summary),
                body: escape_markup(&body),
            }
        } else {
            RequestNotice { summary, body }
        }
    }
}

/// A new chat message's notification text, escaped for a daemon that reads markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageNotice {
    pub summary: String,
    pub body: String,
}

impl MessageNotice {
    /// `from`: who sent it, as the chat names them (the customer's name).
    pub fn new(message: &Message, from: &str, daemon_reads_markup: bool) -> MessageNotice {
        let summary = format!("New message from {from}");
        let body = message_text(message);
        if daemon_reads_markup {
            MessageNotice {
                summary: escape_markup(&summary),
                body: escape_markup(&body),
            }
        } else {
            MessageNotice { summary, body }
        }
    }
}

/// What a message says in one line: the start of its text, else what it carries ("Photo",
/// "2 photos", "Voice note", "3 attachments").
pub fn message_text(message: &Message) -> String {
    if !message.body.trim().is_empty() {
        return excerpt(&message.body, 90);
    }
    let kinds: Vec<AttachmentKind> = message.attachments.iter().map(|a| a.kind).collect();
    match kinds.as_slice() {
        [] => String::new(),
        [one] => one.label().to_string(),
        [first, rest @ ..] if rest.iter().all(|k| k == first) => {
            let plural = match first {
                AttachmentKind::Image => "photos",
                AttachmentKind::Video => "videos",
                AttachmentKind::Audio => "voice notes",
            };
            format!("{} {plural}", kinds.len())
        }
        _ => format!("{} attachments", kinds.len()),
    }
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

/// The first `max` characters of `text` on one line, cut at a word boundary with an ellipsis.
pub fn excerpt(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > max / 2 => &cut[..space],
        _ => &cut,
    };
    format!("{}…", cut.trim_end_matches([',', '.', ';', ':']))
}

/// "No pending requests", "1 pending request", "3 pending requests".
pub fn pending_text(count: usize) -> String {
    match count {
        0 => "No pending requests".to_string(),
        1 => "1 pending request".to_string(),
        n => format!("{n} pending requests"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session(make: &str, model: &str, concern: &str) -> Session {
        serde_json::from_value(json!({
            "id": "00000000-0000-0000-0000-00000000000a", "status": "pending", "plan": "standard",
            "customer_id": "00000000-0000-0000-0000-0000000000c1", "customer_name": "Dana",
            "mechanic_id": null, "mechanic_name": null,
            "vehicle": {"year": 2018, "make": make, "model": model, "vin": null, "mileage": 84000},
            "concern": concern, "created_at": "2025-01-01T10:00:00Z",
            "waiver_signed_at": "2025-01-01T10:00:00Z",
            "accepted_at": null, "started_at": null, "ends_at": null, "ended_at": null, "end_reason": null
        }))
        .unwrap()
    }

    #[test]
    fn the_notice_names_the_vehicle_and_the_plan() {
        let s = session(
            "Honda",
            "Civic",
            "Grinding noise from the front when braking",
        );
        assert_eq!(
            RequestNotice::new(&s, true),
            RequestNotice {
                summary: "New request: 2018 Honda Civic".into(),
                body: "Grinding noise from the front when braking\nPlan: standard".into(),
            }
        );
    }

    #[test]
    fn customer_markup_is_escaped_in_the_summary_and_the_body() {
        let s = session(
            r#"<a href="https://x">Honda</a>"#,
            "<i>Civic</i>",
            "<img src=x> & more",
        );
        let n = RequestNotice::new(&s, true);
        assert_eq!(
            n.summary,
            r#"New request: 2018 &lt;a href="https://x"&gt;Honda&lt;/a&gt; &lt;i&gt;Civic&lt;/i&gt;"#
        );
        assert_eq!(n.body, "&lt;img src=x&gt; &amp; more\nPlan: standard");
        let plain = RequestNotice::new(&s, false);
        assert_eq!(
            plain.summary,
            r#"New request: 2018 <a href="https://x">Honda</a> <i>Civic</i>"#
        );
    }

    #[test]
    fn long_concerns_are_cut_at_a_word() {
        let text = "The engine makes a loud knocking sound when cold, and then after ten minutes it goes away completely";
        let cut = excerpt(text, 40);
        assert_eq!(cut, "The engine makes a loud knocking sound…");
        assert_eq!(excerpt("short\n\nline", 40), "short line");
    }

    fn message(body: &str, kinds: &[&str]) -> Message {
        let attachments: Vec<_> = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                json!({
                    "id": format!("00000000-0000-0000-0000-0000000000a{i}"), "kind": kind,
                    "content_type": "image/jpeg", "bytes": 1000, "has_thumbnail": true,
                    "created_at": "2025-01-01T10:00:00Z"
                })
            })
            .collect();
        serde_json::from_value(json!({
            "id": "00000000-0000-0000-0000-0000000000b1",
            "session_id": "00000000-0000-0000-0000-00000000000a", "seq": 3,
            "sender_id": "00000000-0000-0000-0000-0000000000c1", "sender_role": "customer",
            "body": body, "client_id": "k1", "created_at": "2025-01-01T10:00:00Z",
            "attachments": attachments
        }))
        .unwrap()
    }

    #[test]
    fn a_message_without_text_says_what_it_carries() {
        assert_eq!(message_text(&message("", &["image"])), "Photo");
        assert_eq!(message_text(&message("", &["video"])), "Video");
        assert_eq!(message_text(&message("  ", &["audio"])), "Voice note");
        assert_eq!(message_text(&message("", &["image", "image"])), "2 photos");
        assert_eq!(
            message_text(&message("", &["image", "audio", "video"])),
            "3 attachments"
        );
        assert_eq!(
            message_text(&message("Here is the leak", &["image"])),
            "Here is the leak"
        );
        let n = MessageNotice::new(&message("", &["audio"]), "Dana <b>", true);
        assert_eq!(n.summary, "New message from Dana &lt;b&gt;");
        assert_eq!(n.body, "Voice note");
    }

    #[test]
    fn the_pending_count_reads_well() {
        assert_eq!(pending_text(0), "No pending requests");
        assert_eq!(pending_text(1), "1 pending request");
        assert_eq!(pending_text(4), "4 pending requests");
    }
}
