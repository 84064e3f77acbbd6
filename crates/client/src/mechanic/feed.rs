//! The request list's state: the offered requests, oldest first, kept from `GET /api/requests`
//! (after every (re)subscription) and from the `requests` topic's row changes in between
//! (INSERT/UPDATE while offered; the UPDATE that takes a request out of the offer removes it),
//! and which of them are still to be announced as new (each offer once).

use std::collections::HashSet;

use serde_json::Value;
use uuid::Uuid;
use wrenchline_protocol::Session;

/// What a row change did to the feed.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedChange {
    /// A request newly offered: worth a notification. Either the feed had not seen it, or the
    /// first load listed it quietly and this change shows it entering the offer.
    Added(Box<Session>),
    Updated,
    Removed(Uuid),
    /// Nothing visible changed (an unknown row leaving the offer, a malformed record).
    Unchanged,
}

#[derive(Debug, Default, Clone)]
pub struct RequestFeed {
    rows: Vec<Session>,
    /// Listed by the first load without being announced. The load cannot tell the requests on
    /// offer before the feed subscribed from one offered between the subscription and the read;
    /// the row change of the latter follows, and it is announced then.
    quiet: HashSet<Uuid>,
}

impl RequestFeed {
    pub fn rows(&self) -> &[Session] {
        &self.rows
    }

    pub fn contains(&self, id: Uuid) -> bool {
        self.rows.iter().any(|s| s.id == id)
    }

    /// Replaces the list with the server's (after a re-subscription); returns the requests that
    /// were not in the list before, so one missed while offline still notifies.
    pub fn replace(&mut self, sessions: Vec<Session>) -> Vec<Session> {
        let added: Vec<Session> = sessions
            .iter()
            .filter(|s| s.is_offered() && !self.contains(s.id))
            .cloned()
            .collect();
        self.rows = sessions.into_iter().filter(Session::is_offered).collect();
        self.sort();
        let listed: HashSet<Uuid> = self.rows.iter().map(|s| s.id).collect();
        self.quiet.retain(|id| listed.contains(id));
        added
    }

    /// Takes the first load after signing in: its requests are listed without a notification
    /// (most were on offer before the mechanic came), until a row change shows one of them
    /// entering the offer (see [`RequestFeed::apply`]).
    pub fn load(&mut self, sessions: Vec<Session>) {
        for session in self.replace(sessions) {
            self.quiet.insert(session.id);
        }
    }

    /// Applies one `postgres_changes` record of the `sessions` table.
    pub fn apply(
        &mut self,
        change_type: &str,
        record: &Value,
        old_record: Option<&Value>,
    ) -> FeedChange {
        if change_type == "DELETE" {
            let id = old_record
                .and_then(|o| o.get("id"))
                .and_then(Value::as_str)
                .and_then(|id| id.parse().ok());
            return match id {
                Some(id) => self.remove(id),
                None => FeedChange::Unchanged,
            };
        }
        let Ok(session) = serde_json::from_value::<Session>(record.clone()) else {
            // A row we cannot read may still be taking a request out: drop it by id.
            return match record
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| id.parse().ok())
            {
                Some(id) => self.remove(id),
                None => FeedChange::Unchanged,
            };
        };
        if !session.is_offered() {
            return self.remove(session.id);
        }
        let entering = old_record.is_some_and(|old| old.is_object() && !offered_record(old));
        match self.rows.iter_mut().find(|s| s.id == session.id) {
            Some(row) => {
                *row = session.clone();
                if entering && self.quiet.remove(&session.id) {
                    FeedChange::Added(Box::new(session))
                } else {
                    FeedChange::Updated
                }
            }
            None => {
                self.rows.push(session.clone());
                self.sort();
                FeedChange::Added(Box::new(session))
            }
        }
    }

    pub fn remove(&mut self, id: Uuid) -> FeedChange {
        self.quiet.remove(&id);
        let before = self.rows.len();
        self.rows.retain(|s| s.id != id);
        if self.rows.len() < before {
            FeedChange::Removed(id)
        } else {
            FeedChange::Unchanged
        }
    }

    pub fn clear(&mut self) {
        self.rows.clear();
        self.quiet.clear();
    }

    fn sort(&mut self) {
        self.rows.sort_by_key(|s| (s.created_at, s.id));
    }
}

