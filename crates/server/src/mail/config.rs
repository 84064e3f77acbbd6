//! Mail settings: the SMTP server as a `lettre` URL (`smtp://`, `smtps://`, `?tls=required`,
//! `user:password@`), the sender, and the durations of the mail rules. Values are checked when
//! the server starts: an unreadable URL or sender is refused, and so is SMTP without TLS to
//! anything but this machine (a password or a customer's mail would cross the network in the
//! clear).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use time::Duration;

/// Default lifetime of the single-use link in a mail.
pub const DEFAULT_LINK_TTL: Duration = Duration::days(7);
/// The customer is mailed about messages they have not seen for this long.
pub const DEFAULT_UNREAD_AFTER: Duration = Duration::minutes(2);
/// At most one mail about unread messages per session in this period.
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::minutes(15);
/// Longest wait between two attempts to send a mail.
pub const DEFAULT_RETRY_MAX: Duration = Duration::seconds(60);
/// How long one SMTP exchange may take before the attempt counts as failed.
pub const SMTP_TIMEOUT: StdDuration = StdDuration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("--smtp-url is not a valid SMTP URL ({0}); expected smtp://HOST:PORT, smtps://HOST:PORT or smtp://HOST:PORT?tls=required, with USER:PASSWORD@ before the host when the server needs it")]
    Url(String),
    #[error("--smtp-url {0} sends mail without TLS to another machine; use smtps://… or add ?tls=required (plain smtp:// is allowed to this machine only: localhost, 127.0.0.1, ::1)")]
    PlainToRemote(String),
    #[error(
        "--mail-from {0:?} is not a mailbox; expected \"Name <address@example.com>\" or an address"
    )]
    From(String),
}

#[derive(Clone)]
pub struct MailSettings {
    /// The SMTP URL as given; it may hold a password, so it is never printed.
    smtp_url: String,
    pub from: Mailbox,
    /// How long a link in a mail can be used (once).
    pub link_ttl: Duration,
    pub unread_after: Duration,
    pub quiet_period: Duration,
    pub retry_max: Duration,
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp", &describe_smtp_url(&self.smtp_url))
            .field("from", &self.from.to_string())
            .field("link_ttl", &self.link_ttl)
            .field("unread_after", &self.unread_after)
            .field("quiet_period", &self.quiet_period)
            .field("retry_max", &self.retry_max)
            .finish()
    }
}

impl MailSettings {
    /// Checks an SMTP URL and a sender, with the default durations.
    pub fn parse(smtp_url: &str, from: &str) -> Result<MailSettings, MailConfigError> {
        let smtp_url = smtp_url.trim().to_string();
        let url = url::Url::parse(&smtp_url)
            .map_err(|e| MailConfigError::Url(format!("{}: {e}", describe_smtp_url(&smtp_url))))?;
        let tls = match url.scheme() {
            "smtps" => true,
            "smtp" => url
                .query_pairs()
                .any(|(k, v)| k == "tls" && v == "required"),
            other => {
                return Err(MailConfigError::Url(format!(
                    "the scheme is {other}:, not smtp: or smtps:"
                )))
            }
        };
        if !tls && !is_loopback(&url) {
            return Err(MailConfigError::PlainToRemote(describe_smtp_url(&smtp_url)));
        }
        AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp_url)
            .map_err(|e| MailConfigError::Url(format!("{}: {e}", describe_smtp_url(&smtp_url))))?;
        let from =
            Mailbox::from_str(from.trim()).map_err(|_| MailConfigError::From(from.to_string()))?;
        Ok(MailSettings {
            smtp_url,
            from,
            link_ttl: DEFAULT_LINK_TTL,
            unread_after: DEFAULT_UNREAD_AFTER,
            quiet_period: DEFAULT_QUIET_PERIOD,
            retry_max: DEFAULT_RETRY_MAX,
        })
    }

    /// Where mail goes, without a password, for logs.
    pub fn describe(&self) -> String {
        describe_smtp_url(&self.smtp_url)
    }

    pub fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailConfigError> {
        Ok(
            AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.smtp_url)
                .map_err(|e| MailConfigError::Url(e.to_string()))?
                .timeout(Some(SMTP_TIMEOUT))
                .build(),
        )
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        // `smtp:` is not a scheme the URL standard knows, so an IPv4 address stays a name.
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// An SMTP URL without its password.
pub fn describe_smtp_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "(an unreadable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "Wrenchline <help@example.com>";

    #[test]
    fn plain_smtp_is_for_this_machine_only() {
        MailSettings::parse("smtp://127.0.0.1:2525", FROM).unwrap();
        assert!(MailSettings::parse("smtp://localhost:25", FROM).is_ok());
        assert!(MailSettings::parse("smtp://[::1]:25", FROM).is_ok());
        assert!(matches!(
            MailSettings::parse("smtp://mail.example.com:25", FROM),
            Err(MailConfigError::PlainToRemote(_))
        ));
        assert!(matches!(
            MailSettings::parse("smtp://mail.example.com:25?tls=opportunistic", FROM),
            Err(MailConfigError::PlainToRemote(_))
        ));
        assert!(MailSettings::parse("smtp://u:p@mail.example.com:587?tls=required", FROM).is_ok());
        assert!(MailSettings::parse("smtps://u:p@mail.example.com", FROM).is_ok());
    }

    #[test]
    fn bad_values_are_refused_and_passwords_never_shown() {
        assert!(matches!(
            MailSettings::parse("http://127.0.0.1:25", FROM),
            Err(MailConfigError::Url(_))
        ));
        assert!(matches!(
            MailSettings::parse("not a url", FROM),
            Err(MailConfigError::Url(_))
        ));
        assert!(matches!(
            MailSettings::parse("smtp://127.0.0.1:25", "Wrenchline <nope>"),
            Err(MailConfigError::From(_))
        ));
        let settings = MailSettings::parse("smtps://user:s3cret@mail.example.com", FROM).unwrap();
        assert!(!format!("{settings:?}").contains("s3cret"));
        assert!(!settings.describe().contains("s3cret"));
        let refused = MailSettings::parse("smtp://user:s3cret@mail.example.com", FROM).unwrap_err();
        assert!(!refused.to_string().contains("s3cret"));
    }
}
