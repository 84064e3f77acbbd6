//! Mechanic availability as shared state, so every server node answers the same count: each node
//! writes the mechanics connected to its request feed (their presence on `requests`, which the
//! desktop app tracks with `online` or `away`) into `mechanic_presence`, at once when it changes
//! and every quarter of the grace period while it does not. A mechanic counts as available while
//! some node's row says so and was refreshed within the grace period (`--availability-grace`,
//! 2 minutes): a laptop that sleeps has its socket closed by the heartbeat timeout and leaves at
//! the next sync; a node that dies stops refreshing and its mechanics drop out after the grace.
//! Also here: the hours in which mechanics usually are available, from the same rows' history.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::AppState;
use crate::storage::StoreResult;

/// How often this node compares its feed's presence with what it last wrote.
const SYNC_TICK: Duration = Duration::from_millis(500);
/// How far back the usual hours look.
const USUAL_HOURS_WEEKS: i64 = 4;
const HOURS_PER_WEEK: i64 = 7 * 24;

/// Distinct mechanics available now, on any node: this node's feed as it is this instant (a
/// switch to away shows at once here), with what the other nodes last wrote within the grace.
pub async fn mechanics_online(state: &AppState) -> StoreResult<u32> {
    let since = state.now() - state.settings.availability_grace;
    let mut available = state
        .store
        .available_mechanics_elsewhere(&state.node_key, since)
        .await?;
    available.extend(
        state
            .hub
            .mechanics_on_feed()
            .into_iter()
            .filter_map(|(id, online)| online.then_some(id)),
    );
    Ok(u32::try_from(available.len()).unwrap_or(u32::MAX))
}

/// The start of the next hour in which a mechanic usually is available (see [`usual_hour`]).
pub async fn usually_online_at(state: &AppState) -> StoreResult<Option<OffsetDateTime>> {
    let now = state.now();
    let hours = state
        .store
        .online_hours(now - time::Duration::weeks(USUAL_HOURS_WEEKS))
        .await?;
    Ok(usual_hour(&hours, now))
}

/// The first whole hour after `now` whose hour of the week (UTC) had a mechanic available in at
/// least half of the weeks `hours` covers (at most four): with a week of history, once is enough;
/// with four, twice. `None` when no hour of the week qualifies.
pub fn usual_hour(hours: &[OffsetDateTime], now: OffsetDateTime) -> Option<OffsetDateTime> {
    let earliest = hours.iter().min()?;
    let weeks = ((now - *earliest).whole_days() / 7 + 1).clamp(1, USUAL_HOURS_WEEKS);
    let needed = (weeks + 1) / 2;
    let slot = |t: OffsetDateTime| (t.unix_timestamp().div_euclid(3600)).rem_euclid(HOURS_PER_WEEK);
    let mut seen: HashMap<i64, i64> = HashMap::new();
    for hour in hours {
        *seen.entry(slot(*hour)).or_default() += 1;
    }
    let this_hour = now.unix_timestamp().div_euclid(3600) * 3600;
    (1..=HOURS_PER_WEEK)
        .map(|i| OffsetDateTime::from_unix_timestamp(this_hour + i * 3600).ok())
        .find_map(|t| t.filter(|t| seen.get(&slot(*t)).copied().unwrap_or(0) >= needed))
}

/// Keeps this node's rows (named by `node_key`, random per process: a restarted node starts
/// afresh) in step with its request feed until the task is dropped.
pub async fn sync(state: AppState) {
    let node_id = state.node_key.clone();
    let refresh = (state.settings.availability_grace / 4_i32)
        .max(time::Duration::seconds(1))
        .unsigned_abs();
    let mut tick = tokio::time::interval(SYNC_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written: Option<BTreeMap<Uuid, bool>> = None;
    let mut written_at = tokio::time::Instant::now();
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        let now_feed = state.hub.mechanics_on_feed();
        let due = written.as_ref() != Some(&now_feed) || written_at.elapsed() >= refresh;
        if due {
            match state
                .store
                .replace_node_presence(&node_id, &now_feed, state.now())
                .await
            {
                Ok(()) => {
                    written = Some(now_feed);
                    written_at = tokio::time::Instant::now();
                }
                Err(e) => tracing::warn!(error = %e, "writing mechanic availability failed"),
            }
        }
        // Rows of nodes gone for a day are of no use to anyone.
        if ticks % 7200 == 1 {
            let before = state.now() - time::Duration::days(1);
            if let Err(e) = state.store.forget_stale_presence(before).await {
                tracing::warn!(error = %e, "forgetting stale availability failed");
            }
        }
    }
}

/// Removes this node's rows when it stops, so its mechanics leave the count at once.
pub async fn leave(state: &AppState) {
    if let Err(e) = state
        .store
        .replace_node_presence(&state.node_key, &BTreeMap::new(), state.now())
        .await
    {
        tracing::warn!(error = %e, "clearing mechanic availability at shutdown failed");
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_single_week_of_history_is_enough_to_name_an_hour() {
        let now = datetime!(2026-12-07 20:30 UTC);
        let hours = [
            datetime!(2026-12-07 09:00 UTC),
            datetime!(2026-12-07 10:00 UTC),
        ];
        assert_eq!(
            usual_hour(&hours, now),
            Some(datetime!(2026-12-14 09:00 UTC)),
            "next Monday 09:00"
        );
        assert_eq!(usual_hour(&[], now), None);
    }

    #[test]
    fn with_four_weeks_an_hour_must_have_been_seen_twice() {
        let now = datetime!(2026-12-07 20:30 UTC);
        // Tuesday 08:00 once four weeks ago, Wednesday 14:00 on two weeks.
        let hours = [
            datetime!(2026-11-10 08:00 UTC),
            datetime!(2026-11-18 14:00 UTC),
            datetime!(2026-12-02 14:00 UTC),
        ];
        assert_eq!(
            usual_hour(&hours, now),
            Some(datetime!(2026-12-09 14:00 UTC))
        );
    }
}
