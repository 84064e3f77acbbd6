//! Attachments: photos, video clips and voice notes sent in a session's chat. This module owns
//! turning an upload into a stored attachment ([`keep_upload`]), the media store boundary
//! ([`store`]), the checks on the bytes ([`inspect`]), through the optional `ffmpeg` tool the
//! rewriting of clips and voice notes without their metadata and video thumbnails, and the sweep that deletes orphans (uploaded, never sent, after a grace
//! period) and media past the retention period ([`sweep_once`]; every node may run it, each
//! deletion is a conditional update), and uploads a stopped server left half-received.

pub mod inspect;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;
use wrenchline_protocol::{Attachment, AttachmentKind};

use crate::config::Settings;
use crate::state::AppState;
use crate::storage::StoreError;
use inspect::{Recording, Refusal, Sniffed};
use store::{key, MediaError, MediaFile, MediaStore};

/// How long an uploaded attachment may stay unsent before it is deleted, by default.
pub const DEFAULT_ORPHAN_GRACE: time::Duration = time::Duration::hours(24);
/// Days after a session ends before its media are deleted, by default.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// How often the sweep runs after the first pass at start.
pub const SWEEP_PERIOD: Duration = Duration::from_secs(600);
/// Spooled uploads older than this are left over from a server that stopped mid-upload (an
/// upload has at most `upload_timeout_seconds`, 15 minutes by default, to arrive).
pub const STALE_SPOOL: Duration = Duration::from_secs(3600);
/// Longest an `ffmpeg` frame grab may take.
const FFMPEG_TIMEOUT: Duration = Duration::from_secs(20);

/// The media side of one server.
pub struct Media {
    pub store: MediaStore,
    /// Decodes and container reads running at once; more wait (each can take a core and
    /// a few hundred MB for the largest photo).
    work: Arc<Semaphore>,
    /// `ffmpeg` is on the PATH: video clips get a thumbnail.
    pub ffmpeg: bool,
    pub orphan_grace: time::Duration,
    /// 0 keeps media until the transcript goes.
    pub retention_days: u32,
}

impl Media {
    pub fn open(settings: &Settings) -> Result<Media, MediaError> {
        let store = match &settings.media_url {
            Some(url) => MediaStore::s3(url)?,
            None => MediaStore::local(
                settings
                    .media_dir
                    .clone()
                    .unwrap_or_else(|| store::default_dir(&settings.database_url)),
            )?,
        };
        let ffmpeg = std::process::Command::new("ffmpeg")
            .arg("-version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Media {
            store,
            work: Arc::new(Semaphore::new(cores.clamp(1, 4))),
            ffmpeg,
            orphan_grace: settings.media_orphan_grace,
            retention_days: settings.media_retention_days,
        })
    }

    /// Runs `job` on the blocking pool once a work slot is free.
    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.work.clone().acquire_owned().await?;
        Ok(tokio::task::spawn_blocking(job).await?)
    }
}

/// Why keeping an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error("refused")]
    Refused(Refusal),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Checks a spooled upload (`len` bytes at `spooled`, sniffed as `sniffed`), stores what is to
