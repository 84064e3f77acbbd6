//! What a session leaves behind: the customer's rating, the mechanic's summary for the customer,
//! the mechanic's private notes, and the entries of a mechanic's history; with the checks their
//! request bodies pass (parse, don't validate: the server stores only checked values).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::intake::FieldErrors;
use crate::model::Session;
use crate::text::Lines;

/// Longest rating comment, in characters (trimmed).
pub const RATING_COMMENT_MAX: usize = 1000;
/// Longest part of a summary (`found`, `next_steps`), in characters (trimmed).
pub const SUMMARY_TEXT_MAX: usize = 4000;
/// Longest private note, in characters (trimmed).
pub const NOTES_MAX: usize = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct RatingRequest {
    /// 1 (poor) to 5 (excellent).
    #[serde(deserialize_with = "crate::intake::whole_number")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    pub stars: i64,
    /// Optional; blank means none.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::comment))]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub comment: Option<String>,
}

/// A rating that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRating {
    pub stars: u8,
    pub comment: Option<String>,
}

impl RatingRequest {
    pub fn check(&self) -> Result<CheckedRating, FieldErrors> {
        let mut errors = FieldErrors::new();
        if !(1..=5).contains(&self.stars) {
            errors.insert("stars".into(), "Choose 1 to 5 stars".into());
        }
        let comment = self.comment.as_deref().map(str::trim).unwrap_or("");
        text_field("comment", comment, 0, RATING_COMMENT_MAX, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CheckedRating {
            stars: self.stars as u8,
            comment: (!comment.is_empty()).then(|| comment.to_string()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Rating {
    pub session_id: Uuid,
    pub stars: u8,
    pub comment: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub updated_at: OffsetDateTime,
    /// The customer may change the rating until then; later changes are refused.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub editable_until: OffsetDateTime,
}

/// How soon the customer should act on the mechanic's advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// At the next regular service.
    Routine,
    /// Within a few weeks.
    Soon,
    /// Within days.
    Urgent,
    /// Do not drive the vehicle until it is repaired.
    StopDriving,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::Soon => "soon",
            Urgency::Urgent => "urgent",
            Urgency::StopDriving => "stop_driving",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "routine" => Urgency::Routine,
            "soon" => Urgency::Soon,
            "urgent" => Urgency::Urgent,
            "stop_driving" => Urgency::StopDriving,
            _ => return None,
        })
    }

    /// The words the customer reads.
    pub fn label(self) -> &'static str {
        match self {
            Urgency::Routine => "Routine: at the next service",
            Urgency::Soon => "Soon: within a few weeks",
            Urgency::Urgent => "Urgent: within days",
            Urgency::StopDriving => "Stop driving until it is repaired",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct SummaryRequest {
    /// What the mechanic found.
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::summary_text))]
    pub found: String,
    /// What the customer should do next.
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::summary_text))]
    pub next_steps: String,
    pub urgency: Urgency,
}

/// A summary that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSummary {
    pub found: String,
    pub next_steps: String,
    pub urgency: Urgency,
}

impl SummaryRequest {
    pub fn check(&self) -> Result<CheckedSummary, FieldErrors> {
        let mut errors = FieldErrors::new();
        let found = self.found.trim();
        let next_steps = self.next_steps.trim();
        text_field("found", found, 1, SUMMARY_TEXT_MAX, &mut errors);
        text_field("next_steps", next_steps, 1, SUMMARY_TEXT_MAX, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CheckedSummary {
            found: found.into(),
            next_steps: next_steps.into(),
            urgency: self.urgency,
        })
    }
}

/// The mechanic's summary for the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct MechanicSummary {
    pub session_id: Uuid,
    pub mechanic_name: String,
    pub found: String,
    pub next_steps: String,
    pub urgency: Urgency,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub updated_at: OffsetDateTime,
}

impl MechanicSummary {
    /// The summary as plain text, for transcripts and mail.
    pub fn to_text(&self) -> String {
        format!(
            "Mechanic's summary ({})\nWhat was found:\n{}\n\nWhat to do next:\n{}\n\nHow urgent: {}\n",
            self.mechanic_name,
            self.found,
            self.next_steps,
            self.urgency.label()
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct NotesRequest {
    /// The whole note (it replaces the previous one); blank clears it.
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::notes))]
    pub body: String,
}