/// Whether a `sessions` record is on offer (pending, waiver signed), as [`Session::is_offered`].
fn offered_record(record: &Value) -> bool {
    record.get("status").and_then(Value::as_str) == Some("pending")
        && record
            .get("waiver_signed_at")
            .is_some_and(|signed| !signed.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, status: &str, signed: bool, created: &str) -> Value {
        json!({
            "id": id, "status": status, "plan": "standard",
            "customer_id": "00000000-0000-0000-0000-0000000000c1", "customer_name": "Dana",
            "mechanic_id": null, "mechanic_name": null,
            "vehicle": {"year": 2018, "make": "Honda", "model": "Civic", "vin": null, "mileage": 84000},
            "concern": "Grinding noise from the front when braking at low speed",
            "created_at": created,
            "waiver_signed_at": if signed { json!(created) } else { Value::Null },
            "accepted_at": null, "started_at": null, "ends_at": null, "ended_at": null, "end_reason": null
        })
    }

    const A: &str = "00000000-0000-0000-0000-00000000000a";
    const B: &str = "00000000-0000-0000-0000-00000000000b";

    #[test]
    fn an_offered_request_is_added_once_then_updated() {
        let mut feed = RequestFeed::default();
        let change = feed.apply(
            "UPDATE",
            &record(A, "pending", true, "2025-01-01T10:00:00Z"),
            None,
        );
        assert!(matches!(change, FeedChange::Added(s) if s.id.to_string() == A));
        let change = feed.apply(
            "UPDATE",
            &record(A, "pending", true, "2025-01-01T10:00:00Z"),
            None,
        );
        assert_eq!(change, FeedChange::Updated);
        assert_eq!(feed.rows().len(), 1);
    }

    #[test]
    fn unsigned_requests_are_not_offered() {
        let mut feed = RequestFeed::default();
        let change = feed.apply(
            "INSERT",
            &record(A, "pending", false, "2025-01-01T10:00:00Z"),
            None,
        );
        assert_eq!(change, FeedChange::Unchanged);
        assert_eq!(feed.rows().len(), 0);
    }

    #[test]
    fn the_update_that_takes_a_request_out_removes_the_row() {
        let mut feed = RequestFeed::default();
        feed.apply(
            "UPDATE",
            &record(A, "pending", true, "2025-01-01T10:00:00Z"),
            None,
        );
        let change = feed.apply(
            "UPDATE",
            &record(A, "waiting", true, "2025-01-01T10:00:00Z"),
            None,
        );
        assert_eq!(change, FeedChange::Removed(A.parse().unwrap()));
        assert_eq!(feed.rows().len(), 0);
        let change = feed.apply(
            "UPDATE",
            &record(A, "cancelled", true, "2025-01-01T10:00:00Z"),
            None,
        );
        assert_eq!(change, FeedChange::Unchanged);
    }

    #[test]
    fn oldest_first_and_replace_reports_the_new_ones() {
        let mut feed = RequestFeed::default();
        feed.apply(
            "UPDATE",
            &record(B, "pending", true, "2025-01-01T11:00:00Z"),
            None,
        );
        feed.apply(
            "UPDATE",
            &record(A, "pending", true, "2025-01-01T10:00:00Z"),
            None,
        );
        assert_eq!(feed.rows()[0].id.to_string(), A);

        let a: Session =
            serde_json::from_value(record(A, "pending", true, "2025-01-01T10:00:00Z")).unwrap();
        let c_id = "00000000-0000-0000-0000-00000000000c";
        let c: Session =
            serde_json::from_value(record(c_id, "pending", true, "2025-01-01T12:00:00Z")).unwrap();
        let added = feed.replace(vec![a, c]);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].id.to_string(), c_id);
        assert_eq!(feed.rows().len(), 2);
        assert!(!feed.contains(B.parse().unwrap()));
    }

    fn session(id: &str, created: &str) -> Session {
        serde_json::from_value(record(id, "pending", true, created)).unwrap()
    }

    #[test]
    fn the_first_load_lists_quietly_and_a_row_change_entering_the_offer_announces_once() {
        let mut feed = RequestFeed::default();
        feed.load(vec![
            session(A, "2025-01-01T10:00:00Z"),
            session(B, "2025-01-01T11:00:00Z"),
        ]);
        assert_eq!(feed.rows().len(), 2);
        // B was signed after the subscription; the load read it before its change came.
        let signing = record(B, "pending", false, "2025-01-01T11:00:00Z");
        let signed = record(B, "pending", true, "2025-01-01T11:00:00Z");
        let change = feed.apply("UPDATE", &signed, Some(&signing));
        assert!(matches!(change, FeedChange::Added(s) if s.id.to_string() == B));
        assert_eq!(feed.rows().len(), 2, "announced, not listed twice");
        let change = feed.apply("UPDATE", &signed, Some(&signing));
        assert_eq!(change, FeedChange::Updated, "announced once");
        // A changed while on offer: it was there before the sign-in.
        let a = record(A, "pending", true, "2025-01-01T10:00:00Z");
        assert_eq!(feed.apply("UPDATE", &a, Some(&a)), FeedChange::Updated);
        assert_eq!(feed.apply("UPDATE", &a, None), FeedChange::Updated);
    }

    #[test]
    fn a_request_announced_by_its_row_change_or_a_reload_is_not_announced_again() {
        let mut feed = RequestFeed::default();
        feed.load(Vec::new());
        let signing = record(A, "pending", false, "2025-01-01T10:00:00Z");
        let signed = record(A, "pending", true, "2025-01-01T10:00:00Z");
        assert!(matches!(
            feed.apply("UPDATE", &signed, Some(&signing)),
            FeedChange::Added(_)
        ));
        assert!(feed
            .replace(vec![session(A, "2025-01-01T10:00:00Z")])
            .is_empty());

        // Offered while the feed was away: the reload announces it, its late row change does not.
        let added = feed.replace(vec![
            session(A, "2025-01-01T10:00:00Z"),
            session(B, "2025-01-01T11:00:00Z"),
        ]);
        assert_eq!(added.len(), 1);
        let signing = record(B, "pending", false, "2025-01-01T11:00:00Z");
        let signed = record(B, "pending", true, "2025-01-01T11:00:00Z");
        assert_eq!(
            feed.apply("UPDATE", &signed, Some(&signing)),
            FeedChange::Updated
        );
    }

    #[test]
    fn a_request_offered_again_is_announced_again() {
        let mut feed = RequestFeed::default();
        feed.load(vec![session(A, "2025-01-01T10:00:00Z")]);
        let offered = record(A, "pending", true, "2025-01-01T10:00:00Z");
        let accepted = record(A, "waiting", true, "2025-01-01T10:00:00Z");
        assert!(matches!(
            feed.apply("UPDATE", &accepted, Some(&offered)),
            FeedChange::Removed(_)
        ));
        assert!(matches!(
            feed.apply("UPDATE", &offered, Some(&accepted)),
            FeedChange::Added(_)
        ));
    }
}
