//! Request and response bodies of the HTTP API, and the one error body every failure uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{Role, Session, User};

/// Longest chat message, in characters, unless the server is configured with another length
/// (its API document states the one it applies).
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Longest accepted `client_id`.
pub const MAX_CLIENT_ID_CHARS: usize = 64;
/// Most attachments one message may carry.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;

/// JSON Schema forms of the rules the server checks, built from the same constants as the
/// checks, so that the OpenAPI document cannot promise more or less than the server accepts.
///
/// Text fields are trimmed before their length is checked, so their limits are patterns over the
/// trimmed text (optional white space, then the text itself) rather than `maxLength`, which
/// would count the white space too.
#[cfg(feature = "openapi")]
pub mod schema {
    use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaFormat, SchemaType, Type};
    use utoipa::openapi::KnownFormat;

    use crate::intake::{
        CONCERN_MAX, CONCERN_MIN, EMAIL_MAX, MAKE_MODEL_MAX, MILEAGE_MAX, NAME_MAX,
        PHONE_DIGITS_MAX, PHONE_DIGITS_MIN, YEAR_MIN,
    };
    use crate::text::Lines;
    use crate::{MAX_CLIENT_ID_CHARS, MAX_MESSAGE_CHARS};

    /// What `str::trim` removes: the characters with Unicode's `White_Space` property, as a
    /// character-class body that ECMA-262, Python and Rust regular expressions read alike.
    pub const WHITE_SPACE: &str =
        r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

    /// Control characters (`char::is_control`): never part of an email address.
    const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

    /// Characters of a VIN, either case (it is upper-cased before the check): no I, O or Q.
    const VIN_CHARS: &str = "A-HJ-NPR-Za-hj-npr-z0-9";

    /// Characters a phone number may hold besides digits.
    const PHONE_PUNCTUATION: &str = r" +\-().";

    /// The C0 control characters, none of which a one-line field holds.
    const C0: &str = r"\x00-\x1f";

    /// The C0 control characters a multi-line field does not hold: all but tab, line feed and
    /// carriage return.
    const C0_BUT_LINE_BREAKS: &str = r"\x00-\x08\x0b\x0c\x0e-\x1f";

    /// Text of the kind `lines` whose trimmed length is `min..=max` characters (`min` at least
    /// 1): white space around it, then text that starts and ends with a character that is
    /// neither white space nor a control character.
    pub fn trimmed_pattern(min: usize, max: usize, lines: Lines) -> String {
        assert!(
            1 <= min && min <= max,
            "a trimmed text has 1 to max characters"
        );
        let refused = match lines {
            Lines::One => C0,
            Lines::Many => C0_BUT_LINE_BREAKS,
        };
        let (ws, word, any) = (
            format!("[{WHITE_SPACE}]*"),
            format!("[^{WHITE_SPACE}{C0}]"),
            format!("[^{refused}]"),
        );
        let inner = match (min, max) {
            (_, 1) => String::new(),
            (1, _) => format!(r"(?:{any}{{0,{}}}{word})?", max - 2),
            _ => format!(r"{any}{{{},{}}}{word}", min - 2, max - 2),
        };
        format!("^{ws}{word}{inner}{ws}$")
    }

    pub(crate) fn trimmed_text(min: usize, max: usize, lines: Lines, what: &str) -> Object {
        let controls = match lines {
            Lines::One => "no control characters (U+0000 to U+001F)",
            Lines::Many => {
                "no control characters (U+0000 to U+001F) but tab, line feed and carriage return"
            }
        };
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "{what}: {min} to {max} characters once leading and trailing white space is \
                 trimmed; {controls}."
            )))
            .min_length(Some(min))
            .pattern(Some(trimmed_pattern(min, max, lines)))
            .build()
    }

    /// Like [`trimmed_text`] with a minimum of 1, but blank (empty or white space only) is
    /// accepted too and means none.
    pub(crate) fn optional_trimmed_text(max: usize, lines: Lines, what: &str) -> Object {
        let blank = format!("^[{WHITE_SPACE}]*$");
        let text = trimmed_pattern(1, max, lines);
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "{what}: blank, or up to {max} characters once leading and trailing white space \
                 is trimmed; no control characters but tab, line feed and carriage return."
            )))
            .pattern(Some(format!("{blank}|{text}")))
            .build()
    }

    /// An email address as the intake checks it: `local@domain.tld`, no white space or control
    /// characters, at most `EMAIL_MAX` characters.
    pub fn email_pattern() -> String {
        let any = format!("[^{WHITE_SPACE}{CONTROL}@]");
        let no_dot = format!("[^{WHITE_SPACE}{CONTROL}@.]");
        let ws = format!("[{WHITE_SPACE}]*");
        format!(r"^{ws}{any}+@{no_dot}{any}*\.{any}*{no_dot}{ws}$")
    }

    /// A phone number: digits and ` +-().`, with `PHONE_DIGITS_MIN` to `PHONE_DIGITS_MAX`
    /// digits; blank means none.
    pub fn phone_pattern() -> String {
        let ws = format!("[{WHITE_SPACE}]*");
        let p = format!("[{PHONE_PUNCTUATION}]*");
        format!("^{ws}(?:{p}(?:[0-9]{p}){{{PHONE_DIGITS_MIN},{PHONE_DIGITS_MAX}}})?{ws}$")
    }

    /// A VIN's shape; blank means none. The check digit cannot be said in a pattern.
    pub fn vin_pattern() -> String {
        let ws = format!("[{WHITE_SPACE}]*");
        format!("^{ws}(?:[{VIN_CHARS}]{{17}}{ws})?$")
    }

    /// A `client_id`: 1 to `MAX_CLIENT_ID_CHARS` letters, digits or `- _ . :`, taken as sent.
    pub fn client_id_pattern() -> String {
        format!("^[A-Za-z0-9_.:-]{{1,{MAX_CLIENT_ID_CHARS}}}$")
    }

    pub fn message_body() -> Object {
        message_body_up_to(MAX_MESSAGE_CHARS)
    }

    /// A message body on a server that accepts at most `max_chars` characters.
    pub fn message_body_up_to(max_chars: usize) -> Object {
        trimmed_text(1, max_chars, Lines::Many, "The message")
    }

    pub fn attachment_ids() -> utoipa::openapi::schema::Array {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
            )
            .max_items(Some(crate::MAX_ATTACHMENTS_PER_MESSAGE))
            .unique_items(true)
            .description(Some(
                "Attachments uploaded by the sender to this session and not sent yet; the body \
                 may be left out when there is at least one.",
            ))
            .build()
    }

    pub fn client_id() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Chosen by the sender; posting again with the same value returns the stored \
                 message instead of a copy.",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_CLIENT_ID_CHARS))
            .pattern(Some(client_id_pattern()))
            .build()
    }

    pub fn name() -> Object {
        trimmed_text(1, NAME_MAX, Lines::One, "Full name")
    }

    pub fn signed_name() -> Object {
        trimmed_text(
            1,
            NAME_MAX,
            Lines::One,
            "The customer's full name as signature",
        )
    }

    pub fn agree() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .description(Some("Must be true: the waiver is agreed to."))
            .enum_values(Some([true]))
            .build()
    }

    pub fn email() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "An address like name@example.com, at most {EMAIL_MAX} characters (counted as \
                 sent, white space around it included); stored in lower case."
            )))
            .max_length(Some(EMAIL_MAX))
            .pattern(Some(email_pattern()))
            .build()
    }

    /// A sign-in email: any text of at most `EMAIL_MAX` characters without control characters
    /// once trimmed (a wrong address is a 401, not a 422, so that sign-in says nothing about
    /// which accounts exist).
    pub fn login_email_pattern() -> String {
        let ws = format!("[{WHITE_SPACE}]*");
        format!("^{ws}(?:[^{C0}]*[^{WHITE_SPACE}{C0}])?{ws}$")
    }

    pub fn login_email() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "The mechanic's email address: at most {EMAIL_MAX} characters (counted as sent); \
                 no control characters (U+0000 to U+001F) once leading and trailing white space \
                 is trimmed."
            )))
            .max_length(Some(EMAIL_MAX))
            .pattern(Some(login_email_pattern()))
            .build()
    }

    pub fn phone() -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some(format!(
                "Optional: {PHONE_DIGITS_MIN} to {PHONE_DIGITS_MAX} digits, with spaces and \
                 + - ( ) . allowed."
            )))
            .pattern(Some(phone_pattern()))
            .build()
    }

    pub fn concern() -> Object {
        trimmed_text(
            CONCERN_MIN,
            CONCERN_MAX,
            Lines::Many,
            "What is wrong with the vehicle",
        )
    }

    /// The server's document narrows this to the ids of the plans it offers.
    pub fn plan() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The id of one of the plans `GET /api/plans` lists."))
            .min_length(Some(1))
            .pattern(Some(format!("[^{WHITE_SPACE}]")))
            .build()
    }

    /// Exactly one of `ids`, with white space around it allowed (it is trimmed).
    pub fn plan_pattern<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
        let ws = format!("[{WHITE_SPACE}]*");
        let alternatives: Vec<String> = ids.into_iter().map(escape).collect();
        format!("^{ws}(?:{}){ws}$", alternatives.join("|"))
    }

    /// `text` as a literal in a pattern: punctuation with a meaning is escaped.
    fn escape(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            if r"\^$.|?*+()[]{}/-".contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    pub fn make_model() -> Object {
        trimmed_text(1, MAKE_MODEL_MAX, Lines::One, "Make or model")
    }

    /// The server's document narrows the upper bound to next year (next year's models are
    /// sold this year).
    pub fn year() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .description(Some(format!("Model year, from {YEAR_MIN} to next year.")))
            .minimum(Some(YEAR_MIN))
            .build()
    }

    pub fn vin() -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some(
                "Optional Vehicle Identification Number: 17 characters, digits and letters \
                 except I, O and Q, in either case, whose 9th character is the North American \
                 check digit.",
            ))
            .pattern(Some(vin_pattern()))
            .build()
    }

    pub fn mileage() -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .description(Some("Optional odometer reading."))
            .minimum(Some(0))
            .maximum(Some(MILEAGE_MAX))
            .build()
    }
}

