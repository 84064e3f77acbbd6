//! All SQL lives here. One schema and one set of queries serve SQLite (embedded default) and
//! PostgreSQL through sqlx's `Any` driver; placeholders are `$n`, which both engines accept.
//! Every lifecycle transition is a single conditional `UPDATE … WHERE status = <expected>`: zero
//! rows affected means another request won, and the caller gets the current state instead.
//! Retention deletes are conditional too, so any number of servers may run them at once.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor, Row};
use time::OffsetDateTime;
use uuid::Uuid;
use wrenchline_protocol::{
    Attachment, AttachmentKind, EndReason, Intake, Message, Role, Session, SessionStatus, User,
    Vehicle,
};

mod messages;
mod reviews;
mod waiting;

pub use reviews::{RatingSaved, HISTORY_SEARCH_WORDS};

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pooled connection idle this long is pinged before it is used again.
const POOL_PING_IDLE: Duration = Duration::from_secs(60);

/// The PostgreSQL channel on which a commit that queued mail wakes every node's mail worker.
pub const MAIL_CHANNEL: &str = "wrenchline_mail";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The first connection failed: the server is unreachable, or refused the credentials.
    #[error("cannot connect to the database at {target}")]
    Connect { target: String, source: sqlx::Error },
    /// The database (an SQLite file, or Wrenchline's tables) does not exist and was not to be
    /// created.
    #[error("there is no Wrenchline database at {0}")]
    Missing(String),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The outcome of a conditional transition.
#[derive(Debug, Clone)]
pub enum Transition {
    /// This request moved the session; here is its new state.
    Done(Session),
    /// The session was not in the expected state; here is the state it is in.
    Conflict(Session),
}

/// A message post: the stored message and whether this call created it.
#[derive(Debug, Clone)]
pub struct Posted {
    pub message: Message,
    pub created: bool,
}

/// Why a message could not be stored.
#[derive(Debug, Clone)]
pub enum PostRefused {
    /// The session does not take messages in its current state.
    NotOpen(Box<Session>),
    /// An attachment is not this sender's upload to this session (or no longer exists).
    UnknownAttachment(Uuid),
    /// An attachment was already sent with another message.
    AttachmentSent(Uuid),
}

/// An attachment with what only the server needs: whose it is and whether it was sent.
#[derive(Debug, Clone)]
pub struct AttachmentRecord {
    pub attachment: Attachment,
    pub session_id: Uuid,
    pub uploader_id: Uuid,
    pub message_id: Option<Uuid>,
}

/// An attachment whose files are to be deleted from the media store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaToPurge {
    pub id: Uuid,
    pub session_id: Uuid,
    pub has_thumbnail: bool,
    /// Never sent: its row goes too once the files are gone.
    pub unsent: bool,
}

#[derive(Debug, Clone)]
pub struct MechanicRecord {
    pub user: User,
    pub password_hash: String,
    pub disabled: bool,
}

/// A stored resume link, whatever its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeLinkRecord {
    pub session_id: Uuid,
    pub customer_id: Uuid,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// What a resume link redemption found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeUse {
    /// This call spent the link: the browser may have the session.
    Redeemed {
        session_id: Uuid,
        customer_id: Uuid,
    },
    /// Spent before (by another browser, or a concurrent request that won).
    AlreadyUsed,
    Expired,
    Unknown,
}

/// A mail to queue with a session transition: its kind (see `mail::MailKind`) and the time it
/// is queued at.
#[derive(Debug, Clone, Copy)]
pub struct QueueMail<'a> {
    pub kind: &'a str,
    pub at: OffsetDateTime,
}

/// A queued mail this node has claimed for sending, until `claimed_until`.
#[derive(Debug, Clone)]
pub struct ClaimedMail {
    pub id: Uuid,
    pub claim_id: String,
    pub kind: String,
    pub session_id: Uuid,
    pub recipient: String,
    pub mechanic_name: Option<String>,
    /// Attempts including this one.
    pub attempts: i64,
    pub created_at: OffsetDateTime,
}

/// What a refresh token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// Valid and now spent; a new token may be issued in this family.
    Rotated { family_id: String, user_id: Uuid },
    /// Already spent or revoked: its whole family has been revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

/// A message just written with `seq`, as the API returns it (its attachments added by the caller).
fn stored_message(
    id: Uuid,
    session_id: Uuid,
    seq: i64,
    sender: &User,
    body: &str,
    client_id: &str,
    now: OffsetDateTime,
) -> Message {
    Message {
        id,
        session_id,
        seq,
        sender_id: sender.id,
        sender_role: sender.role,
        body: body.to_string(),
        client_id: client_id.to_string(),
        created_at: from_millis(millis(now)),
        attachments: Vec::new(),
    }
}

pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

const SESSION_COLUMNS: &str = "s.id, s.status, s.plan, s.customer_id, c.name AS customer_name, \
     s.mechanic_id, m.name AS mechanic_name, s.vehicle_year, s.vehicle_make, s.vehicle_model, \
     s.vehicle_vin, s.vehicle_mileage, s.concern, s.created_at, s.waiver_signed_at, \
     s.accepted_at, s.started_at, s.ends_at, s.ended_at, s.end_reason";

fn session_select(filter: &str) -> String {
    format!(
        "SELECT {SESSION_COLUMNS} FROM sessions s JOIN users c ON c.id = s.customer_id \
         LEFT JOIN users m ON m.id = s.mechanic_id {filter}"
    )
}

fn uuid_col(row: &AnyRow, col: &str) -> StoreResult<Uuid> {
    let text: String = row.try_get(col)?;
    Uuid::parse_str(&text).map_err(|_| StoreError::Corrupt(format!("{col}: {text}")))
}

fn opt_uuid_col(row: &AnyRow, col: &str) -> StoreResult<Option<Uuid>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|_| StoreError::Corrupt(format!("{col}: {t}"))))
        .transpose()
}

fn time_col(row: &AnyRow, col: &str) -> StoreResult<OffsetDateTime> {
    Ok(from_millis(row.try_get(col)?))
}

fn opt_time_col(row: &AnyRow, col: &str) -> StoreResult<Option<OffsetDateTime>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_millis))
}

