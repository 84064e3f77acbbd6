//! The domain records as they travel over HTTP and in `postgres_changes` payloads: users, plans,
//! sessions and messages. Field names follow the contract in docs/architecture.md.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Who a user is to Wrenchline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Mechanic,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Mechanic => "mechanic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Role::Customer),
            "mechanic" => Some(Role::Mechanic),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct User {
    pub id: Uuid,
    pub role: Role,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub minutes: u32,
    pub price_cents: u32,
}

/// The lifecycle of a session; see docs/architecture.md for who moves it and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Pending,
    Waiting,
    Live,
    Completed,
    Cancelled,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Waiting => "waiting",
            SessionStatus::Live => "live",
            SessionStatus::Completed => "completed",
            SessionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => SessionStatus::Pending,
            "waiting" => SessionStatus::Waiting,
            "live" => SessionStatus::Live,
            "completed" => SessionStatus::Completed,
            "cancelled" => SessionStatus::Cancelled,
            _ => return None,
        })
    }

    /// Completed and cancelled sessions never change again.
    pub fn is_final(self) -> bool {
        matches!(self, SessionStatus::Completed | SessionStatus::Cancelled)
    }
}

/// Why a session stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    TimeUp,
    EndedByCustomer,
    EndedByMechanic,
    CancelledByCustomer,
    NotAccepted,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::TimeUp => "time_up",
            EndReason::EndedByCustomer => "ended_by_customer",
            EndReason::EndedByMechanic => "ended_by_mechanic",
            EndReason::CancelledByCustomer => "cancelled_by_customer",
            EndReason::NotAccepted => "not_accepted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "time_up" => EndReason::TimeUp,
            "ended_by_customer" => EndReason::EndedByCustomer,
            "ended_by_mechanic" => EndReason::EndedByMechanic,
            "cancelled_by_customer" => EndReason::CancelledByCustomer,
            "not_accepted" => EndReason::NotAccepted,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Vehicle {
    pub year: i32,
    pub make: String,
    pub model: String,
    pub vin: Option<String>,
    pub mileage: Option<u32>,
}

/// A help request and, once accepted, the chat session it becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Session {
    pub id: Uuid,
    pub status: SessionStatus,
    pub plan: String,
    pub customer_id: Uuid,
    pub customer_name: String,
    pub mechanic_id: Option<Uuid>,
    pub mechanic_name: Option<String>,
    pub vehicle: Vehicle,
    pub concern: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub waiver_signed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub accepted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub ends_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub ended_at: Option<OffsetDateTime>,
    pub end_reason: Option<EndReason>,
}

impl Session {
    /// Offered to mechanics: pending with the waiver signed.
    pub fn is_offered(&self) -> bool {
        self.status == SessionStatus::Pending && self.waiver_signed_at.is_some()
    }

    /// The customer or the assigned mechanic.
    pub fn is_participant(&self, user_id: Uuid) -> bool {
        self.customer_id == user_id || self.mechanic_id == Some(user_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Message {
    pub id: Uuid,
    pub session_id: Uuid,
    /// 1, 2, 3… per session, without gaps.
    pub seq: i64,
    pub sender_id: Uuid,
    pub sender_role: Role,
    pub body: String,
    pub client_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub created_at: OffsetDateTime,
    /// Photos, clips and voice notes sent with the message, in the order they were given
    /// (always present from this server; optional to read, for records from older servers).
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<Attachment>>", optional))]
    pub attachments: Vec<Attachment>,
}

/// What an attachment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    Video,
    Audio,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Image => "image",
            AttachmentKind::Video => "video",
            AttachmentKind::Audio => "audio",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "image" => Some(AttachmentKind::Image),
            "video" => Some(AttachmentKind::Video),
            "audio" => Some(AttachmentKind::Audio),
            _ => None,
        }
    }

    /// How people name it: "Photo", "Video", "Voice note".
    pub fn label(self) -> &'static str {
        match self {
            AttachmentKind::Image => "Photo",
            AttachmentKind::Video => "Video",
            AttachmentKind::Audio => "Voice note",
        }
    }
}

/// A stored photo, video clip or voice note of a session. The file is
/// `GET /api/attachments/{id}` and, for images and videos with a frame, a small preview is
/// `GET /api/attachments/{id}/thumbnail`. Images are stored re-encoded without metadata, so
/// `content_type`, `bytes`, `width` and `height` describe what is served, not what was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Attachment {
    pub id: Uuid,
    pub kind: AttachmentKind,
    /// The type of the stored file, as served: `image/jpeg`, `image/png`, `video/mp4`,
    /// `video/quicktime`, `video/webm`, `audio/webm`, `audio/mp4`.
    pub content_type: String,
    /// Size of the stored file.
    pub bytes: u64,
    /// Pixels, for images and videos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub height: Option<u32>,
    /// Length of a video or voice note, read from the file by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub duration_ms: Option<u64>,
    /// Whether `GET /api/attachments/{id}/thumbnail` has a preview.
    #[serde(default)]
    pub has_thumbnail: bool,
    /// When it was uploaded.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub created_at: OffsetDateTime,
    /// Set once the file was deleted under the media retention period (or with the
    /// transcript); the entry stays so the chat and transcript can say what was there.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "ts", ts(type = "string", optional))]
    pub removed_at: Option<OffsetDateTime>,
}
