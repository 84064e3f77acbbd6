//! SQL of the waiting room: mechanics' availability as shared state (one row per server node and
//! mechanic, refreshed by that node while the mechanic's feed connection lasts), the hours in which
//! mechanics were available, a request's place in line and the recent offered→accepted times.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{from_millis, millis, uuid_col, Store, StoreResult};

/// How many recent accepts the expected wait is estimated from.
pub const RECENT_ACCEPTS: i64 = 50;

impl Store {
    /// Replaces what node `node_id` says about its mechanics: `mechanics` maps each mechanic with
    /// a feed connection on that node to whether one of those connections is available. Rows of
    /// mechanics no longer connected there are deleted; the others are seen `now`.
    pub async fn replace_node_presence(
        &self,
        node_id: &str,
        mechanics: &BTreeMap<Uuid, bool>,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM mechanic_presence WHERE node_id = $1")
            .bind(node_id)
            .execute(&mut *tx)
            .await?;
        for (mechanic, available) in mechanics {
            sqlx::query(
                "INSERT INTO mechanic_presence (node_id, mechanic_id, available, last_seen_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(node_id)
            .bind(mechanic.to_string())
            .bind(i64::from(*available))
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        }
        if mechanics.values().any(|available| *available) {
            let hour = millis(now) - millis(now).rem_euclid(3_600_000);
            sqlx::query(
                "INSERT INTO mechanic_online_hours (hour_start) VALUES ($1) \
                 ON CONFLICT (hour_start) DO NOTHING",
            )
            .bind(hour)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes rows not refreshed since `before` (nodes that stopped without saying so).
    pub async fn forget_stale_presence(&self, before: OffsetDateTime) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM mechanic_presence WHERE last_seen_at < $1")
                .bind(millis(before))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Mechanics, not disabled, available on a node other than `node_id` that refreshed its row
    /// at or after `seen_since`.
    pub async fn available_mechanics_elsewhere(
        &self,
        node_id: &str,
        seen_since: OffsetDateTime,
    ) -> StoreResult<BTreeSet<Uuid>> {
        let rows = sqlx::query(
            "SELECT DISTINCT p.mechanic_id FROM mechanic_presence p \
             JOIN users u ON u.id = p.mechanic_id \
             WHERE p.node_id <> $1 AND p.available = 1 AND p.last_seen_at >= $2 AND u.disabled = 0",
        )
        .bind(node_id)
        .bind(millis(seen_since))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| uuid_col(row, "mechanic_id"))
            .collect()
    }

    /// The starts of the hours since `since` in which a mechanic was available.
    pub async fn online_hours(&self, since: OffsetDateTime) -> StoreResult<Vec<OffsetDateTime>> {
        let rows = sqlx::query(
            "SELECT hour_start FROM mechanic_online_hours WHERE hour_start >= $1 ORDER BY hour_start",
        )
        .bind(millis(since))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(from_millis(row.try_get("hour_start")?)))
            .collect()
    }

    /// Offered requests ahead of `session` in the mechanics' list (oldest first, by `created_at`
    /// then `id`); `None` when `session` is not offered.
    pub async fn requests_ahead(&self, session: Uuid) -> StoreResult<Option<u32>> {
        let row = sqlx::query(
            "SELECT COUNT(o.id) AS n FROM sessions me LEFT JOIN sessions o \
               ON o.status = 'pending' AND o.waiver_signed_at IS NOT NULL \
               AND (o.created_at < me.created_at OR (o.created_at = me.created_at AND o.id < me.id)) \
             WHERE me.id = $1 AND me.status = 'pending' AND me.waiver_signed_at IS NOT NULL \
             GROUP BY me.id",
        )
        .bind(session.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let n: i64 = row.try_get("n")?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
        .transpose()
    }

    /// The offered→accepted times, in seconds, of the `RECENT_ACCEPTS` latest accepts, oldest
    /// first.
    pub async fn recent_accept_waits(&self) -> StoreResult<Vec<f64>> {
        let rows = sqlx::query(
            "SELECT accepted_at - offered_at AS wait_ms FROM sessions \
             WHERE accepted_at IS NOT NULL AND offered_at IS NOT NULL AND accepted_at >= offered_at \
             ORDER BY accepted_at DESC, id DESC LIMIT $1",
        )
        .bind(RECENT_ACCEPTS)
        .fetch_all(&self.pool)
        .await?;
        let mut waits = rows
            .iter()
            .map(|row| Ok(row.try_get::<i64, _>("wait_ms")? as f64 / 1000.0))
            .collect::<StoreResult<Vec<f64>>>()?;
        waits.reverse();
        Ok(waits)
    }
}
