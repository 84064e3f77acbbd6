//! SQL of what a session leaves behind: the customer's rating (one per session, changeable within
//! a window), the mechanic's summary for the customer, the mechanic's private notes, and the
//! mechanic's searchable history of sessions.

use sqlx::any::AnyRow;
use sqlx::Row;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use wrenchline_protocol::{
    CheckedRating, CheckedSummary, HistoryEntry, MechanicNotes, MechanicSummary, Rating, Urgency,
};

use super::{
    millis, opt_time_col, session_from_row, time_col, Store, StoreError, StoreResult,
    SESSION_COLUMNS,
};

/// What storing a rating did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RatingSaved {
    /// Stored (first rating or a change within the window): the rating as it now is.
    Saved(Rating),
    /// Rated before, and the change window has closed: the rating as it stays.
    Locked(Rating),
}

/// The most search words a history query uses.
pub const HISTORY_SEARCH_WORDS: usize = 6;

const RATING_COLUMNS: &str = "r.session_id AS r_session, r.stars AS r_stars, \
     r.comment AS r_comment, r.created_at AS r_created, r.updated_at AS r_updated";
const SUMMARY_COLUMNS: &str = "sm.session_id AS sm_session, sm.found AS sm_found, \
     sm.next_steps AS sm_next, sm.urgency AS sm_urgency, sm.updated_at AS sm_updated, \
     sw.name AS sm_mechanic";

fn rating_from_row(row: &AnyRow, window: Duration) -> StoreResult<Option<Rating>> {
    let Some(session) = row.try_get::<Option<String>, _>("r_session")? else {
        return Ok(None);
    };
    let stars: i64 = row.try_get("r_stars")?;
    let created_at = time_col(row, "r_created")?;
    Ok(Some(Rating {
        session_id: Uuid::parse_str(&session)
            .map_err(|_| StoreError::Corrupt(format!("rating session: {session}")))?,
        stars: u8::try_from(stars).map_err(|_| StoreError::Corrupt(format!("stars: {stars}")))?,
        comment: row.try_get("r_comment")?,
        created_at,
        updated_at: time_col(row, "r_updated")?,
        editable_until: created_at + window,
    }))
}

fn summary_from_row(row: &AnyRow) -> StoreResult<Option<MechanicSummary>> {
    let Some(session) = row.try_get::<Option<String>, _>("sm_session")? else {
        return Ok(None);
    };
    let urgency: String = row.try_get("sm_urgency")?;
    Ok(Some(MechanicSummary {
        session_id: Uuid::parse_str(&session)
            .map_err(|_| StoreError::Corrupt(format!("summary session: {session}")))?,
        mechanic_name: row.try_get("sm_mechanic")?,
        found: row.try_get("sm_found")?,
        next_steps: row.try_get("sm_next")?,
        urgency: Urgency::parse(&urgency)
            .ok_or_else(|| StoreError::Corrupt(format!("urgency: {urgency}")))?,
        updated_at: time_col(row, "sm_updated")?,
    }))
}

