//! A real SMTP server for the mail tests: Debian's `python3-aiosmtpd`, writing every mail it
//! takes to a Maildir, on a free port of 127.0.0.1. It can be stopped and started again on the
//! same port (an outage), and its mails are read back decoded (`mail-parser`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

/// The system Python, which has aiosmtpd (the `python3` on PATH may be another one).
const PYTHON: &str = "/usr/bin/python3";

pub struct SmtpServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// One received mail, decoded.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope recipient.
    pub to: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The top-level `Content-Type` header.
    pub content_type: String,
}

impl Received {
    /// The first link to `base` in the plain text part.
    pub fn link(&self, base: &str) -> String {
        self.text
            .split_whitespace()
            .find(|word| word.starts_with(base))
            .unwrap_or_else(|| panic!("no link to {base} in {:?}", self.text))
            .to_string()
    }

    /// The resume token of the mail's link.
    pub fn token(&self, base: &str) -> String {
        let link = self.link(base);
        link.split_once("#token=")
            .unwrap_or_else(|| panic!("{link} carries no token"))
            .1
            .to_string()
    }
}

/// A free port on 127.0.0.1, to start a server on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    /// Starts a server on a free port and waits until it takes connections.
    pub async fn start() -> SmtpServer {
        let mut server = SmtpServer::stopped(free_port());
        server.resume().await;
        server
    }

    /// A server that will listen on `port` once `resume`d; connections are refused until then.
    pub fn stopped(port: u16) -> SmtpServer {
        let dir = std::env::temp_dir().join(format!("wl-mail-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        SmtpServer {
            port,
            dir,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and Maildir, and waits until it takes connections.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "the SMTP server is already running");
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.dir.join("maildir"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts (Debian's python3-aiosmtpd)");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not listen on port {}", self.port);
    }

    /// Stops the server (an outage); what it received stays readable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every mail received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        read_maildir(&self.dir.join("maildir"))
    }

    /// Waits until at least `count` mails were received, within `within`; returns them all.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} mails expected within {within:?}, received {}: {:?}",
                received.len(),
                received.iter().map(|m| &m.subject).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the first mail whose subject contains `subject`.
    pub async fn wait_for_subject(&self, subject: &str, within: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(mail) = self
                .received()
                .into_iter()
                .find(|m| m.subject.contains(subject))
            {
                return mail;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no mail about {subject:?} within {within:?}; received {:?}",
                self.received()
                    .iter()
                    .map(|m| &m.subject)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_maildir(dir: &Path) -> Vec<Received> {
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|(_, path)| std::fs::read(path).ok())
        .map(|raw| {
            let message = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("a readable mail");
            let header = |name: &str| {
                message
                    .header_raw(name)
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            Received {
                to: header("X-RcptTo"),
                from: header("From"),
                subject: message.subject().unwrap_or_default().to_string(),
                text: message
                    .body_text(0)
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
                html: message
                    .body_html(0)
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
                content_type: header("Content-Type"),
            }
        })
        .collect()
}