impl NotesRequest {
    pub fn check(&self) -> Result<String, FieldErrors> {
        let mut errors = FieldErrors::new();
        let body = self.body.trim();
        text_field("body", body, 0, NOTES_MAX, &mut errors);
        if errors.is_empty() {
            Ok(body.to_string())
        } else {
            Err(errors)
        }
    }
}

/// A mechanic's private notes on a session: never shown to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct MechanicNotes {
    pub session_id: Uuid,
    pub body: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub updated_at: Option<OffsetDateTime>,
}

/// What a session left for its participants: the mechanic's summary and the customer's rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct SessionOutcome {
    pub session_id: Uuid,
    pub summary: Option<MechanicSummary>,
    pub rating: Option<Rating>,
    /// Whether this caller may rate the session now (its customer, completed, and either not
    /// rated yet or still within the change window).
    pub can_rate: bool,
}

/// One session of a mechanic's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct HistoryEntry {
    pub session: Session,
    pub summary: Option<MechanicSummary>,
    pub rating: Option<Rating>,
    /// Whether this mechanic kept private notes on it.
    pub has_notes: bool,
}

fn text_field(field: &str, value: &str, min: usize, max: usize, errors: &mut FieldErrors) {
    let len = value.chars().count();
    if len < min {
        errors.insert(field.into(), "This field is required".into());
    } else if len > max {
        errors.insert(
            field.into(),
            format!("Please keep it under {max} characters"),
        );
    } else if !Lines::Many.allows(value) {
        errors.insert(
            field.into(),
            "Remove control characters (other than tabs and line breaks)".into(),
        );
    }
}

#[cfg(feature = "openapi")]
mod schema {
    use utoipa::openapi::schema::Object;

    use super::{NOTES_MAX, RATING_COMMENT_MAX, SUMMARY_TEXT_MAX};
    use crate::api::schema::{optional_trimmed_text, trimmed_text};
    use crate::text::Lines;

    pub fn comment() -> Object {
        optional_trimmed_text(RATING_COMMENT_MAX, Lines::Many, "The comment")
    }

    pub fn summary_text() -> Object {
        trimmed_text(1, SUMMARY_TEXT_MAX, Lines::Many, "The text")
    }

    pub fn notes() -> Object {
        optional_trimmed_text(NOTES_MAX, Lines::Many, "The note")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_are_one_to_five_with_a_bounded_comment() {
        let ok = RatingRequest {
            stars: 4,
            comment: Some("  Helpful  ".into()),
        };
        assert_eq!(
            ok.check().unwrap(),
            CheckedRating {
                stars: 4,
                comment: Some("Helpful".into())
            }
        );
        let blank = RatingRequest {
            stars: 5,
            comment: Some("   ".into()),
        };
        assert_eq!(blank.check().unwrap().comment, None);
        for stars in [0, 6, -1] {
            let bad = RatingRequest {
                stars,
                comment: None,
            };
            assert!(bad.check().unwrap_err().contains_key("stars"));
        }
        let long = RatingRequest {
            stars: 3,
            comment: Some("x".repeat(RATING_COMMENT_MAX + 1)),
        };
        assert!(long.check().unwrap_err().contains_key("comment"));
    }

    #[test]
    fn stars_may_carry_a_zero_fraction() {
        let rating: RatingRequest = serde_json::from_str(r#"{"stars": 2.0}"#).unwrap();
        assert_eq!(rating.check().unwrap().stars, 2);
        assert!(serde_json::from_str::<RatingRequest>(r#"{"stars": 2.5}"#).is_err());
    }

    #[test]
    fn a_summary_needs_both_parts() {
        let bad = SummaryRequest {
            found: " ".into(),
            next_steps: "Replace pads".into(),
            urgency: Urgency::Soon,
        };
        let errors = bad.check().unwrap_err();
        assert!(errors.contains_key("found") && !errors.contains_key("next_steps"));
        assert_eq!(Urgency::parse("stop_driving"), Some(Urgency::StopDriving));
        assert_eq!(
            Urgency::parse(Urgency::Urgent.as_str()),
            Some(Urgency::Urgent)
        );
    }
}
