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
}
