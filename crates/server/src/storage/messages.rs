//! Group commit of chat messages. Posts without attachments are handed to a few writer tasks;
//! each writer takes every post waiting at that moment and writes them in one transaction, and
//! each post is answered only after that transaction has committed. One statement per message
//! bumps the session's count and inserts the row where the session takes messages and the
//! sender's `client_id` is new (on PostgreSQL one data-modifying `WITH`, on SQLite an `UPDATE …
//! RETURNING` and the `INSERT` on the same connection), so a post costs no read before or after
//! its write and a group shares one `BEGIN`/`COMMIT`. A group that fails as a whole (the same
//! `client_id` posted twice at the same instant, say) is rolled back and its posts go the
//! one-message path one by one: nothing is answered that was not committed.

use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use super::Engine;

/// Writer tasks on PostgreSQL: while one commits its group, the next gathers what arrived
/// meanwhile. SQLite takes one writer at a time, and a second would only wait in its busy handler.
fn writers(engine: Engine) -> usize {
    match engine {
        Engine::Postgres => 4,
        Engine::Sqlite => 1,
    }
}
/// Most posts in one transaction.
const MAX_GROUP: usize = 128;
/// Posts queued for the writers before a poster waits for room.
const QUEUE: usize = 4096;

/// A message to store, already checked by the caller.
pub(super) struct NewMessage {
    pub id: Uuid,
    pub session_id: Uuid,
    pub sender_id: Uuid,
    pub sender_role: &'static str,
    pub body: String,
    pub client_id: String,
    /// Unix ms: the message's `created_at`, and the instant the session must not have ended by.
    pub now_ms: i64,
    /// The session statuses that take messages.
    pub open: Vec<&'static str>,
}

/// What became of one post.
pub(super) enum Written {
    /// Committed, with this `seq`.
    Stored { id: Uuid, seq: i64 },
    /// Not written: the session does not take messages now, or the sender already posted this
    /// `client_id`.
    NotStored,
    /// Its group was rolled back (or the writers are gone): nothing of it was committed.
    Alone,
}

type Job = (NewMessage, oneshot::Sender<Written>);

/// The handle posters send messages through; the writers stop when the last handle is dropped.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer tasks on `pool`.
    pub fn start(pool: AnyPool, engine: Engine) -> Writer {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..writers(engine) {
            let (pool, jobs) = (pool.clone(), jobs.clone());
            tokio::spawn(async move {
                while let Some(group) = gather(&jobs).await {
                    write(&pool, engine, group).await;
                }
            });
        }
        Writer { queue }
    }

    /// Writes `message` with whatever else is posted at the same time; returns once its group
    /// has committed or been rolled back.
    pub async fn write(&self, message: NewMessage) -> Written {
        let (reply, answer) = oneshot::channel();
        if self.queue.send((message, reply)).await.is_err() {
            return Written::Alone;
        }
        answer.await.unwrap_or(Written::Alone)
    }
}

/// Every post waiting now (at least one, at most [`MAX_GROUP`]); `None` once no handle is left.
async fn gather(jobs: &Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
    let mut jobs = jobs.lock().await;
    let mut group = vec![jobs.recv().await?];
    while group.len() < MAX_GROUP {
        match jobs.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    Some(group)
}

async fn write(pool: &AnyPool, engine: Engine, mut group: Vec<Job>) {
    // Sessions' rows are locked in one order by every group, so two groups cannot deadlock; the
    // sort is stable, so one session's posts keep their order of arrival.
    group.sort_by_key(|(message, _)| message.session_id);
    match write_group(pool, engine, &group).await {
        Ok(seqs) => {
            for ((message, reply), seq) in group.into_iter().zip(seqs) {
                let _ = reply.send(seq.map_or(Written::NotStored, |seq| Written::Stored {
                    id: message.id,
                    seq,
                }));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, posts = group.len(), "a group of messages was rolled back");
            for (_, reply) in group {
                let _ = reply.send(Written::Alone);
            }
        }
    }
}

async fn write_group(
    pool: &AnyPool,
    engine: Engine,
    group: &[Job],
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // On PostgreSQL one message is one statement, atomic by itself.
    if let ([(message, _)], Engine::Postgres) = (group, engine) {
        return Ok(vec![insert(&mut conn, engine, message).await?]);
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut seqs = Vec::with_capacity(group.len());
    for (message, _) in group {
        seqs.push(insert(&mut tx, engine, message).await?);
    }
    tx.commit().await?;
    Ok(seqs)
}

/// The session's count bumped where it takes messages and `client_id` is new, returning it:
/// `$1` session, `$2` sender, `$3` `client_id`, `$4` now, then the open statuses from `$5`.
pub(super) fn bump(statuses: usize) -> String {
    let placeholders: Vec<String> = (5..5 + statuses).map(|i| format!("${i}")).collect();
    format!(
        "UPDATE sessions SET last_seq = last_seq + 1 WHERE id = $1 AND status IN ({}) \
         AND (ends_at IS NULL OR ends_at > $4) AND NOT EXISTS (SELECT 1 FROM messages m \
         WHERE m.session_id = $1 AND m.sender_id = $2 AND m.client_id = $3) RETURNING last_seq",
        placeholders.join(", ")
    )
}

/// Stores one message on `conn` (inside the group's transaction); its `seq`, or `None` when it
/// was not written.
async fn insert(
    conn: &mut AnyConnection,
    engine: Engine,
    message: &NewMessage,
) -> Result<Option<i64>, sqlx::Error> {
    let session_id = message.session_id.to_string();
    let sender_id = message.sender_id.to_string();
    let statuses = message.open.len();
    let sql = match engine {
        Engine::Postgres => {
            // The message's own columns follow the bump's parameters.
            let [id, role, body] = [5 + statuses, 6 + statuses, 7 + statuses];
            format!(
                "WITH bumped AS ({}) INSERT INTO messages (id, session_id, seq, sender_id, \
                 sender_role, body, client_id, created_at) SELECT ${id}, $1, last_seq, $2, \
                 ${role}, ${body}, $3, $4 FROM bumped RETURNING seq",
                bump(statuses)
            )
        }
        Engine::Sqlite => bump(statuses),
    };
    let mut query = sqlx::query(&sql)
        .bind(session_id.as_str())
        .bind(sender_id.as_str())
        .bind(message.client_id.as_str())
        .bind(message.now_ms);
    for status in &message.open {
        query = query.bind(*status);
    }
    if engine == Engine::Postgres {
        query = query
            .bind(message.id.to_string())
            .bind(message.sender_role)
            .bind(message.body.as_str());
    }
    let row: Option<AnyRow> = query.fetch_optional(&mut *conn).await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if engine == Engine::Postgres {
        return Ok(Some(row.try_get("seq")?));
    }
    let seq: i64 = row.try_get("last_seq")?;
    sqlx::query(
        "INSERT INTO messages (id, session_id, seq, sender_id, sender_role, body, client_id, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(message.id.to_string())
    .bind(session_id)
    .bind(seq)
    .bind(sender_id)
    .bind(message.sender_role)
    .bind(message.body.as_str())
    .bind(message.client_id.as_str())
    .bind(message.now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(Some(seq))
}