fn session_from_row(row: &AnyRow) -> StoreResult<Session> {
    let status: String = row.try_get("status")?;
    let end_reason: Option<String> = row.try_get("end_reason")?;
    let mileage: Option<i64> = row.try_get("vehicle_mileage")?;
    let year: i64 = row.try_get("vehicle_year")?;
    Ok(Session {
        id: uuid_col(row, "id")?,
        status: SessionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status: {status}")))?,
        plan: row.try_get("plan")?,
        customer_id: uuid_col(row, "customer_id")?,
        customer_name: row.try_get("customer_name")?,
        mechanic_id: opt_uuid_col(row, "mechanic_id")?,
        mechanic_name: row.try_get("mechanic_name")?,
        vehicle: Vehicle {
            year: year as i32,
            make: row.try_get("vehicle_make")?,
            model: row.try_get("vehicle_model")?,
            vin: row.try_get("vehicle_vin")?,
            mileage: mileage.map(|m| m as u32),
        },
        concern: row.try_get("concern")?,
        created_at: time_col(row, "created_at")?,
        waiver_signed_at: opt_time_col(row, "waiver_signed_at")?,
        accepted_at: opt_time_col(row, "accepted_at")?,
        started_at: opt_time_col(row, "started_at")?,
        ends_at: opt_time_col(row, "ends_at")?,
        ended_at: opt_time_col(row, "ended_at")?,
        end_reason: end_reason.as_deref().and_then(EndReason::parse),
    })
}

/// Revokes every refresh token `user_id` holds, inside the caller's transaction.
async fn revoke_refresh_tokens(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: String,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(millis(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn user_from_row(row: &AnyRow) -> StoreResult<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: uuid_col(row, "id")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role: {role}")))?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
    })
}

const ATTACHMENT_COLUMNS: &str = "a.id, a.session_id, a.uploader_id, a.kind, a.content_type, \
     a.bytes, a.width, a.height, a.duration_ms, a.has_thumbnail, a.created_at, a.message_id, \
     a.removed_at";

fn attachment_from_row(row: &AnyRow) -> StoreResult<AttachmentRecord> {
    let kind: String = row.try_get("kind")?;
    let bytes: i64 = row.try_get("bytes")?;
    let dimension = |col: &str| -> StoreResult<Option<u32>> {
        Ok(row
            .try_get::<Option<i64>, _>(col)?
            .and_then(|v| u32::try_from(v).ok()))
    };
    let duration: Option<i64> = row.try_get("duration_ms")?;
    let has_thumbnail: i64 = row.try_get("has_thumbnail")?;
    Ok(AttachmentRecord {
        attachment: Attachment {
            id: uuid_col(row, "id")?,
            kind: AttachmentKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("kind: {kind}")))?,
            content_type: row.try_get("content_type")?,
            bytes: u64::try_from(bytes).unwrap_or(0),
            width: dimension("width")?,
            height: dimension("height")?,
            duration_ms: duration.and_then(|d| u64::try_from(d).ok()),
            has_thumbnail: has_thumbnail != 0,
            created_at: time_col(row, "created_at")?,
            removed_at: opt_time_col(row, "removed_at")?,
        },
        session_id: uuid_col(row, "session_id")?,
        uploader_id: uuid_col(row, "uploader_id")?,
        message_id: opt_uuid_col(row, "message_id")?,
    })
}

fn message_from_row(row: &AnyRow) -> StoreResult<Message> {
    let role: String = row.try_get("sender_role")?;
    Ok(Message {
        id: uuid_col(row, "id")?,
        session_id: uuid_col(row, "session_id")?,
        seq: row.try_get("seq")?,
        sender_id: uuid_col(row, "sender_id")?,
        sender_role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("sender_role: {role}")))?,
        body: row.try_get("body")?,
        client_id: row.try_get("client_id")?,
        created_at: time_col(row, "created_at")?,
        attachments: Vec::new(),
    })
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The file of an SQLite URL (`sqlite://FILE`, `sqlite:FILE`), absolute; `None` for other
/// engines and in-memory databases.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    let path = PathBuf::from(path);
    Some(std::path::absolute(&path).unwrap_or(path))
}

/// A database URL as an operator may see it: the SQLite file as an absolute path, a server URL
/// without its password.
pub fn describe_database_url(url: &str) -> String {
    if let Some(file) = sqlite_file(url) {
        return format!("sqlite://{}", file.display());
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            if parsed.query().is_some() {
                let kept: Vec<(String, String)> = parsed
                    .query_pairs()
                    .filter(|(k, _)| k != "password")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                parsed.set_query(None);
                if !kept.is_empty() {
                    parsed.query_pairs_mut().extend_pairs(kept);
                }
            }
            parsed.to_string()
        }
        Err(_) => "(an unreadable database URL)".into(),
    }
}

/// Where a connection goes, for error messages: `host:port (database D, user U)` or the file.
fn connect_target(url: &str) -> String {
    if let Some(file) = sqlite_file(url) {
        return file.display().to_string();
    }
    match sqlx::postgres::PgConnectOptions::from_str(url) {
        Ok(pg) if url.starts_with("postgres") => {
            let place = match pg.get_socket() {
                Some(socket) => format!("{} (socket)", socket.display()),
                None => format!("{}:{}", pg.get_host(), pg.get_port()),
            };
            format!(
                "{place} (database {}, user {})",
                pg.get_database().unwrap_or(pg.get_username()),
                pg.get_username()
            )
        }
        _ => describe_database_url(url),
    }
}

