//! Data retention: the server itself deletes customers' personal data and chat transcripts a set
//! number of days after their session ended, once at start and then every hour. The deletes are
//! conditional (see `Store::forget_ended_sessions`), so several servers on one database may run
//! them at the same time. A session's photos, clips and voice notes go with its transcript at the
//! latest: they are marked removed here and their files deleted by the media sweep
//! (`crate::media`), which also applies the shorter media retention period.

use std::time::Duration;

use time::OffsetDateTime;

use crate::storage::Store;

/// Days kept by default: a year covers follow-up questions, disputes and chargebacks about a
/// session; longer needs a reason of the operator's own (`--retention-days`, 0 keeps everything).
pub const DEFAULT_DAYS: u32 = 365;

/// How often a pass runs after the first one at start.
pub const PERIOD: Duration = Duration::from_secs(3600);

/// One pass: deletes what ended more than `days` days before `now`, and logs what it deleted.
pub async fn forget_once(store: &Store, days: u32, now: OffsetDateTime) {
    let cutoff = now - time::Duration::days(i64::from(days));
    match store.remove_media_of_sessions_ended_before(cutoff, now).await {
        Ok(0) => {}
        Ok(attachments) => tracing::info!(
            retention_days = days,
            attachments,
            "retention: media of sessions that ended before the retention period marked for deletion"
        ),
        Err(e) => tracing::warn!(error = %e, "retention pass failed; it runs again within the hour"),
    }
    match store.forget_ended_sessions(cutoff).await {
        Ok(done) if done == Default::default() => {}
        Ok(done) => tracing::info!(
            retention_days = days,
            messages = done.messages,
            sessions = done.sessions,
            customers = done.customers,
            "retention: deleted personal data of sessions that ended before the retention period"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "retention pass failed; it runs again within the hour")
        }
    }
}

/// Runs a pass at start and then every [`PERIOD`], for as long as the server runs.
pub async fn run(store: Store, days: u32) {
    tracing::info!(
        retention_days = days,
        "retention: personal data and transcripts are deleted {days} days after a session ends"
    );
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        forget_once(&store, days, OffsetDateTime::now_utc()).await;
    }
}
