//! The `wrenchline-server` command line: `serve`, and `mechanic add|list|enable|disable|
//! reset-password` for administrators; logging set-up. Every flag also reads a `WRENCHLINE_*`
//! environment variable, and `--env-file` reads them from the service's environment file.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use time::OffsetDateTime;
use tracing_subscriber::EnvFilter;
use wrenchline_protocol::text::Lines;
use wrenchline_server::auth::{hash_password, hashing, random_token};
use wrenchline_server::config::{load_plans, Settings, LIFECYCLE_SECONDS};
use wrenchline_server::limits::Limits;
use wrenchline_server::mail::MailSettings;
use wrenchline_server::proxy::TrustedProxies;
use wrenchline_server::storage::{describe_database_url, Store, StoreError};
use wrenchline_server::{retention, Application};

#[derive(Parser)]
#[command(
    name = "wrenchline-server",
    version,
    about = "Wrenchline: remote mechanics for drivers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Read WRENCHLINE_* settings from this file first (the service's environment file, e.g.
    /// /etc/wrenchline/wrenchline-server.env); its values win over the environment, flags win
    /// over both.
    #[arg(long, global = true, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// Log lines as text (no colours unless stderr is a terminal) or as JSON objects, one per
    /// line, for log shippers.
    #[arg(
        long,
        global = true,
        env = "WRENCHLINE_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
struct Database {
    /// sqlite://FILE (created on first start) or postgres://USER:PASSWORD@HOST/DB
    #[arg(
        long,
        env = "WRENCHLINE_DATABASE_URL",
        default_value = "sqlite://wrenchline.db",
        hide_env_values = true
    )]
    database_url: String,
}

/// The database of an administrator's command, which must already exist.
#[derive(Args, Clone)]
struct AdminDatabase {
    #[command(flatten)]
    db: Database,
    /// Create the database (a new SQLite file, or the tables in an empty PostgreSQL database)
    /// when it does not exist yet, for first setup. Without it a missing database is an error.
    #[arg(long)]
    create_database: bool,
}