/// be kept (a re-encoded photo and its thumbnail, or the clip or voice note as sent with a
/// video frame's thumbnail) and only then records it, unsent, for `uploader` in `session`.
/// Nothing is stored for a refused file; files stored before a failed insert are deleted.
pub async fn keep_upload(
    state: &AppState,
    session: Uuid,
    uploader: Uuid,
    spooled: PathBuf,
    len: u64,
    sniffed: Sniffed,
) -> Result<Attachment, KeepError> {
    let media = &state.media;
    let limits = state.settings.limits.clone();
    let id = Uuid::new_v4();
    let original = key(session, id, MediaFile::Original);
    let thumbnail_key = key(session, id, MediaFile::Thumbnail);
    let mut attachment = if sniffed.is_image() {
        let path = spooled.clone();
        let picture = media
            .blocking(move || {
                let data = std::fs::read(&path).map_err(|_| inspect::unsupported())?;
                inspect::picture(&data, sniffed, &limits)
            })
            .await?
            .map_err(KeepError::Refused)?;
        let attachment = Attachment {
            id,
            kind: AttachmentKind::Image,
            content_type: picture.content_type.into(),
            bytes: picture.bytes.len() as u64,
            width: Some(picture.width),
            height: Some(picture.height),
            duration_ms: None,
            has_thumbnail: true,
            created_at: state.now(),
            removed_at: None,
        };
        media.store.put_bytes(&original, picture.bytes).await?;
        if let Err(e) = media
            .store
            .put_bytes(&thumbnail_key, picture.thumbnail)
            .await
        {
            let _ = media.store.delete(&original).await;
            return Err(e.into());
        }
        attachment
    } else {
        let path = spooled.clone();
        let checks = limits.clone();
        let mut recording: Recording = media
            .blocking(move || inspect::recording(&path, len, sniffed, &checks))
            .await?
            .map_err(KeepError::Refused)?;
        let mut kept = (spooled.clone(), len);
        if media.ffmpeg {
            if let Some((clean, clean_len)) = remux(&spooled, sniffed).await {
                let path = clean.clone();
                let checked = media
                    .blocking(move || inspect::recording(&path, clean_len, sniffed, &limits))
                    .await?;
                match checked {
                    Ok(clean_recording) if clean_recording.kind == recording.kind => {
                        recording = clean_recording;
                        kept = (clean, clean_len);
                    }
                    _ => {
                        let _ = tokio::fs::remove_file(&clean).await;
                    }
                }
            }
        }
        let (kept, len) = kept;
        let thumbnail = match recording.kind {
            AttachmentKind::Video if media.ffmpeg => video_thumbnail(&kept).await,
            _ => None,
        };
        let stored = media.store.put_file(&original, &kept).await;
        if kept != spooled {
            let _ = tokio::fs::remove_file(&kept).await;
        }
        stored?;
        let has_thumbnail = match thumbnail {
            Some(bytes) => match media.store.put_bytes(&thumbnail_key, bytes).await {
                Ok(()) => true,
                Err(e) => {
                    let _ = media.store.delete(&original).await;
                    return Err(e.into());
                }
            },
            None => false,
        };
        Attachment {
            id,
            kind: recording.kind,
            content_type: recording.content_type.into(),
            bytes: len,
            width: recording.width,
            height: recording.height,
            duration_ms: Some(recording.duration_ms),
            has_thumbnail,
            created_at: state.now(),
            removed_at: None,
        }
    };
    attachment.created_at =
        crate::storage::from_millis(crate::storage::millis(attachment.created_at));
    if let Err(e) = state
        .store
        .insert_attachment(&attachment, session, uploader)
        .await
    {
        let _ = media.store.delete(&original).await;
        let _ = media.store.delete(&thumbnail_key).await;
        return Err(e.into());
    }
    Ok(attachment)
}

/// The clip or voice note at `spooled` rewritten by `ffmpeg` without its metadata (the phone's
/// location, creation time and device tags, chapters, data tracks): its video and audio streams
/// copied as they are into a fresh container, an MP4's index moved to the front so that playback
/// can start and seek at once, a live WebM recording given its duration and cues. `None` when
/// `ffmpeg` cannot (the file is then kept as sent).
async fn remux(spooled: &Path, sniffed: Sniffed) -> Option<(PathBuf, u64)> {
    let (format, fast_start) = match sniffed {
        Sniffed::Mp4 => ("mp4", true),
        Sniffed::Mov => ("mov", true),
        Sniffed::WebM => ("webm", false),
        _ => return None,
    };
    let clean = spooled.with_extension("clean");
    let mut command = tokio::process::Command::new("ffmpeg");
    command
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(spooled)
        .args(["-map", "0:v?", "-map", "0:a?", "-c", "copy"])
        .args([
            "-map_metadata",
            "-1",
            "-map_metadata:s",
            "-1",
            "-map_chapters",
            "-1",
        ])
        .args(["-fflags", "+bitexact", "-f", format]);
    if fast_start {
        command.args(["-movflags", "+faststart"]);
    }
    let run = command
        .arg(&clean)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    let done = tokio::time::timeout(FFMPEG_TIMEOUT, run).await;
    match done {
        Ok(Ok(status)) if status.success() => {
            let len = tokio::fs::metadata(&clean).await.ok()?.len();
            Some((clean, len))
        }
        _ => {
            let _ = tokio::fs::remove_file(&clean).await;
            None
        }
    }
}

