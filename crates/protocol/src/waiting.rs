//! The waiting room: what a customer whose request is offered sees about the line ahead of them,
//! the expected wait and the mechanics available, as `GET /api/sessions/{id}/waiting-room`
//! answers it; and the expected-wait arithmetic (an exponentially weighted moving average of
//! recent offered→accepted times), kept here so it is the same wherever it is computed.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::SessionStatus;

/// Weight of the newest accept in the moving average: each older one counts 0.7 times as much as
/// the next, so the estimate follows a change of pace within a handful of accepts.
pub const WAIT_EWMA_ALPHA: f64 = 0.3;

/// How often a waiting page asks again, in seconds.
pub const WAITING_ROOM_REFRESH_SECONDS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct WaitingRoom {
    pub session_id: Uuid,
    pub status: SessionStatus,
    /// Offered requests ahead of this one in the mechanics' list (older, still unaccepted); null
    /// when the request is not in line (waiver not signed yet, accepted, or ended).
    pub ahead: Option<u32>,
    /// The exponentially weighted moving average of recent offered→accepted times, in seconds;
    /// null before any request was ever accepted.
    pub typical_wait_seconds: Option<u32>,
    /// The expected wait for this request: `typical_wait_seconds × (ahead + 1)`; null when either
    /// is unknown.
    pub expected_wait_seconds: Option<u32>,
    /// Mechanics available now (the same count as `GET /api/availability`).
    pub mechanics_online: u32,
    /// With nobody available: the start of the next hour in which a mechanic usually was
    /// available over the last four weeks; null when the history does not show one.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub usually_online_at: Option<OffsetDateTime>,
    /// Ask again after this many seconds while the request is in line.
    pub refresh_seconds: u32,
}

/// The moving average of `waits` (seconds, oldest first), or `None` for none.
pub fn wait_ewma(waits: &[f64]) -> Option<f64> {
    let (first, rest) = waits.split_first()?;
    Some(rest.iter().fold(*first, |avg, w| {
        WAIT_EWMA_ALPHA * w + (1.0 - WAIT_EWMA_ALPHA) * avg
    }))
}

/// The expected wait of a request with `ahead` requests in front of it.
pub fn expected_wait(typical_seconds: u32, ahead: u32) -> u32 {
    typical_seconds.saturating_mul(ahead.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_leans_towards_recent_accepts() {
        assert_eq!(wait_ewma(&[]), None);
        assert_eq!(wait_ewma(&[60.0]), Some(60.0));
        // 60 → 0.3·120 + 0.7·60 = 78 → 0.3·30 + 0.7·78 = 63.6
        let avg = wait_ewma(&[60.0, 120.0, 30.0]).unwrap();
        assert!((avg - 63.6).abs() < 1e-9, "{avg}");
    }

    #[test]
    fn the_line_multiplies_the_typical_wait() {
        assert_eq!(expected_wait(90, 0), 90);
        assert_eq!(expected_wait(90, 2), 270);
        assert_eq!(expected_wait(u32::MAX, 3), u32::MAX);
    }
}