// Parsed once at start: the size of the `serve` variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the API, realtime and the customer web link.
    Serve {
        #[arg(long, env = "WRENCHLINE_BIND", default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// Serve Prometheus metrics at /metrics on this address, apart from the public listener
        /// (which answers /metrics with 404). Without it, metrics are not served.
        #[arg(long, env = "WRENCHLINE_METRICS_BIND")]
        metrics_bind: Option<SocketAddr>,
        #[command(flatten)]
        db: Database,
        /// Seed a demo mechanic (new password printed at each start) and print the customer link.
        #[arg(long, env = "WRENCHLINE_DEMO")]
        demo: bool,
        /// The address customers use to reach this server, for printed links.
        #[arg(long, env = "WRENCHLINE_PUBLIC_URL")]
        public_url: Option<String>,
        /// A TOML file of [[plans]] (id, name, minutes, price_cents); a "trial" plan is required.
        #[arg(long, env = "WRENCHLINE_PLANS_FILE")]
        plans_file: Option<PathBuf>,
        /// A TOML file of abuse limits (see README); keys left out keep their defaults.
        #[arg(long, env = "WRENCHLINE_LIMITS_FILE")]
        limits_file: Option<PathBuf>,
        /// Reverse proxies whose X-Forwarded-For names the client, for per-address limits:
        /// comma-separated IP addresses or CIDR ranges (127.0.0.1,::1). Empty trusts none.
        #[arg(long, env = "WRENCHLINE_TRUSTED_PROXIES", value_parser = TrustedProxies::parse)]
        trusted_proxies: Option<TrustedProxies>,
        /// A folder of desktop app releases (`<version>/release.json` and its files) for the updater.
        #[arg(long, env = "WRENCHLINE_RELEASES_DIR")]
        releases_dir: Option<PathBuf>,
        /// Lifetime of access tokens, in seconds.
        #[arg(long, env = "WRENCHLINE_ACCESS_TOKEN_TTL", default_value_t = 900)]
        access_token_ttl: i64,
        /// Lifetime of a (single-use) resume link, in seconds.
        #[arg(long, env = "WRENCHLINE_RESUME_LINK_TTL", default_value_t = 600)]
        resume_link_ttl: i64,
        /// Seconds an offered request waits for a mechanic before it is cancelled (not_accepted).
        #[arg(
            long,
            env = "WRENCHLINE_REQUEST_ACCEPT_TIMEOUT",
            default_value_t = 1800
        )]
        request_accept_timeout: i64,
        /// Seconds a mechanic has to join the chat after accepting before the request is offered again.
        #[arg(long, env = "WRENCHLINE_MECHANIC_JOIN_TIMEOUT", default_value_t = 600)]
        mechanic_join_timeout: i64,
        /// Seconds a mechanic's availability counts without a refresh from the server node their
        /// app is connected to (that node stopped without saying so).
        #[arg(long, env = "WRENCHLINE_AVAILABILITY_GRACE", default_value_t = 120)]
        availability_grace: i64,
        /// Seconds after rating a session during which the customer may change the rating.
        #[arg(long, env = "WRENCHLINE_RATING_EDIT_WINDOW", default_value_t = 86_400)]
        rating_edit_window: i64,
        /// Token-signing secret (at least 32 bytes); by default one is generated and kept in the database.
        #[arg(long, env = "WRENCHLINE_TOKEN_SECRET", hide_env_values = true)]
        token_secret: Option<String>,
        /// Days after a session ends before its chat transcript and the customer's personal data
        /// are deleted (checked at start and hourly); 0 keeps everything, at most 36500.
        #[arg(
            long,
            env = "WRENCHLINE_RETENTION_DAYS",
            default_value_t = retention::DEFAULT_DAYS,
            value_parser = clap::value_parser!(u32).range(0..=36_500)
        )]
        retention_days: u32,
        /// Mail customers through this SMTP server: smtp://HOST:PORT (no TLS: this machine only),
        /// smtps://HOST:PORT, or smtp://HOST:PORT?tls=required (STARTTLS), with USER:PASSWORD@
        /// before the host when needed. Without it nothing is mailed.
        #[arg(long, env = "WRENCHLINE_SMTP_URL", hide_env_values = true)]
        smtp_url: Option<String>,
        /// The sender of customer mail, e.g. "Wrenchline <help@example.com>" (with --smtp-url;
        /// without it, Wrenchline <noreply@HOST> with HOST from --public-url).
        #[arg(long, env = "WRENCHLINE_MAIL_FROM")]
        mail_from: Option<String>,
        /// Lifetime of the single-use link in a mail, in seconds (default 7 days).
        #[arg(long, env = "WRENCHLINE_MAIL_LINK_TTL", default_value_t = 7 * 24 * 3600)]
        mail_link_ttl: i64,
        /// Seconds a mechanic's message stays unseen, the customer away, before the customer is mailed.
        #[arg(long, env = "WRENCHLINE_MAIL_UNREAD_AFTER", default_value_t = 120)]
        mail_unread_after: i64,
        /// At most one mail about unseen messages per session in this many seconds.
        #[arg(long, env = "WRENCHLINE_MAIL_QUIET_PERIOD", default_value_t = 900)]
        mail_quiet_period: i64,
        /// Where attachment files are kept (created 0700, files 0600); nodes on one machine or a
        /// shared filesystem may share it. Default: wrenchline-media/ beside the SQLite file, or
        /// in the working directory with PostgreSQL.
        #[arg(long, env = "WRENCHLINE_MEDIA_DIR", conflicts_with = "media_url")]
        media_dir: Option<PathBuf>,
        /// Keep attachment files in an S3-compatible bucket instead:
        /// s3://BUCKET?endpoint=URL&region=R&allow_http=true (object_store's S3 settings as query
        /// keys; credentials from access_key_id/secret_access_key or the AWS_* variables).
        #[arg(long, env = "WRENCHLINE_MEDIA_URL", hide_env_values = true)]
        media_url: Option<String>,
        /// Seconds an uploaded attachment may stay unsent before it is deleted.
        #[arg(
            long,
            env = "WRENCHLINE_MEDIA_ORPHAN_GRACE",
            default_value_t = 86_400,
            value_parser = clap::value_parser!(u32).range(60..=30 * 86_400)
        )]
        media_orphan_grace: u32,
        /// Days after a session ends before its photos, clips and voice notes are deleted (the
        /// chat keeps a line saying what was there); 0 keeps them as long as the transcript.
        #[arg(
            long,
            env = "WRENCHLINE_MEDIA_RETENTION_DAYS",
            default_value_t = wrenchline_server::media::DEFAULT_RETENTION_DAYS,
            value_parser = clap::value_parser!(u32).range(0..=36_500)
        )]
        media_retention_days: u32,
        /// Once connections are accepted, write the bound listeners as JSON to this file
        /// (`{"http": "http://ADDR"}`, replaced atomically), for scripts and test harnesses.
        #[arg(long, env = "WRENCHLINE_READY_FILE")]
        ready_file: Option<PathBuf>,
        /// Join a cluster: redis://HOST:PORT carries realtime events between the nodes sharing
        /// the PostgreSQL database, and their shared presence. Needs a PostgreSQL database.
        #[arg(long, env = "WRENCHLINE_REDIS_URL", hide_env_values = true)]
        redis_url: Option<String>,
        /// This node's name in the cluster (letters, digits, '.', '_', '-'; at most 64);
        /// by default the host name and the process id.
        #[arg(long, env = "WRENCHLINE_NODE_ID", requires = "redis_url")]
        node_id: Option<String>,
        /// In a cluster, seconds a stopping node reports not ready on /readyz before it closes
        /// its realtime connections (give the load balancer time to notice).
        #[arg(long, env = "WRENCHLINE_DRAIN_SECONDS", default_value_t = 3,
            value_parser = clap::value_parser!(u64).range(0..=300))]
        drain_seconds: u64,
    },
    /// Manage mechanic accounts.
    Mechanic {
        #[command(subcommand)]
        command: MechanicCommand,
    },
}

