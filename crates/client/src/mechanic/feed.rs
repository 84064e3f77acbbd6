//! The request list's state: the offered requests, oldest first, kept from `GET /api/requests`
//! (after every (re)subscription) and from the `requests` topic's row changes in between
//! (INSERT/UPDATE while offered; the UPDATE that takes a request out of the offer removes it).

use serde_json::Value;
use uuid::Uuid;
use wrenchline_protocol::Session;

/// What a row change did to the feed.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedChange {
    /// A request the feed had not seen: worth a notification.
    Added(Box<Session>),
    Updated,
    Removed(Uuid),
    /// Nothing visible changed (an unknown row leaving the offer, a malformed record).
    Unchanged,
}

#[derive(Debug, Default, Clone)]
pub struct RequestFeed {
    rows: Vec<Session>,
}

impl RequestFeed {
    pub fn rows(&self) -> &[Session] {
        &self.rows
    }

    pub fn contains(&self, id: Uuid) -> bool {
        self.rows.iter().any(|s| s.id == id)
    }

    /// Replaces the list with the server's (after a (re)subscription); returns the requests that
    /// were not in the list before, so one missed while offline still notifies.
    pub fn replace(&mut self, sessions: Vec<Session>) -> Vec<Session> {
        let added = sessions
            .iter()
            .filter(|s| !self.contains(s.id))
            .cloned()
            .collect();
        self.rows = sessions.into_iter().filter(Session::is_offered).collect();
        self.sort();
        added
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
        match self.rows.iter_mut().find(|s| s.id == session.id) {
            Some(row) => {
                *row = session;
                FeedChange::Updated
            }
            None => {
                self.rows.push(session.clone());
                self.sort();
                FeedChange::Added(Box::new(session))
            }
        }
    }

    pub fn remove(&mut self, id: Uuid) -> FeedChange {
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
    }

    fn sort(&mut self) {
        self.rows.sort_by_key(|s| (s.created_at, s.id));
    }
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
}