/// Every error the API answers: a stable machine-readable `error` code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    /// Per-field problems of a rejected body, keyed by the field's path (`vehicle.vin`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Participants not present when a start was asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Role>,
    /// The current state when a transition lost a race.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Box<Session>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct IntakeResponse {
    pub session: Session,
    pub user: User,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct WaiverRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::signed_name))]
    pub signed_name: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::agree))]
    pub agree: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct WaiverResponse {
    pub session: Session,
    pub next: String,
}

/// The waiver a customer signs; its version is recorded with the signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Waiver {
    pub version: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct LoginRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::login_email))]
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Mechanic credentials: a short-lived access token and a rotating refresh token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct AuthTokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: User,
}

/// The customer's realtime token, minted from the browser's identity cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct AccessToken {
    pub access_token: String,
    pub expires_in: u64,
    pub user: User,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct PostMessageRequest {
    /// The text; may be left out (or empty) when `attachment_ids` names at least one file.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::message_body))]
    #[cfg_attr(feature = "ts", ts(as = "Option<String>", optional))]
    pub body: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::client_id))]
    pub client_id: String,
    /// Attachments this sender uploaded to this session and has not sent yet
    /// (`POST /api/sessions/{id}/attachments`), at most [`MAX_ATTACHMENTS_PER_MESSAGE`].
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::attachment_ids))]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<uuid::Uuid>>", optional))]
    pub attachment_ids: Vec<uuid::Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ResumeLink {
    /// The path to open on another device, relative to the server's origin: `/resume#token=…`.
    /// The token travels in the fragment, so it never reaches a server's or proxy's access log.
    /// It works once, until `expires_at`.
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ResumeRequest {
    /// The token from the link's fragment.
    pub token: String,
    /// Set once the person agreed that this browser, which holds another customer's identity,
    /// switches to the link's. Without it such a browser is refused (`identity_switch_required`)
    /// and the link stays unused.
    #[serde(default)]
    pub replace_identity: bool,
}

/// What a resume link would do in this browser, answered without using the link.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ResumeCheck {
    /// The customer identity this browser holds now, if any.
    pub current_user: Option<User>,
    /// The browser holds another customer's identity: using the link replaces it (the page asks
    /// first, and sends `replace_identity: true`).
    pub switches_identity: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub expires_at: OffsetDateTime,
}

/// `POST /api/resume/check`: the token to look at.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ResumeCheckRequest {
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ResumeResponse {
    pub session: Session,
    pub user: User,
    pub next: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// The server's clock, for clients to correct countdowns by their offset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ServerTime {
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub now: OffsetDateTime,
}

/// How many mechanics could take a request right now (`GET /api/availability`), for the
/// customer's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct MechanicAvailability {
    /// Distinct mechanics connected to the request feed with at least one connection not away.
    pub mechanics_online: u32,
}

/// What the customer's pages need to know about this server's set-up (`GET /api/config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct PublicConfig {
    /// Whether the server mails customers (it was started with `--smtp-url`); without it no
    /// page promises an email.
    pub mail: bool,
}