/// What every mechanic command says about passwords.
const PASSWORD_RULES: &str = "Passwords: 10 to 256 characters, read from the first line of \
standard input (spaces count, the line ending does not); no control characters.";

#[derive(Subcommand)]
enum MechanicCommand {
    /// Create a mechanic; the password is read from standard input.
    #[command(after_help = PASSWORD_RULES)]
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Read the password from the first line of standard input (required).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: AdminDatabase,
    },
    /// List mechanics: email, name, active or disabled, id (tab-separated).
    List {
        #[command(flatten)]
        db: AdminDatabase,
    },
    /// Disable a mechanic and revoke their sign-ins.
    Disable {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        db: AdminDatabase,
    },
    /// Let a disabled mechanic sign in again (with their old password).
    Enable {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        db: AdminDatabase,
    },
    /// Set a new password, read from standard input; revokes every sign-in of the mechanic.
    #[command(after_help = PASSWORD_RULES)]
    ResetPassword {
        #[arg(long)]
        email: String,
        /// Read the new password from the first line of standard input (required).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: AdminDatabase,
    },
}

const DEMO_EMAIL: &str = "demo@wrenchline.test";

fn init_tracing(format: LogFormat) {
    let requested = std::env::var("WRENCHLINE_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    // Below info these libraries log frame and header contents, which carry tokens and cookies;
    // they stay at info whatever was asked for.
    let filter = EnvFilter::try_new(format!(
        "{requested},tungstenite=info,tokio_tungstenite=info,hyper=info,h2=info"
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes only for a person at a terminal: journald and files get plain text.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Loads `--env-file PATH` (or `--env-file=PATH`) into the environment before the flags are
/// parsed, so that its variables fill in every flag a command line leaves out. It runs before any
/// thread starts; values in the file replace those already set, as for the service.
fn load_env_file(args: &[std::ffi::OsString]) -> anyhow::Result<()> {
    let mut path = None;
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let Some(text) = arg.to_str() else { continue };
        if text == "--" {
            break;
        } else if text == "--env-file" {
            path = rest.next().map(PathBuf::from);
        } else if let Some(value) = text.strip_prefix("--env-file=") {
            path = Some(PathBuf::from(value));
        }
    }
    let Some(path) = path else {
        return Ok(());
    };
    let entries = dotenvy::from_path_iter(&path)
        .with_context(|| format!("cannot read the environment file {}", path.display()))?;
    for entry in entries {
        let (key, value) =
            entry.with_context(|| format!("{} is not an environment file", path.display()))?;
        std::env::set_var(key, value);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<_> = std::env::args_os().collect();
    load_env_file(&args)?;
    let cli = Cli::parse_from(args);
    init_tracing(cli.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            bind,
            metrics_bind,
            db,
            demo,
            public_url,
            plans_file,
            limits_file,
            trusted_proxies,
            releases_dir,
            access_token_ttl,
            resume_link_ttl,
            request_accept_timeout,
            mechanic_join_timeout,
            availability_grace,
            rating_edit_window,
            token_secret,
            retention_days,
            media_dir,
            media_url,
            media_orphan_grace,
            media_retention_days,
            ready_file,
            smtp_url,
            mail_from,
            mail_link_ttl,
            mail_unread_after,
            mail_quiet_period,
            redis_url,
            node_id,
            drain_seconds,
        } => {
            tracing::info!("database: {}", describe_database_url(&db.database_url));
            let mut settings = Settings::new(bind, db.database_url);
            settings.metrics_bind = metrics_bind;
            settings.public_url = public_url.map(|u| u.trim_end_matches('/').to_string());
            if let Some(path) = plans_file {
                settings.plans = load_plans(&path)?;
            }
            if let Some(path) = limits_file {
                settings.limits = Limits::load(&path)?;
            }
            settings.trusted_proxies = trusted_proxies.unwrap_or_default();
            settings.releases_dir = releases_dir;
            settings.media_dir = media_dir;
            settings.media_url = media_url;
            settings.media_orphan_grace = time::Duration::seconds(i64::from(media_orphan_grace));
            settings.media_retention_days = media_retention_days;
            if !(30..=86_400).contains(&access_token_ttl) {
                bail!("--access-token-ttl must be between 30 and 86400 seconds");
            }
            settings.access_token_ttl = time::Duration::seconds(access_token_ttl);
            for (flag, value) in [
                ("--resume-link-ttl", resume_link_ttl),
                ("--request-accept-timeout", request_accept_timeout),
                ("--mechanic-join-timeout", mechanic_join_timeout),
                ("--availability-grace", availability_grace),
                ("--rating-edit-window", rating_edit_window),
            ] {
                if !LIFECYCLE_SECONDS.contains(&value) {
                    bail!(
                        "{flag} must be between {} and {} seconds",
                        LIFECYCLE_SECONDS.start(),
                        LIFECYCLE_SECONDS.end()
                    );
                }
            }
            settings.resume_link_ttl = time::Duration::seconds(resume_link_ttl);
            settings.request_accept_timeout = time::Duration::seconds(request_accept_timeout);
            settings.mechanic_join_timeout = time::Duration::seconds(mechanic_join_timeout);
            settings.availability_grace = time::Duration::seconds(availability_grace);
            settings.rating_edit_window = time::Duration::seconds(rating_edit_window);
            if let Some(secret) = &token_secret {
                if secret.len() < 32 {
                    bail!("--token-secret must be at least 32 bytes");
                }
            }
            settings.token_secret = token_secret;
            settings.mail = match (smtp_url, mail_from) {
                (None, None) => None,
                (None, Some(_)) => {
                    tracing::warn!("--mail-from is set without --smtp-url: nothing is mailed");
                    None
                }
                (Some(url), from) => {
                    let from = from.unwrap_or_else(|| {
                        let from = default_mail_from(settings.public_url.as_deref());
                        tracing::warn!("no --mail-from: mail is sent as {from}");
                        from
                    });
                    let mut mail = MailSettings::parse(&url, &from)?;
                    for (flag, value) in [
                        ("--mail-link-ttl", mail_link_ttl),
                        ("--mail-unread-after", mail_unread_after),
                        ("--mail-quiet-period", mail_quiet_period),
                    ] {
                        if !LIFECYCLE_SECONDS.contains(&value) {
                            bail!(
                                "{flag} must be between {} and {} seconds",
                                LIFECYCLE_SECONDS.start(),
                                LIFECYCLE_SECONDS.end()
                            );
                        }
                    }
                    mail.link_ttl = time::Duration::seconds(mail_link_ttl);
                    mail.unread_after = time::Duration::seconds(mail_unread_after);
                    mail.quiet_period = time::Duration::seconds(mail_quiet_period);
                    tracing::info!("mail: through {} as {}", mail.describe(), mail.from);
                    Some(mail)
                }
            };
            if let Some(node) = &node_id {
                if !wrenchline_server::cluster::valid_node_id(node) {
                    bail!("--node-id must be 1 to 64 letters, digits, '.', '_' or '-'");
                }
            }
            if redis_url.is_some() {
                settings.drain_grace = std::time::Duration::from_secs(drain_seconds);
            }
            settings.redis_url = redis_url;
            settings.node_id = node_id;
            serve(settings, demo, retention_days, ready_file).await
        }
        Command::Mechanic { command } => mechanic(command).await,
    }
}

/// The sender when `--mail-from` is not given: `Wrenchline <noreply@HOST>`, HOST from
/// `--public-url` (else `localhost`).
fn default_mail_from(public_url: Option<&str>) -> String {
    let host = public_url
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
        .filter(|h| !h.starts_with('['))
        .unwrap_or_else(|| "localhost".into());
    format!("Wrenchline <noreply@{host}>")
}

async fn serve(
    settings: Settings,
    demo: bool,
    retention_days: u32,
    ready_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let app = Application::build(settings)
        .await
        .context("starting the server")?;
    if retention_days > 0 {
        tokio::spawn(retention::run(app.state().store.clone(), retention_days));
    } else {
        tracing::info!("retention off: ended sessions are kept until deleted by hand");
    }
    let demo_password = if demo {
        Some(seed_demo(app.state().store.clone()).await?)
    } else {
        None
    };
    let url = app.public_url();
    if let Some(cluster) = &app.state().cluster {
        tracing::info!(
            node = cluster.node(),
            "cluster mode: node {}",
            cluster.node()
        );
    }
    tracing::info!("listening on http://{}", app.local_addr());
    // Whoever started the server may have stopped reading its output; that must not stop it.
    let mut banner = format!("listening on http://{}\n", app.local_addr());
    if let Some(metrics) = app.metrics_addr() {
        tracing::info!("metrics on http://{metrics}");
        banner.push_str(&format!("metrics on http://{metrics}\n"));
    }
    banner.push_str(&format!("customer link: {url}/intake\n"));
    if let Some(cluster) = &app.state().cluster {
        banner.push_str(&format!("node: {}\n", cluster.node()));
    }
    if let Some(password) = demo_password {
        banner.push_str(&format!("demo mechanic: {DEMO_EMAIL} / {password}\n"));
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    if let Some(path) = &ready_file {
        let mut ready = serde_json::json!({ "http": format!("http://{}", app.local_addr()) });
        if let Some(metrics) = app.metrics_addr() {
            ready["metrics"] = format!("http://{metrics}").into();
        }
        write_atomically(path, &format!("{ready}\n"))
            .with_context(|| format!("writing the ready file {}", path.display()))?;
    }
    app.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Writes `text` to a sibling temporary file and renames it over `path`, so a reader polling
/// `path` sees nothing or all of it.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

async fn seed_demo(store: Store) -> anyhow::Result<String> {
    let password = random_token()[..16].to_string();
    let hash = {
        let password = password.clone();
        hashing(move || hash_password(&password)).await
    };
    if !store.set_mechanic_password(DEMO_EMAIL, &hash).await? {
        store
            .create_mechanic(
                DEMO_EMAIL,
                "Demo Mechanic",
                &hash,
                OffsetDateTime::now_utc(),
            )
            .await?;
    }
    Ok(password)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}

fn normalized_email(email: &str) -> anyhow::Result<String> {
    let email = email.trim().to_lowercase();
    if !wrenchline_protocol::intake::email_is_valid(&email) {
        bail!("{email:?} is not an email address");
    }
    Ok(email)
}

/// The password on the first line of standard input, checked against [`PASSWORD_RULES`].
fn password_from_stdin(password_stdin: bool) -> anyhow::Result<String> {
    if !password_stdin {
        bail!("pass the password on standard input with --password-stdin");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    let length = password.chars().count();
    if length < 10 {
        bail!("the password must have at least 10 characters");
    }
    if length > 256 {
        bail!("the password must have at most 256 characters");
    }
    if password.chars().any(char::is_control) {
        bail!("the password must not hold control characters");
    }
    Ok(password)
}

/// Opens the database of an admin command, after saying which one it is (without a password).
async fn open_admin_database(db: &AdminDatabase) -> anyhow::Result<Store> {
    let url = &db.db.database_url;
    eprintln!("database: {}", describe_database_url(url));
    if db.create_database {
        return Ok(Store::connect(url).await?);
    }
    match Store::connect_existing(url).await {
        Ok(store) => Ok(store),
        Err(e @ StoreError::Missing(_)) => Err(anyhow::anyhow!(
            "{e}: check --database-url, WRENCHLINE_DATABASE_URL or --env-file; the server \
             creates its database on first start, or pass --create-database for first setup"
        )),
        Err(e) => Err(e.into()),
    }
}

async fn mechanic(command: MechanicCommand) -> anyhow::Result<()> {
    match command {
        MechanicCommand::Add {
            email,
            name,
            password_stdin,
            db,
        } => {
            let email = normalized_email(&email)?;
            let name = name.trim().to_string();
            if name.is_empty() {
                bail!("--name must not be empty");
            }
            if !Lines::One.allows(&name) {
                bail!("--name must not hold control characters (U+0000 to U+001F)");
            }
            let password = password_from_stdin(password_stdin)?;
            let store = open_admin_database(&db).await?;
            let hash = hashing(move || hash_password(&password)).await;
            let created = store
                .create_mechanic(&email, &name, &hash, OffsetDateTime::now_utc())
                .await;
            store.close().await;
            match created? {
                Some(user) => println!(
                    "added mechanic {} <{}> ({}) to {}",
                    user.name,
                    user.email,
                    user.id,
                    describe_database_url(&db.db.database_url)
                ),
                None => bail!("a mechanic with email {email} already exists"),
            }
        }
        MechanicCommand::List { db } => {
            let store = open_admin_database(&db).await?;
            let mechanics = store.list_mechanics().await;
            store.close().await;
            for (user, disabled) in mechanics? {
                let state = if disabled { "disabled" } else { "active" };
                println!("{}\t{}\t{}\t{}", user.email, user.name, state, user.id);
            }
        }
        MechanicCommand::Disable { email, db } => {
            let email = normalized_email(&email)?;
            let store = open_admin_database(&db).await?;
            let done = store
                .disable_mechanic(&email, OffsetDateTime::now_utc())
                .await;
            store.close().await;
            if !done? {
                bail!("no mechanic with email {email}");
            }
            println!(
                "disabled {email} in {}; their sign-ins are revoked",
                describe_database_url(&db.db.database_url)
            );
        }
        MechanicCommand::Enable { email, db } => {
            let email = normalized_email(&email)?;
            let store = open_admin_database(&db).await?;
            let done = store.enable_mechanic(&email).await;
            store.close().await;
            if !done? {
                bail!("no mechanic with email {email}");
            }
            println!(
                "enabled {email} in {}; they can sign in again",
                describe_database_url(&db.db.database_url)
            );
        }
        MechanicCommand::ResetPassword {
            email,
            password_stdin,
            db,
        } => {
            let email = normalized_email(&email)?;
            let password = password_from_stdin(password_stdin)?;
            let store = open_admin_database(&db).await?;
            let hash = hashing(move || hash_password(&password)).await;
            let done = store
                .reset_mechanic_password(&email, &hash, OffsetDateTime::now_utc())
                .await;
            store.close().await;
            if !done? {
                bail!("no mechanic with email {email}");
            }
            println!(
                "new password set for {email} in {}; their sign-ins are revoked",
                describe_database_url(&db.db.database_url)
            );
        }
    }
    Ok(())
}