/// `text` as a `LIKE` pattern matching it anywhere, with `\` escaping the wildcards.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    /// Stores the customer's rating of `session`: the first one, or a change while the first is
    /// younger than `window`. One conditional upsert, so concurrent calls cannot both create.
    pub async fn save_rating(
        &self,
        session: Uuid,
        customer: Uuid,
        rating: &CheckedRating,
        window: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<RatingSaved> {
        let changed = sqlx::query(
            "INSERT INTO ratings (session_id, customer_id, stars, comment, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (session_id) DO UPDATE SET stars = excluded.stars, \
               comment = excluded.comment, updated_at = excluded.updated_at \
             WHERE ratings.created_at > $6",
        )
        .bind(session.to_string())
        .bind(customer.to_string())
        .bind(i64::from(rating.stars))
        .bind(rating.comment.clone())
        .bind(millis(now))
        .bind(millis(now - window))
        .execute(&self.pool)
        .await?
        .rows_affected();
        let stored = self
            .rating(session, window)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("rating of {session} vanished")))?;
        Ok(if changed == 1 {
            RatingSaved::Saved(stored)
        } else {
            RatingSaved::Locked(stored)
        })
    }

    pub async fn rating(&self, session: Uuid, window: Duration) -> StoreResult<Option<Rating>> {
        let row = sqlx::query(&format!(
            "SELECT {RATING_COLUMNS} FROM ratings r WHERE r.session_id = $1"
        ))
        .bind(session.to_string())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => rating_from_row(&row, window),
            None => Ok(None),
        }
    }

    /// Writes (or rewrites) the summary of `session` by `mechanic`.
    pub async fn save_summary(
        &self,
        session: Uuid,
        mechanic: Uuid,
        summary: &CheckedSummary,
        now: OffsetDateTime,
    ) -> StoreResult<MechanicSummary> {
        sqlx::query(
            "INSERT INTO session_summaries (session_id, mechanic_id, found, next_steps, urgency, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (session_id) DO UPDATE SET mechanic_id = excluded.mechanic_id, \
               found = excluded.found, next_steps = excluded.next_steps, \
               urgency = excluded.urgency, updated_at = excluded.updated_at",
        )
        .bind(session.to_string())
        .bind(mechanic.to_string())
        .bind(summary.found.clone())
        .bind(summary.next_steps.clone())
        .bind(summary.urgency.as_str())
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        self.summary(session)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("summary of {session} vanished")))
    }

    /// The mechanic's summary of `session` for its customer, if one was written: what the
    /// completed page, the transcript and the session-ended mail show.
    pub async fn summary(&self, session: Uuid) -> StoreResult<Option<MechanicSummary>> {
        let row = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM session_summaries sm \
             JOIN users sw ON sw.id = sm.mechanic_id WHERE sm.session_id = $1"
        ))
        .bind(session.to_string())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => summary_from_row(&row),
            None => Ok(None),
        }
    }

    /// Replaces `mechanic`'s private notes on `session`; blank deletes them.
    pub async fn save_notes(
        &self,
        session: Uuid,
        mechanic: Uuid,
        body: &str,
        now: OffsetDateTime,
    ) -> StoreResult<MechanicNotes> {
        if body.is_empty() {
            sqlx::query("DELETE FROM mechanic_notes WHERE session_id = $1 AND mechanic_id = $2")
                .bind(session.to_string())
                .bind(mechanic.to_string())
                .execute(&self.pool)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO mechanic_notes (session_id, mechanic_id, body, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (session_id, mechanic_id) \
                 DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            )
            .bind(session.to_string())
            .bind(mechanic.to_string())
            .bind(body)
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        }
        self.notes(session, mechanic).await
    }

    /// `mechanic`'s private notes on `session` (empty when none).
    pub async fn notes(&self, session: Uuid, mechanic: Uuid) -> StoreResult<MechanicNotes> {
        let row = sqlx::query(
            "SELECT body, updated_at FROM mechanic_notes WHERE session_id = $1 AND mechanic_id = $2",
        )
        .bind(session.to_string())
        .bind(mechanic.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => MechanicNotes {
                session_id: session,
                body: row.try_get("body")?,
                updated_at: opt_time_col(&row, "updated_at")?,
            },
            None => MechanicNotes {
                session_id: session,
                body: String::new(),
                updated_at: None,
            },
        })
    }

    /// A page of the sessions `mechanic` accepted, the latest accept first, whose customer name
    /// or vehicle (year, make, model, VIN) contains every word of `search`; after the session
    /// `after` in that order. `None` when `after` is not one of this mechanic's sessions.
    pub async fn mechanic_history(
        &self,
        mechanic: Uuid,
        search: &str,
        after: Option<Uuid>,
        limit: i64,
        rating_window: Duration,
    ) -> StoreResult<Option<Vec<HistoryEntry>>> {
        let mut sql = format!(
            "SELECT {SESSION_COLUMNS}, {SUMMARY_COLUMNS}, {RATING_COLUMNS}, \
               n.session_id AS n_session \
             FROM sessions s JOIN users c ON c.id = s.customer_id \
             LEFT JOIN users m ON m.id = s.mechanic_id \
             LEFT JOIN session_summaries sm ON sm.session_id = s.id \
             LEFT JOIN users sw ON sw.id = sm.mechanic_id \
             LEFT JOIN ratings r ON r.session_id = s.id \
             LEFT JOIN mechanic_notes n ON n.session_id = s.id AND n.mechanic_id = $1 \
             WHERE s.mechanic_id = $1 AND s.accepted_at IS NOT NULL"
        );
        let mut binds: Vec<String> = vec![mechanic.to_string()];
        let mut cursor: Option<i64> = None;
        if let Some(after) = after {
            let row = sqlx::query(
                "SELECT accepted_at FROM sessions WHERE id = $1 AND mechanic_id = $2 \
                 AND accepted_at IS NOT NULL",
            )
            .bind(after.to_string())
            .bind(mechanic.to_string())
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            cursor = Some(row.try_get("accepted_at")?);
            binds.push(after.to_string());
            sql.push_str(" AND (s.accepted_at < $3 OR (s.accepted_at = $3 AND s.id < $2))");
        }
        let haystack = "LOWER(c.name || ' ' || CAST(s.vehicle_year AS TEXT) || ' ' || \
             s.vehicle_make || ' ' || s.vehicle_model || ' ' || COALESCE(s.vehicle_vin, ''))";
        let first_word = if cursor.is_some() { 4 } else { 2 };
        let words: Vec<String> = search
            .split_whitespace()
            .take(HISTORY_SEARCH_WORDS)
            .map(contains_pattern)
            .collect();
        for (i, _) in words.iter().enumerate() {
            sql.push_str(&format!(
                " AND {haystack} LIKE ${} ESCAPE '\\'",
                first_word + i
            ));
        }
        sql.push_str(&format!(
            " ORDER BY s.accepted_at DESC, s.id DESC LIMIT ${}",
            first_word + words.len()
        ));
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = query.bind(bind);
        }
        if let Some(cursor) = cursor {
            query = query.bind(cursor);
        }
        for word in words {
            query = query.bind(word);
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(HistoryEntry {
                    session: session_from_row(row)?,
                    summary: summary_from_row(row)?,
                    rating: rating_from_row(row, rating_window)?,
                    has_notes: row.try_get::<Option<String>, _>("n_session")?.is_some(),
                })
            })
            .collect::<StoreResult<Vec<_>>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn search_words_match_literally() {
        assert_eq!(contains_pattern("Civic"), "%civic%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
