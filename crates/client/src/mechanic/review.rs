//! The mechanic's side of what a session leaves behind: the summary for the customer, private
//! notes, and the History view's data (past sessions, searchable by vehicle and customer name,
//! each openable with its transcript, summary, notes and rating). Every call goes through the
//! session's token refresh like the others.

use serde::Serialize;
use uuid::Uuid;
use wrenchline_protocol::{
    HistoryEntry, MechanicNotes, MechanicSummary, Message, Rating, Session, SummaryRequest,
};

use super::MechanicSession;
use crate::ClientError;

/// Sessions one History page holds.
pub const HISTORY_PAGE: u32 = 20;
/// Most messages one history call of the server returns; a transcript is read page by page.
const MESSAGES_PAGE: usize = 500;

/// One past session opened in the History view: everything the mechanic may see of it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRecord {
    pub session: Session,
    pub transcript: Vec<Message>,
    pub summary: Option<MechanicSummary>,
    pub notes: MechanicNotes,
    pub rating: Option<Rating>,
}

impl MechanicSession {
    /// A page of this mechanic's sessions, latest accept first, whose customer name or vehicle
    /// (year, make, model, VIN) holds every word of `search`.
    pub async fn history(
        &self,
        search: &str,
        after: Option<Uuid>,
    ) -> Result<Vec<HistoryEntry>, ClientError> {
        let search = search.trim().to_string();
        self.call(|api| {
            let search = search.clone();
            async move { api.history(&search, HISTORY_PAGE, after).await }
        })
        .await
    }

    /// One session with its whole transcript, summary, this mechanic's notes and the rating.
    pub async fn session_record(&self, id: Uuid) -> Result<SessionRecord, ClientError> {
        let session = self
            .call(|api| async move { api.session(id).await })
            .await?;
        let mut transcript: Vec<Message> = Vec::new();
        loop {
            let after = transcript.last().map_or(0, |m| m.seq);
            let page = self
                .call(|api| async move { api.messages(id, after).await })
                .await?;
            let full = page.len() >= MESSAGES_PAGE;
            let empty = page.is_empty();
            transcript.extend(page);
            if empty || !full {
                break;
            }
        }
        let outcome = self
            .call(|api| async move { api.outcome(id).await })
            .await?;
        let notes = self.call(|api| async move { api.notes(id).await }).await?;
        Ok(SessionRecord {
            session,
            transcript,
            summary: outcome.summary,
            notes,
            rating: outcome.rating,
        })
    }

    /// Writes (or rewrites) the summary the customer reads, during or after the session.
    pub async fn write_summary(
        &self,
        id: Uuid,
        summary: SummaryRequest,
    ) -> Result<MechanicSummary, ClientError> {
        self.call(|api| {
            let summary = summary.clone();
            async move { api.write_summary(id, &summary).await }
        })
        .await
    }

    /// Replaces this mechanic's private notes on the session (blank deletes them).
    pub async fn write_notes(&self, id: Uuid, body: &str) -> Result<MechanicNotes, ClientError> {
        let body = body.to_string();
        self.call(|api| {
            let body = body.clone();
            async move { api.write_notes(id, &body).await }
        })
        .await
    }
}