/// Creates the file of a SQLite database that is to be created (`mode=rwc`, see
/// [`normalize_database_url`]) readable and writable by its owner only (0600), before SQLite
/// opens it: SQLite gives the `-wal` and `-shm` files it makes beside it the same mode. An
/// existing file is left as it is.
fn create_private_sqlite_file(url: &str) -> StoreResult<()> {
    if !url.contains("mode=rwc") || url.contains(":memory:") {
        return Ok(());
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let path = options.get_filename();
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
    match create.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}

/// Turns `sqlite://file` into a URL that creates the file on first start.
pub fn normalize_database_url(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    /// The mail the next transition of this handle queues with it (see [`Store::mailing`]).
    mail: Option<QueueMail<'static>>,
    /// Chat messages without attachments, written in groups (see [`messages`]).
    messages: messages::Writer,
}

impl Store {
    /// Connects, applies the connection settings the engine needs, and runs the migrations; a new
    /// SQLite file and the tables are created when missing.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let store = Self::open(&normalize_database_url(url), url).await?;
        MIGRATOR.run(&store.pool).await?;
        Ok(store)
    }

    /// As [`Store::connect`], for a database that must exist already: a missing SQLite file or
    /// a database without Wrenchline's tables is [`StoreError::Missing`], and nothing is created.
    pub async fn connect_existing(url: &str) -> StoreResult<Self> {
        let mut open_url = url.to_string();
        if let Some(file) = sqlite_file(url) {
            if !file.is_file() {
                return Err(StoreError::Missing(describe_database_url(url)));
            }
            if !url.contains("mode=") {
                let sep = if url.contains('?') { '&' } else { '?' };
                open_url = format!("{url}{sep}mode=rw");
            }
        }
        let store = Self::open(&open_url, url).await?;
        let probe = match store.engine {
            Engine::Sqlite => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' \
                 AND name = '_sqlx_migrations'"
            }
            Engine::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let tables: i64 = sqlx::query(probe)
            .fetch_one(&store.pool)
            .await?
            .try_get("n")?;
        if tables == 0 {
            store.close().await;
            return Err(StoreError::Missing(describe_database_url(url)));
        }
        MIGRATOR.run(&store.pool).await?;
        Ok(store)
    }

    /// The pool, with the engine's connection settings; `given` is the URL as configured, for
    /// error messages.
    async fn open(url: &str, given: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("postgres") {
            Engine::Postgres
        } else {
            Engine::Sqlite
        };
        if engine == Engine::Sqlite {
            create_private_sqlite_file(url)?;
        }
        let options = AnyConnectOptions::from_str(url)?;
        // One connection first, on its own: the pool would retry a refused connection until its
        // timeout and then report only that it timed out, not why.
        let unreachable = |source| StoreError::Connect {
            target: connect_target(given),
            source,
        };
        options
            .connect()
            .await
            .map_err(unreachable)?
            .close()
            .await
            .map_err(unreachable)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match engine {
                Engine::Sqlite => 8,
                Engine::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every connection it hands out (a round trip before each query) and
            // again when it is returned; one returned within the last minute is known good.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= POOL_PING_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        Ok(Store {
            messages: messages::Writer::start(pool.clone(), engine),
            pool,
            engine,
            mail: None,
        })
    }

    /// This store, whose session transitions queue `mail` in their transaction when they move
    /// the session (nothing when `None`): `store.mailing(mail).accept(…)`.
    pub fn mailing(&self, mail: Option<QueueMail<'static>>) -> Store {
        Store {
            mail,
            ..self.clone()
        }
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A named secret, created with `make` the first time it is asked for.
    pub async fn secret(&self, name: &str, make: impl FnOnce() -> String) -> StoreResult<String> {
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }

    // ---- users ----

    pub async fn create_customer(
        &self,
        name: &str,
        email: &str,
        phone: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO users (id, role, name, email, phone, created_at) \
             VALUES ($1, 'customer', $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(email)
        .bind(phone)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(User {
            id,
            role: Role::Customer,
            name: name.into(),
            email: email.into(),
        })
    }

    /// Refreshes a returning customer's contact details from a new intake.
    pub async fn update_customer_contact(
        &self,
        id: Uuid,
        name: &str,
        email: &str,
        phone: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE users SET name = $2, email = $3, phone = $4 WHERE id = $1 AND role = 'customer'")
            .bind(id.to_string())
            .bind(name)
            .bind(email)
            .bind(phone)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates a mechanic; `None` when the email is taken.
    pub async fn create_mechanic(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<User>> {
        let id = Uuid::new_v4();
        let result = sqlx::query(
            "INSERT INTO users (id, role, name, email, password_hash, created_at) \
             VALUES ($1, 'mechanic', $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(email)
        .bind(password_hash)
        .bind(millis(now))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(Some(User {
                id,
                role: Role::Mechanic,
                name: name.into(),
                email: email.into(),
            })),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn set_mechanic_password(
        &self,
        email: &str,
        password_hash: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $2, disabled = 0 WHERE email = $1 AND role = 'mechanic'",
        )
        .bind(email)
        .bind(password_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn mechanic_by_email(&self, email: &str) -> StoreResult<Option<MechanicRecord>> {
        let row = sqlx::query(
            "SELECT id, role, name, email, password_hash, disabled FROM users \
             WHERE email = $1 AND role = 'mechanic'",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(MechanicRecord {
                user: user_from_row(&row)?,
                password_hash: row
                    .try_get::<Option<String>, _>("password_hash")?
                    .unwrap_or_default(),
                disabled: row.try_get::<i64, _>("disabled")? != 0,
            })
        })
        .transpose()
    }

    pub async fn list_mechanics(&self) -> StoreResult<Vec<(User, bool)>> {
        let rows = sqlx::query(
            "SELECT id, role, name, email, disabled FROM users WHERE role = 'mechanic' ORDER BY email",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((user_from_row(row)?, row.try_get::<i64, _>("disabled")? != 0)))
            .collect()
    }

    /// Disables a mechanic and revokes every refresh token they hold.
    pub async fn disable_mechanic(&self, email: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE users SET disabled = 1 WHERE email = $1 AND role = 'mechanic' RETURNING id",
        )
        .bind(email)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        revoke_refresh_tokens(&mut tx, row.try_get("id")?, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Lets a disabled mechanic sign in again.
    pub async fn enable_mechanic(&self, email: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE users SET disabled = 0 WHERE email = $1 AND role = 'mechanic'")
                .bind(email)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a mechanic's password and revokes every refresh token they hold; an account that
    /// is disabled stays disabled.
    pub async fn reset_mechanic_password(
        &self,
        email: &str,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE users SET password_hash = $2 WHERE email = $1 AND role = 'mechanic' RETURNING id",
        )
        .bind(email)
        .bind(password_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        revoke_refresh_tokens(&mut tx, row.try_get("id")?, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ids of every disabled mechanic.
    pub async fn disabled_mechanics(&self) -> StoreResult<Vec<Uuid>> {
        let rows = sqlx::query("SELECT id FROM users WHERE role = 'mechanic' AND disabled = 1")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| uuid_col(row, "id")).collect()
    }

    /// An active user (disabled mechanics are treated as unknown).
    pub async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        let row =
            sqlx::query("SELECT id, role, name, email FROM users WHERE id = $1 AND disabled = 0")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    // ---- sessions ----

    pub async fn create_session(
        &self,
        customer_id: Uuid,
        intake: &Intake,
        plan_minutes: u32,
        now: OffsetDateTime,
    ) -> StoreResult<Session> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO sessions (id, status, plan, plan_minutes, customer_id, vehicle_year, \
             vehicle_make, vehicle_model, vehicle_vin, vehicle_mileage, concern, created_at) \
             VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id.to_string())
        .bind(&intake.plan)
        .bind(plan_minutes as i64)
        .bind(customer_id.to_string())
        .bind(intake.vehicle.year as i64)
        .bind(&intake.vehicle.make)
        .bind(&intake.vehicle.model)
        .bind(intake.vehicle.vin.as_deref())
        .bind(intake.vehicle.mileage.map(i64::from))
        .bind(&intake.concern)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        self.session(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("session vanished after insert".into()))
    }

    pub async fn session(&self, id: Uuid) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&session_select("WHERE s.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// The plan length a session was booked with.
    pub async fn session_minutes(&self, id: Uuid) -> StoreResult<Option<u32>> {
        let row = sqlx::query("SELECT plan_minutes FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>("plan_minutes"))
            .transpose()?
            .map(|m| m as u32))
    }

    /// Offered requests (pending, waiver signed), oldest first (by `created_at`, then `id`): at
    /// most `limit`, and only those after the session `after` in that order. `None` when `after`
    /// names no session.
    pub async fn offered_sessions(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Option<Vec<Session>>> {
        const OFFERED: &str = "WHERE s.status = 'pending' AND s.waiver_signed_at IS NOT NULL";
        const ORDER: &str = "ORDER BY s.created_at, s.id LIMIT";
        let rows = match after {
            None => {
                sqlx::query(&session_select(&format!("{OFFERED} {ORDER} $1")))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(after) => {
                let Some(row) = sqlx::query("SELECT created_at FROM sessions WHERE id = $1")
                    .bind(after.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    return Ok(None);
                };
                let created: i64 = row.try_get("created_at")?;
                sqlx::query(&session_select(&format!(
                    "{OFFERED} AND (s.created_at > $1 OR (s.created_at = $1 AND s.id > $2)) {ORDER} $3"
                )))
                .bind(created)
                .bind(after.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(session_from_row)
            .collect::<StoreResult<_>>()
            .map(Some)
    }

    /// Offered requests that have been on offer since `offered_by` or earlier.
    pub async fn offered_before(&self, offered_by: OffsetDateTime) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&session_select(
            "WHERE s.status = 'pending' AND s.offered_at IS NOT NULL AND s.offered_at <= $1",
        ))
        .bind(millis(offered_by))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Waiting sessions accepted at `accepted_by` or earlier.
    pub async fn waiting_accepted_before(
        &self,
        accepted_by: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&session_select(
            "WHERE s.status = 'waiting' AND s.accepted_at <= $1",
        ))
        .bind(millis(accepted_by))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Sessions in `live` whose time is up at `now`.
    pub async fn sessions_due(&self, now: OffsetDateTime) -> StoreResult<Vec<Uuid>> {
        let rows = sqlx::query("SELECT id FROM sessions WHERE status = 'live' AND ends_at <= $1")
            .bind(millis(now))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| uuid_col(r, "id")).collect()
    }

    /// Live sessions that end at or before `by`, with their end.
    pub async fn live_sessions_ending_by(
        &self,
        by: OffsetDateTime,
    ) -> StoreResult<Vec<(Uuid, OffsetDateTime)>> {
        let rows =
            sqlx::query("SELECT id, ends_at FROM sessions WHERE status = 'live' AND ends_at <= $1")
                .bind(millis(by))
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((uuid_col(r, "id")?, time_col(r, "ends_at")?)))
            .collect()
    }

    /// Runs one conditional UPDATE on a session and reads the outcome in the same transaction;
    /// when the update moved the session, the customer's mail `mail` (a kind) is queued in that
    /// transaction too.
    async fn transition<'q>(
        &self,
        id: Uuid,
        sql: &'q str,
        bind: impl FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
        mail: Option<QueueMail<'static>>,
    ) -> StoreResult<Option<Transition>> {
        let mut tx = self.pool.begin().await?;
        let id_text = id.to_string();
        let done = bind(sqlx::query(sql).bind(id_text.clone()))
            .execute(&mut *tx)
            .await?;
        if let (Some(mail), 1) = (mail, done.rows_affected()) {
            self.queue_mail(&mut tx, mail, id).await?;
        }
        let row = sqlx::query(&session_select("WHERE s.id = $1"))
            .bind(&id_text)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let session = session_from_row(&row)?;
        Ok(Some(if done.rows_affected() == 1 {
            Transition::Done(session)
        } else {
            Transition::Conflict(session)
        }))
    }

    pub async fn sign_waiver(
        &self,
        id: Uuid,
        customer_id: Uuid,
        signed_name: &str,
        version: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Transition>> {
        self.transition(
            id,
            "UPDATE sessions SET waiver_signed_at = $3, offered_at = $3, waiver_name = $4, \
             waiver_version = $5 WHERE id = $1 AND customer_id = $2 AND status = 'pending' AND waiver_signed_at IS NULL",
            |q| q.bind(customer_id.to_string()).bind(millis(now)).bind(signed_name).bind(version),
            self.mail,
        )
        .await
    }

    pub async fn accept(
        &self,
        id: Uuid,
        mechanic_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Transition>> {
        self.transition(
            id,
            "UPDATE sessions SET status = 'waiting', mechanic_id = $2, accepted_at = $3 \
             WHERE id = $1 AND status = 'pending' AND waiver_signed_at IS NOT NULL \
             AND mechanic_id IS NULL",
            |q| q.bind(mechanic_id.to_string()).bind(millis(now)),
            self.mail,
        )
        .await
    }

    /// `waiting → live`, the clock starting at `now` for the booked plan length.
    pub async fn start(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<Option<Transition>> {
        self.transition(
            id,
            "UPDATE sessions SET status = 'live', started_at = $2, ends_at = $2 + plan_minutes * 60000 \
             WHERE id = $1 AND status = 'waiting'",
            |q| q.bind(millis(now)),
            None,
        )
        .await
    }

    /// Moves a session out of `from` into a final state.
    pub async fn finish(
        &self,
        id: Uuid,
        from: SessionStatus,
        to: SessionStatus,
        reason: EndReason,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Transition>> {
        debug_assert!(to.is_final());
        self.transition(
            id,
            "UPDATE sessions SET status = $2, ended_at = $3, end_reason = $4 \
             WHERE id = $1 AND status = $5",
            |q| {
                q.bind(to.as_str())
                    .bind(millis(now))
                    .bind(reason.as_str())
                    .bind(from.as_str())
            },
            self.mail,
        )
        .await
    }

    /// `pending → cancelled` (`not_accepted`) for a request on offer since `offered_by` or earlier.
    pub async fn cancel_unaccepted(
        &self,
        id: Uuid,
        offered_by: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Transition>> {
        self.transition(
            id,
            "UPDATE sessions SET status = 'cancelled', ended_at = $3, end_reason = 'not_accepted' \
             WHERE id = $1 AND status = 'pending' AND offered_at IS NOT NULL AND offered_at <= $2",
            |q| q.bind(millis(offered_by)).bind(millis(now)),
            self.mail,
        )
        .await
    }

    /// `waiting → pending`, offered again from `now` without a mechanic, when `mechanic_id`
    /// accepted it at `accepted_by` or earlier and it is still theirs.
    pub async fn reoffer(
        &self,
        id: Uuid,
        mechanic_id: Uuid,
        accepted_by: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Transition>> {
        self.transition(
            id,
            "UPDATE sessions SET status = 'pending', mechanic_id = NULL, accepted_at = NULL, \
             offered_at = $4 WHERE id = $1 AND status = 'waiting' AND mechanic_id = $2 \
             AND accepted_at <= $3",
            |q| {
                q.bind(mechanic_id.to_string())
                    .bind(millis(accepted_by))
                    .bind(millis(now))
            },
            None,
        )
        .await
    }

    /// Completes a live session whose time ran out, stamping `ended_at` with its `ends_at`.
    pub async fn expire(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<Option<Transition>> {
        self.transition(
            id,
            "UPDATE sessions SET status = 'completed', ended_at = ends_at, end_reason = 'time_up' \
             WHERE id = $1 AND status = 'live' AND ends_at <= $2",
            |q| q.bind(millis(now)),
            self.mail,
        )
        .await
    }

    // ---- messages ----

    async fn message_by_client_id(
        &self,
        session_id: Uuid,
        sender_id: Uuid,
        client_id: &str,
    ) -> StoreResult<Option<Message>> {
        let row = sqlx::query(
            "SELECT * FROM messages WHERE session_id = $1 AND sender_id = $2 AND client_id = $3",
        )
        .bind(session_id.to_string())
        .bind(sender_id.to_string())
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(mut message) = row.as_ref().map(message_from_row).transpose()? else {
            return Ok(None);
        };
        message.attachments = self.message_attachments(message.id).await?;
        Ok(Some(message))
    }

    /// The attachments of one message, in the order they were sent.
    async fn message_attachments(&self, message_id: Uuid) -> StoreResult<Vec<Attachment>> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments a WHERE a.message_id = $1 \
             ORDER BY a.position"
        ))
        .bind(message_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| attachment_from_row(row).map(|r| r.attachment))
            .collect()
    }

    /// Stores a message with the next `seq` of its session; a repeated `client_id` from the same
    /// sender returns the message stored the first time. Only sessions in `open` whose `ends_at`
    /// (if any) is after `now` take messages. A message without attachments is committed in one
    /// transaction with the others posted at the same moment, and returns once that has
    /// committed.
    pub async fn post_message(
        &self,
        session_id: Uuid,
        sender: &User,
        client_id: &str,
        body: &str,
        open: &[SessionStatus],
        now: OffsetDateTime,
    ) -> StoreResult<Result<Posted, PostRefused>> {
        self.post_message_with(session_id, sender, client_id, body, &[], open, now)
            .await
    }

    /// As [`Store::post_message`], sending `attachments` with the message: each must be the
    /// sender's unsent upload to this session, and is marked sent in the same transaction
    /// (one conditional update, so an attachment goes out with one message only).
    #[allow(clippy::too_many_arguments)]
    pub async fn post_message_with(
        &self,
        session_id: Uuid,
        sender: &User,
        client_id: &str,
        body: &str,
        attachments: &[Uuid],
        open: &[SessionStatus],
        now: OffsetDateTime,
    ) -> StoreResult<Result<Posted, PostRefused>> {
        if attachments.is_empty() {
            let written = self
                .messages
                .write(messages::NewMessage {
                    id: Uuid::new_v4(),
                    session_id,
                    sender_id: sender.id,
                    sender_role: sender.role.as_str(),
                    body: body.to_string(),
                    client_id: client_id.to_string(),
                    now_ms: millis(now),
                    open: open.iter().map(|s| s.as_str()).collect(),
                })
                .await;
            match written {
                messages::Written::Stored { id, seq } => {
                    return Ok(Ok(Posted {
                        message: stored_message(id, session_id, seq, sender, body, client_id, now),
                        created: true,
                    }));
                }
                messages::Written::NotStored => {
                    return self.not_stored(session_id, sender.id, client_id).await;
                }
                // Nothing of it was committed: the one-message path below.
                messages::Written::Alone => {}
            }
        }
        // A repeated `client_id` or a closed session updates nothing; `not_stored` says which.
        let bump = messages::bump(open.len());
        let mut tx = self.pool.begin().await?;
        let mut query = sqlx::query(&bump)
            .bind(session_id.to_string())
            .bind(sender.id.to_string())
            .bind(client_id)
            .bind(millis(now));
        for status in open {
            query = query.bind(status.as_str());
        }
        let Some(row) = query.fetch_optional(&mut *tx).await? else {
            tx.rollback().await?;
            return self.not_stored(session_id, sender.id, client_id).await;
        };
        let seq: i64 = row.try_get("last_seq")?;
        let mut message = stored_message(
            Uuid::new_v4(),
            session_id,
            seq,
            sender,
            body,
            client_id,
            now,
        );
        for (position, attachment_id) in attachments.iter().enumerate() {
            let claimed = sqlx::query(&format!(
                "UPDATE attachments SET message_id = $1, position = $2 WHERE id = $3 \
                 AND session_id = $4 AND uploader_id = $5 AND message_id IS NULL \
                 AND removed_at IS NULL RETURNING {}",
                ATTACHMENT_COLUMNS.replace("a.", "")
            ))
            .bind(message.id.to_string())
            .bind(position as i64)
            .bind(attachment_id.to_string())
            .bind(session_id.to_string())
            .bind(sender.id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            match claimed {
                Some(row) => message
                    .attachments
                    .push(attachment_from_row(&row)?.attachment),
                None => {
                    tx.rollback().await?;
                    let known = self.attachment(*attachment_id).await?;
                    let refused = match known {
                        Some(record)
                            if record.session_id == session_id
                                && record.uploader_id == sender.id
                                && record.message_id.is_some() =>
                        {
                            PostRefused::AttachmentSent(*attachment_id)
                        }
                        _ => PostRefused::UnknownAttachment(*attachment_id),
                    };
                    return Ok(Err(refused));
                }
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO messages (id, session_id, seq, sender_id, sender_role, body, client_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(message.id.to_string())
        .bind(session_id.to_string())
        .bind(seq)
        .bind(sender.id.to_string())
        .bind(sender.role.as_str())
        .bind(body)
        .bind(client_id)
        .bind(millis(now))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(Ok(Posted {
                    message,
                    created: true,
                }))
            }
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                let message = self
                    .message_by_client_id(session_id, sender.id, client_id)
                    .await?
                    .ok_or(StoreError::Database(e))?;
                Ok(Ok(Posted {
                    message,
                    created: false,
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Why a message the group writer did not store was refused: the sender had already posted
    /// its `client_id` (that message, not created), or the session does not take messages.
    async fn not_stored(
        &self,
        session_id: Uuid,
        sender_id: Uuid,
        client_id: &str,
    ) -> StoreResult<Result<Posted, PostRefused>> {
        if let Some(message) = self
            .message_by_client_id(session_id, sender_id, client_id)
            .await?
        {
            return Ok(Ok(Posted {
                message,
                created: false,
            }));
        }
        let session = self
            .session(session_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("message for a missing session".into()))?;
        Ok(Err(PostRefused::NotOpen(Box::new(session))))
    }

    /// Messages with `seq > after`, in order, at most `limit`, each with its attachments.
    pub async fn messages(
        &self,
        session_id: Uuid,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<Message>> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(session_id.to_string())
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut messages: Vec<Message> = rows
            .iter()
            .map(message_from_row)
            .collect::<StoreResult<_>>()?;
        let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
            return Ok(messages);
        };
        let rows = sqlx::query(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments a JOIN messages m ON m.id = a.message_id \
             WHERE m.session_id = $1 AND m.seq >= $2 AND m.seq <= $3 ORDER BY m.seq, a.position"
        ))
        .bind(session_id.to_string())
        .bind(first.seq)
        .bind(last.seq)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let record = attachment_from_row(row)?;
            if let Some(message) = messages
                .iter_mut()
                .find(|m| Some(m.id) == record.message_id)
            {
                message.attachments.push(record.attachment);
            }
        }
        Ok(messages)
    }

    // ---- attachments ----

    /// Records an uploaded attachment, unsent, once its files are in the media store.
    pub async fn insert_attachment(
        &self,
        attachment: &Attachment,
        session_id: Uuid,
        uploader_id: Uuid,
    ) -> StoreResult<()> {
        let opt = |v: Option<u32>| v.map(i64::from);
        sqlx::query(
            "INSERT INTO attachments (id, session_id, uploader_id, kind, content_type, bytes, \
             width, height, duration_ms, has_thumbnail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(attachment.id.to_string())
        .bind(session_id.to_string())
        .bind(uploader_id.to_string())
        .bind(attachment.kind.as_str())
        .bind(&attachment.content_type)
        .bind(i64::try_from(attachment.bytes).unwrap_or(i64::MAX))
        .bind(opt(attachment.width))
        .bind(opt(attachment.height))
        .bind(attachment.duration_ms.and_then(|d| i64::try_from(d).ok()))
        .bind(i64::from(attachment.has_thumbnail))
        .bind(millis(attachment.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn attachment(&self, id: Uuid) -> StoreResult<Option<AttachmentRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments a WHERE a.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(attachment_from_row).transpose()
    }

    /// Marks for deletion the attachments uploaded before `before` and never sent; the mark is
    /// conditional on their still being unsent, so a message that takes one at the same moment
    /// either wins it or is refused.
    pub async fn remove_unsent_attachments(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE attachments SET removed_at = $2 WHERE message_id IS NULL \
             AND removed_at IS NULL AND created_at < $1",
        )
        .bind(millis(before))
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Marks for deletion the media of sessions that ended before `cutoff`.
    pub async fn remove_media_of_sessions_ended_before(
        &self,
        cutoff: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE attachments SET removed_at = $2 WHERE removed_at IS NULL AND session_id IN \
             (SELECT id FROM sessions WHERE (ended_at IS NOT NULL AND ended_at < $1) \
               OR (status = 'pending' AND created_at < $1))",
        )
        .bind(millis(cutoff))
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Attachments marked for deletion whose files may still be in the media store.
    pub async fn media_to_purge(&self, limit: i64) -> StoreResult<Vec<MediaToPurge>> {
        let rows = sqlx::query(
            "SELECT id, session_id, has_thumbnail, message_id FROM attachments \
             WHERE removed_at IS NOT NULL AND purged_at IS NULL ORDER BY removed_at LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let thumbnail: i64 = row.try_get("has_thumbnail")?;
                Ok(MediaToPurge {
                    id: uuid_col(row, "id")?,
                    session_id: uuid_col(row, "session_id")?,
                    has_thumbnail: thumbnail != 0,
                    unsent: opt_uuid_col(row, "message_id")?.is_none(),
                })
            })
            .collect()
    }

    /// Records that the files of a removed attachment are gone: an unsent one's row is deleted,
    /// a sent one's row stays (stamped) so its message can say what was there.
    pub async fn media_purged(&self, item: &MediaToPurge, now: OffsetDateTime) -> StoreResult<()> {
        if item.unsent {
            sqlx::query(
                "DELETE FROM attachments WHERE id = $1 AND message_id IS NULL \
                 AND removed_at IS NOT NULL",
            )
            .bind(item.id.to_string())
            .execute(&self.pool)
            .await?;
        } else {
            sqlx::query(
                "UPDATE attachments SET purged_at = $2 WHERE id = $1 AND purged_at IS NULL",
            )
            .bind(item.id.to_string())
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    pub async fn session_count(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM sessions")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn message_count(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM messages")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    // ---- resume links ----

    pub async fn insert_resume_link(
        &self,
        token_hash: &str,
        session_id: Uuid,
        customer_id: Uuid,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO resume_links (token_hash, session_id, customer_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(session_id.to_string())
        .bind(customer_id.to_string())
        .bind(millis(now))
        .bind(millis(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A resume link as stored, without using it.
    pub async fn resume_link(&self, token_hash: &str) -> StoreResult<Option<ResumeLinkRecord>> {
        let row = sqlx::query(
            "SELECT session_id, customer_id, expires_at, used_at FROM resume_links \
             WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ResumeLinkRecord {
                session_id: uuid_col(&row, "session_id")?,
                customer_id: uuid_col(&row, "customer_id")?,
                expires_at: time_col(&row, "expires_at")?,
                used_at: opt_time_col(&row, "used_at")?,
            })
        })
        .transpose()
    }

    /// Spends a resume link: one conditional update, so of two simultaneous redemptions exactly
    /// one is `Redeemed`.
    pub async fn redeem_resume_link(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<ResumeUse> {
        let spent = sqlx::query(
            "UPDATE resume_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
             AND expires_at > $2 RETURNING session_id, customer_id",
        )
        .bind(token_hash)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = spent {
            return Ok(ResumeUse::Redeemed {
                session_id: uuid_col(&row, "session_id")?,
                customer_id: uuid_col(&row, "customer_id")?,
            });
        }
        Ok(match self.resume_link(token_hash).await? {
            None => ResumeUse::Unknown,
            Some(link) if link.used_at.is_some() => ResumeUse::AlreadyUsed,
            Some(_) => ResumeUse::Expired,
        })
    }

    /// Forgets a resume link that was never used (one made for a mail that was not sent).
    pub async fn forget_unused_resume_link(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM resume_links WHERE token_hash = $1 AND used_at IS NULL")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets resume links that expired before `before`.
    pub async fn forget_resume_links(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM resume_links WHERE expires_at < $1")
            .bind(millis(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    // ---- refresh tokens ----

    pub async fn insert_refresh_token(
        &self,
        token_hash: &str,
        family_id: &str,
        user_id: Uuid,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(family_id)
        .bind(user_id.to_string())
        .bind(millis(now))
        .bind(millis(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a refresh token. Presenting a spent or revoked token revokes its whole family.
    pub async fn use_refresh_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<RefreshUse> {
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $2 RETURNING family_id, user_id",
        )
        .bind(token_hash)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = spent {
            return Ok(RefreshUse::Rotated {
                family_id: row.try_get("family_id")?,
                user_id: uuid_col(&row, "user_id")?,
            });
        }
        let known = sqlx::query(
            "SELECT family_id, used_at, revoked_at, expires_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = known else {
            return Ok(RefreshUse::Invalid);
        };
        let used: Option<i64> = row.try_get("used_at")?;
        let revoked: Option<i64> = row.try_get("revoked_at")?;
        if used.is_none() && revoked.is_none() {
            return Ok(RefreshUse::Invalid);
        }
        let family: String = row.try_get("family_id")?;
        self.revoke_family(&family, now).await?;
        Ok(RefreshUse::Reused)
    }

    pub async fn revoke_family(&self, family_id: &str, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family_id)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The family of a token, whatever its state.
    pub async fn refresh_family(&self, token_hash: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("family_id")).transpose()?)
    }

    // ---- mail outbox ----

    /// Queues the customer's mail about session `session_id` inside `tx`: the recipient is the
    /// customer's email as it is now (nothing is queued when retention erased it), and
    /// `mechanic_name` the name the app shows for the assigned mechanic. On PostgreSQL the
    /// commit also notifies every node's mail worker.
    async fn queue_mail(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        mail: QueueMail<'_>,
        session_id: Uuid,
    ) -> StoreResult<bool> {
        let queued = sqlx::query(
            "INSERT INTO mail_outbox (id, kind, session_id, recipient, mechanic_name, created_at, \
             next_attempt_at) SELECT $1, $2, s.id, c.email, m.name, $4, $4 FROM sessions s \
             JOIN users c ON c.id = s.customer_id LEFT JOIN users m ON m.id = s.mechanic_id \
             WHERE s.id = $3 AND c.email <> ''",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(mail.kind)
        .bind(session_id.to_string())
        .bind(millis(mail.at))
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if queued && self.engine == Engine::Postgres {
            sqlx::query(&format!("NOTIFY {MAIL_CHANNEL}"))
                .execute(&mut **tx)
                .await?;
        }
        Ok(queued)
    }

    /// Claims up to `limit` due mails for `lease` (a row claimed by a node that died is due
    /// again when its lease ends). On PostgreSQL nodes skip the rows another node is claiming
    /// (`FOR UPDATE SKIP LOCKED`); SQLite serialises writers, so the update alone is atomic.
    pub async fn claim_mail(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedMail>> {
        let lock = match self.engine {
            Engine::Postgres => "FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let claim_id = Uuid::new_v4().to_string();
        let rows = sqlx::query(&format!(
            "UPDATE mail_outbox SET claimed_until = $2, claim_id = $3, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL \
             AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) \
             ORDER BY next_attempt_at LIMIT $4 {lock}) \
             RETURNING id, kind, session_id, recipient, mechanic_name, attempts, created_at"
        ))
        .bind(millis(now))
        .bind(millis(now + lease))
        .bind(&claim_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedMail {
                    id: uuid_col(row, "id")?,
                    claim_id: claim_id.clone(),
                    kind: row.try_get("kind")?,
                    session_id: uuid_col(row, "session_id")?,
                    recipient: row.try_get("recipient")?,
                    mechanic_name: row.try_get("mechanic_name")?,
                    attempts: row.try_get("attempts")?,
                    created_at: time_col(row, "created_at")?,
                })
            })
            .collect()
    }

    /// Records a claimed mail as sent; `false` when the claim was lost (its lease ended and
    /// another node took it).
    pub async fn mail_sent(&self, mail: &ClaimedMail, now: OffsetDateTime) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE mail_outbox SET sent_at = $3, claimed_until = NULL, last_error = NULL \
             WHERE id = $1 AND claim_id = $2 AND sent_at IS NULL",
        )
        .bind(mail.id.to_string())
        .bind(&mail.claim_id)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a claimed mail back, to be tried again from `next_attempt_at`.
    pub async fn mail_retry(
        &self,
        mail: &ClaimedMail,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE mail_outbox SET claimed_until = NULL, next_attempt_at = $3, last_error = $4 \
             WHERE id = $1 AND claim_id = $2 AND sent_at IS NULL",
        )
        .bind(mail.id.to_string())
        .bind(&mail.claim_id)
        .bind(millis(next_attempt_at))
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on a claimed mail.
    pub async fn mail_failed(
        &self,
        mail: &ClaimedMail,
        now: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE mail_outbox SET claimed_until = NULL, failed_at = $3, last_error = $4 \
             WHERE id = $1 AND claim_id = $2 AND sent_at IS NULL",
        )
        .bind(mail.id.to_string())
        .bind(&mail.claim_id)
        .bind(millis(now))
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When the next queued mail comes due (a retry's time, or the end of a claim's lease).
    pub async fn next_mail_due(&self) -> StoreResult<Option<OffsetDateTime>> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN claimed_until IS NOT NULL AND claimed_until > next_attempt_at \
             THEN claimed_until ELSE next_attempt_at END) AS due FROM mail_outbox \
             WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        opt_time_col(&row, "due")
    }

    /// Forgets mail sent or given up on before `before` (the rows hold the customer's address).
    pub async fn forget_old_mail(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM mail_outbox WHERE (sent_at IS NOT NULL AND sent_at < $1) \
             OR (failed_at IS NOT NULL AND failed_at < $1)",
        )
        .bind(millis(before))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Queued mails of a session by kind, whatever their state: `(kind, sent)` in queue order.
    pub async fn session_mail(&self, session_id: Uuid) -> StoreResult<Vec<(String, bool)>> {
        let rows = sqlx::query(
            "SELECT kind, sent_at FROM mail_outbox WHERE session_id = $1 ORDER BY created_at, id",
        )
        .bind(session_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("kind")?,
                    row.try_get::<Option<i64>, _>("sent_at")?.is_some(),
                ))
            })
            .collect()
    }

    /// Notes that the mechanic wrote while the customer was away, unless an earlier message is
    /// already waiting to be read.
    pub async fn mark_unread(&self, session_id: Uuid, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET unread_since = $2 WHERE id = $1 AND unread_since IS NULL")
            .bind(session_id.to_string())
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The customer has caught up with the chat.
    pub async fn clear_unread(&self, session_id: Uuid) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET unread_since = NULL WHERE id = $1 AND unread_since IS NOT NULL",
        )
        .bind(session_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sessions with a mechanic's message unread since `by` or earlier, with that time.
    pub async fn unread_since(
        &self,
        by: OffsetDateTime,
    ) -> StoreResult<Vec<(Uuid, OffsetDateTime)>> {
        let rows = sqlx::query(
            "SELECT id, unread_since FROM sessions WHERE unread_since IS NOT NULL \
             AND unread_since <= $1",
        )
        .bind(millis(by))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((uuid_col(row, "id")?, time_col(row, "unread_since")?)))
            .collect()
    }

    /// Mails the customer about unread messages (noted at `unread`) unless they were mailed
    /// after `period_start`: one conditional update that clears the note and stamps
    /// `last_quiet_mail_at`, with the mail queued in its transaction. `false` when another node
    /// did it, the customer caught up, or the quiet period is not over.
    pub async fn queue_unread_mail(
        &self,
        session_id: Uuid,
        unread: OffsetDateTime,
        period_start: OffsetDateTime,
        mail: QueueMail<'_>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE sessions SET unread_since = NULL, last_quiet_mail_at = $4 WHERE id = $1 \
             AND unread_since = $2 AND (last_quiet_mail_at IS NULL OR last_quiet_mail_at <= $3)",
        )
        .bind(session_id.to_string())
        .bind(millis(unread))
        .bind(millis(period_start))
        .bind(millis(mail.at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        let queued = self.queue_mail(&mut tx, mail, session_id).await?;
        tx.commit().await?;
        Ok(queued)
    }

    // ---- retention ----

    /// Deletes what identifies a customer once their sessions ended before `cutoff`: the chat
    /// transcripts of those sessions, the mechanics' summaries and private notes on them and the
    /// ratings' comments, the session's free text, VIN and waiver signature, and the name, email
    /// and phone of customers with no session that ended later or is still open.
    /// Pending sessions (never accepted) count as ended when created. Only rows that still hold
    /// something are touched, so repeated or concurrent runs change nothing twice.
    pub async fn forget_ended_sessions(&self, cutoff: OffsetDateTime) -> StoreResult<Forgotten> {
        // Never NULL: an open session (no `ended_at`) is simply not expired.
        const EXPIRED: &str = "((ended_at IS NOT NULL AND ended_at < $1) \
             OR (status = 'pending' AND created_at < $1))";
        let cutoff = millis(cutoff);
        let mut tx = self.pool.begin().await?;
        // Their files are deleted by the media sweep; rows whose files are gone go with the
        // transcript.
        sqlx::query(&format!(
            "DELETE FROM attachments WHERE purged_at IS NOT NULL \
             AND session_id IN (SELECT id FROM sessions WHERE {EXPIRED})"
        ))
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        let messages = sqlx::query(&format!(
            "DELETE FROM messages WHERE session_id IN (SELECT id FROM sessions WHERE {EXPIRED})"
        ))
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let sessions = sqlx::query(&format!(
            "UPDATE sessions SET concern = '', vehicle_vin = NULL, waiver_name = NULL \
             WHERE {EXPIRED} AND (concern <> '' OR vehicle_vin IS NOT NULL OR waiver_name IS NOT NULL)"
        ))
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        for forget in [
            "DELETE FROM mechanic_notes WHERE session_id IN (SELECT id FROM sessions WHERE {EXPIRED})",
            "DELETE FROM session_summaries WHERE session_id IN (SELECT id FROM sessions WHERE {EXPIRED})",
            "UPDATE ratings SET comment = NULL WHERE comment IS NOT NULL \
             AND session_id IN (SELECT id FROM sessions WHERE {EXPIRED})",
        ] {
            sqlx::query(&forget.replace("{EXPIRED}", EXPIRED))
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
        }
        let customers = sqlx::query(
            "UPDATE users SET name = '', email = '', phone = NULL \
             WHERE role = 'customer' AND created_at < $1 \
             AND (name <> '' OR email <> '' OR phone IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.customer_id = users.id \
               AND NOT ((s.ended_at IS NOT NULL AND s.ended_at < $1) \
                 OR (s.status = 'pending' AND s.created_at < $1)))",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Forgotten {
            messages,
            sessions,
            customers,
        })
    }
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Chat messages deleted.
    pub messages: u64,
    /// Sessions whose concern, VIN and waiver signature were blanked.
    pub sessions: u64,
    /// Customers whose name, email and phone were blanked.
    pub customers: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_shown_without_passwords() {
        assert_eq!(
            describe_database_url(
                "postgres://wrenchline:s3cret@db.internal:5433/wrenchline?sslmode=require&password=x"
            ),
            "postgres://wrenchline@db.internal:5433/wrenchline?sslmode=require"
        );
        assert_eq!(
            describe_database_url("postgres://wrenchline@localhost/wrenchline"),
            "postgres://wrenchline@localhost/wrenchline"
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            describe_database_url("sqlite://wrenchline.db"),
            format!("sqlite://{}", cwd.join("wrenchline.db").display())
        );
        assert_eq!(
            describe_database_url("sqlite:///var/lib/wrenchline/wrenchline.db?mode=rwc"),
            "sqlite:///var/lib/wrenchline/wrenchline.db"
        );
        assert_eq!(
            connect_target("postgres://wrenchline:s3cret@db.internal:5433/wl"),
            "db.internal:5433 (database wl, user wrenchline)"
        );
    }
}
