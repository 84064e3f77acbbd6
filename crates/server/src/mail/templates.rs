//! The text of each mail, as plain text and HTML: short, one action per mail, readable on a
//! phone. Everything a person typed (names, the concern, chat messages, the summary) is
//! HTML-escaped in the HTML part; links are the server's own.

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use wrenchline_protocol::{EndReason, Message, Role, Session, SessionStatus};

use super::MailKind;

/// Everything a mail says, gathered when it is sent.
#[derive(Debug, Clone)]
pub struct MailData<'a> {
    pub kind: MailKind,
    pub session: &'a Session,
    /// The plan's name as customers see it.
    pub plan_name: &'a str,
    /// The mechanic's name as the app showed it when the mail was queued.
    pub mechanic_name: Option<&'a str>,
    /// The single-use link that opens the customer's chat.
    pub link: &'a str,
    /// Where a new request starts (the customer page).
    pub home: &'a str,
    /// The chat, for the mail that ends a session.
    pub transcript: &'a [Message],
    /// The mechanic's summary for the customer, when there is one.
    pub summary: Option<String>,
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// One paragraph of a mail; the HTML side is escaped when it is `Said`.
enum Part {
    /// Wrenchline's own words.
    Line(String),
    /// What someone typed, shown as it was written (line breaks kept).
    Said(String),
    /// A labelled fact (vehicle, plan).
    Fact(&'static str, String),
    /// The transcript: (time, who, what).
    Chat(Vec<(String, String, String)>),
}

pub fn render(data: &MailData<'_>) -> Rendered {
    let s = data.session;
    let vehicle = format!("{} {} {}", s.vehicle.year, s.vehicle.make, s.vehicle.model);
    let mechanic = data
        .mechanic_name
        .or(s.mechanic_name.as_deref())
        .unwrap_or("Your mechanic")
        .to_string();
    let (subject, heading, parts, action) = match data.kind {
        MailKind::RequestReceived => (
            format!("We received your request about your {vehicle}"),
            "Your request is in line".to_string(),
            vec![
                Part::Line(
                    "Mechanics can see your request now. We will mail you when one accepts; \
                     you can also keep the chat open."
                        .into(),
                ),
                Part::Fact("Vehicle", vehicle.clone()),
                Part::Fact("Plan", data.plan_name.to_string()),
                Part::Line("What you asked:".into()),
                Part::Said(s.concern.clone()),
            ],
            "Open your chat",
        ),
        MailKind::Accepted => (
            format!("{mechanic} accepted your request: join now"),
            format!("{mechanic} is ready to help"),
            vec![
                Part::Line(format!(
                    "{mechanic} accepted your request about your {vehicle}. Your session \
                     starts as soon as you are both in the chat."
                )),
                Part::Fact("Plan", data.plan_name.to_string()),
            ],
            "Join now",
        ),
        MailKind::UnreadMessages => (
            format!("{mechanic} sent you a message"),
            format!("New message from {mechanic}"),
            vec![Part::Line(format!(
                "{mechanic} wrote to you about your {vehicle} while you were away. Open the \
                 chat to read and answer."
            ))],
            "Read and reply",
        ),
        MailKind::Ended => {
            let completed = s.status == SessionStatus::Completed;
            let why = match s.end_reason {
                Some(EndReason::TimeUp) => "The session's time is up.",
                Some(EndReason::EndedByCustomer) => "You ended the session.",
                Some(EndReason::EndedByMechanic) if completed => "The mechanic ended the session.",
                Some(EndReason::EndedByMechanic) => "The mechanic could not take your request.",
                Some(EndReason::CancelledByCustomer) => "You cancelled your request.",
                _ => "The session has ended.",
            };
            let mut parts = vec![
                Part::Line(format!("{why} Here is what was said, to keep.")),
                Part::Fact("Vehicle", vehicle.clone()),
            ];
            if let Some(summary) = &data.summary {
                parts.push(Part::Line(format!("{mechanic}'s summary:")));
                parts.push(Part::Said(summary.clone()));
            }
            parts.push(Part::Chat(transcript(data, &mechanic)));
            if completed {
                (
                    format!("Your session about your {vehicle} has ended: transcript inside"),
                    "Your session has ended".to_string(),
                    parts,
                    "Rate your session",
                )
            } else {
                (
                    format!("Your request about your {vehicle} was cancelled"),
                    "Your request was cancelled".to_string(),
                    parts,
                    "See your request",
                )
            }
        }
        MailKind::NotAccepted => (
            format!("No mechanic was free for your {vehicle}: what to do next"),
            "No mechanic was free in time".to_string(),
            vec![
                Part::Line(
                    "We are sorry: no mechanic accepted your request in time, so it was closed."
                        .into(),
                ),
                Part::Line(format!(
                    "Send a new request at {} when you are ready: the intake page shows how \
                     many mechanics are online. If your vehicle is unsafe to drive, call a \
                     local garage or roadside assistance.",
                    data.home
                )),
            ],
            "See your request",
        ),
    };
    Rendered {
        text: plain(&heading, &parts, action, data.link),
        html: html(&heading, &parts, action, data.link),
        subject,
    }
}

fn transcript(data: &MailData<'_>, mechanic: &str) -> Vec<(String, String, String)> {
    let format = time::macros::format_description!("[hour]:[minute]");
    data.transcript
        .iter()
        .map(|m| {
            let who = match m.sender_role {
                Role::Customer => "You".to_string(),
                Role::Mechanic => mechanic.to_string(),
            };
            let at = m.created_at.format(format).unwrap_or_default();
            (at, who, m.body.clone())
        })
        .collect()
}

fn plain(heading: &str, parts: &[Part], action: &str, link: &str) -> String {
    let mut out = format!("{heading}\n\n");
    for part in parts {
        match part {
            Part::Line(line) => out.push_str(&format!("{line}\n\n")),
            Part::Said(said) => {
                for line in said.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
                out.push('\n');
            }
            Part::Fact(label, value) => out.push_str(&format!("{label}: {value}\n\n")),
            Part::Chat(lines) if lines.is_empty() => out.push_str("(No messages were sent.)\n\n"),
            Part::Chat(lines) => {
                out.push_str("Transcript (UTC):\n");
                for (at, who, body) in lines {
                    out.push_str(&format!("[{at}] {who}: {}\n", body.replace('\n', "\n    ")));
                }
                out.push('\n');
            }
        }
    }
    out.push_str(&format!(
        "{action}: {link}\n\nThe link works once, on any device. Wrenchline\n"
    ));
    out
}

fn html(heading: &str, parts: &[Part], action: &str, link: &str) -> String {
    let mut body = String::new();
    for part in parts {
        match part {
            Part::Line(line) => body.push_str(&format!("<p>{}</p>", text(line))),
            Part::Said(said) => body.push_str(&format!(
                "<blockquote style=\"margin:0 0 16px;padding:8px 12px;border-left:3px solid \
                 #c2410c;background:#fff7ed;white-space:pre-wrap\">{}</blockquote>",
                text(said)
            )),
            Part::Fact(label, value) => body.push_str(&format!(
                "<p><strong>{}:</strong> {}</p>",
                text(label),
                text(value)
            )),
            Part::Chat(lines) if lines.is_empty() => {
                body.push_str("<p><em>No messages were sent.</em></p>")
            }
            Part::Chat(lines) => {
                body.push_str(
                    "<h2 style=\"font-size:16px;margin:24px 0 8px\">Transcript (UTC)</h2>\
                     <table role=\"presentation\" style=\"width:100%;border-collapse:collapse\">",
                );
                for (at, who, said) in lines {
                    body.push_str(&format!(
                        "<tr><td style=\"padding:4px 8px 4px 0;color:#6b7280;vertical-align:top;\
                         white-space:nowrap\">{}</td><td style=\"padding:4px 0;vertical-align:top\">\
                         <strong>{}</strong><br><span style=\"white-space:pre-wrap\">{}</span></td></tr>",
                        text(at),
                        text(who),
                        text(said)
                    ));
                }
                body.push_str("</table>");
            }
        }
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\
         <body style=\"margin:0;padding:0;background:#f3f4f6\">\
         <div style=\"max-width:560px;margin:0 auto;padding:24px 16px;font-family:-apple-system,\
         'Segoe UI',Roboto,Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;color:#111827\">\
         <p style=\"font-weight:700;color:#c2410c;margin:0 0 16px\">Wrenchline</p>\
         <div style=\"background:#ffffff;border-radius:12px;padding:24px\">\
         <h1 style=\"font-size:22px;margin:0 0 16px\">{title}</h1>{body}\
         <p style=\"margin:24px 0 8px\"><a href=\"{href}\" style=\"display:inline-block;\
         background:#c2410c;color:#ffffff;text-decoration:none;font-weight:600;padding:12px 20px;\
         border-radius:8px\">{action}</a></p>\
         <p style=\"font-size:13px;color:#6b7280;margin:0\">The button works once, on any device.</p>\
         </div></div></body></html>",
        title = text(heading),
        href = attr(link),
        action = text(action),
    )
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use uuid::Uuid;
    use wrenchline_protocol::Vehicle;

    use super::*;

    fn session() -> Session {
        Session {
            id: Uuid::new_v4(),
            status: SessionStatus::Completed,
            plan: "trial".into(),
            customer_id: Uuid::new_v4(),
            customer_name: "Dana <b>".into(),
            mechanic_id: Some(Uuid::new_v4()),
            mechanic_name: Some("Sam & Co".into()),
            vehicle: Vehicle {
                year: 2015,
                make: "Honda".into(),
                model: "Civic<script>".into(),
                vin: None,
                mileage: None,
            },
            concern: "Brakes <squeal> & \"grind\"".into(),
            created_at: OffsetDateTime::now_utc(),
            waiver_signed_at: None,
            accepted_at: None,
            started_at: None,
            ends_at: None,
            ended_at: None,
            end_reason: Some(EndReason::TimeUp),
        }
    }

    fn data<'a>(kind: MailKind, session: &'a Session, summary: Option<String>) -> MailData<'a> {
        MailData {
            kind,
            session,
            plan_name: "Free trial",
            mechanic_name: Some("Sam & Co"),
            link: "https://help.example.com/resume#token=a&b",
            home: "https://help.example.com/",
            transcript: &[],
            summary,
        }
    }

    #[test]
    fn typed_text_is_escaped_in_html_and_kept_in_text() {
        let session = session();
        for kind in MailKind::ALL {
            let mail = render(&data(kind, &session, Some("Replace <pads> soon".into())));
            assert!(!mail.html.contains("<script>"), "{kind:?}");
            assert!(!mail.html.contains("<squeal>"), "{kind:?}");
            assert!(!mail.html.contains("<pads>"), "{kind:?}");
            assert!(mail.html.contains("resume#token=a&amp;b"), "{kind:?}");
            assert!(mail
                .text
                .contains("https://help.example.com/resume#token=a&b"));
            assert!(!mail.subject.is_empty());
        }
        let received = render(&data(MailKind::RequestReceived, &session, None));
        assert!(received.text.contains("Brakes <squeal> & \"grind\""));
        assert!(received.html.contains("Brakes &lt;squeal&gt; &amp;"));
    }

    #[test]
    fn the_ended_mail_carries_the_summary_when_there_is_one() {
        let session = session();
        let with = render(&data(
            MailKind::Ended,
            &session,
            Some("Pads worn: replace this week".into()),
        ));
        assert!(with.text.contains("Pads worn: replace this week"));
        assert!(with.html.contains("Pads worn: replace this week"));
        assert!(with.text.contains("Rate your session"));
        let without = render(&data(MailKind::Ended, &session, None));
        assert!(!without.text.contains("summary"));
        let accepted = render(&data(MailKind::Accepted, &session, None));
        assert!(accepted.subject.starts_with("Sam & Co accepted"));
    }
}