/// A frame of the clip at `path` as a thumbnail, when `ffmpeg` can take one in time.
async fn video_thumbnail(path: &Path) -> Option<Vec<u8>> {
    let grab = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale='min(640,iw)':-2",
            "-f",
            "image2pipe",
            "-c:v",
            "mjpeg",
            "-",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(FFMPEG_TIMEOUT, grab)
        .await
        .ok()?
        .ok()?;
    if !output.status.success() || output.stdout.is_empty() {
        return None;
    }
    tokio::task::spawn_blocking(move || inspect::frame_thumbnail(&output.stdout))
        .await
        .ok()
        .flatten()
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Unsent attachments past the grace period, marked for deletion.
    pub orphans: u64,
    /// Sent attachments past the media retention period, marked for deletion.
    pub expired: u64,
    /// Attachments whose files were deleted from the store.
    pub purged: u64,
    /// Spooled uploads left behind by a server that stopped while receiving them.
    pub stale_spools: u64,
}

/// One pass: marks orphans and expired media, then deletes the files of everything marked
/// (also what an earlier pass or another node marked and did not finish).
pub async fn sweep_once(state: &AppState, now: OffsetDateTime) -> Result<Swept, KeepError> {
    let media = &state.media;
    let mut swept = Swept {
        orphans: state
            .store
            .remove_unsent_attachments(now - media.orphan_grace, now)
            .await?,
        ..Swept::default()
    };
    if media.retention_days > 0 {
        let cutoff = now - time::Duration::days(i64::from(media.retention_days));
        swept.expired = state
            .store
            .remove_media_of_sessions_ended_before(cutoff, now)
            .await?;
    }
    swept.purged = purge_removed(state, now).await?;
    let staging = media.store.staging_dir();
    let cutoff = std::time::SystemTime::from(now) - STALE_SPOOL;
    swept.stale_spools = tokio::task::spawn_blocking(move || remove_older(&staging, cutoff))
        .await
        .map_err(anyhow::Error::from)?;
    Ok(swept)
}

/// Deletes the files in `dir` last written before `cutoff`; returns how many.
fn remove_older(dir: &Path, cutoff: std::time::SystemTime) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .is_some_and(|written| written < cutoff);
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Deletes the files of attachments marked removed; returns how many were done.
pub async fn purge_removed(state: &AppState, now: OffsetDateTime) -> Result<u64, KeepError> {
    let mut purged = 0;
    loop {
        let batch = state.store.media_to_purge(200).await?;
        if batch.is_empty() {
            return Ok(purged);
        }
        let mut progress = false;
        for item in &batch {
            let mut deleted = state
                .media
                .store
                .delete(&key(item.session_id, item.id, MediaFile::Original))
                .await;
            if item.has_thumbnail && deleted.is_ok() {
                deleted = state
                    .media
                    .store
                    .delete(&key(item.session_id, item.id, MediaFile::Thumbnail))
                    .await;
            }
            match deleted {
                Ok(()) => {
                    state.store.media_purged(item, now).await?;
                    purged += 1;
                    progress = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attachment = %item.id, "deleting media failed; retried next sweep")
                }
            }
        }
        if !progress {
            return Ok(purged);
        }
    }
}

/// Sweeps at start and then every [`SWEEP_PERIOD`], for as long as the server runs.
pub async fn run_sweeps(state: AppState) {
    let mut tick = tokio::time::interval(SWEEP_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep_once(&state, state.now()).await {
            Ok(swept) if swept == Swept::default() => {}
            Ok(swept) => tracing::info!(
                orphans = swept.orphans,
                expired = swept.expired,
                purged = swept.purged,
                stale_spools = swept.stale_spools,
                "media sweep: deleted unsent attachments past the grace period and media past the retention period"
            ),
            Err(e) => tracing::warn!(error = %e, "media sweep failed; it runs again later"),
        }
    }
}
