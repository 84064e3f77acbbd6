//! Where attachment files live, behind one boundary: a local directory (the default; nodes on
//! one machine or a shared filesystem may share it) or an S3-compatible bucket through
//! `object_store` (`--media-url s3://bucket?…`). Keys are made by the server from ids, never from
//! anything a client sent. Uploads are spooled in [`MediaStore::staging_dir`] while they are
//! checked, then put here before the database row that names them is committed.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use uuid::Uuid;

/// The name of the default media directory.
pub const DEFAULT_DIR_NAME: &str = "wrenchline-media";

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media file I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("object store request failed: {0}")]
    Remote(#[from] object_store::Error),
    #[error("no such media file")]
    NotFound,
    #[error("invalid media URL: {0}")]
    Config(String),
}

/// One stored file: the attachment itself or its thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFile {
    Original,
    Thumbnail,
}

/// The key of a file of `attachment` in `session`: `SESSION/ATTACHMENT` or `SESSION/ATTACHMENT.thumb`.
pub fn key(session: Uuid, attachment: Uuid, file: MediaFile) -> String {
    match file {
        MediaFile::Original => format!("{session}/{attachment}"),
        MediaFile::Thumbnail => format!("{session}/{attachment}.thumb"),
    }
}

/// A file read from the store: its whole size and the bytes of the range asked for.
pub struct Stored {
    pub size: u64,
    pub body: Body,
}

#[derive(Clone)]
pub enum MediaStore {
    Local {
        dir: PathBuf,
    },
    Remote {
        store: Arc<dyn ObjectStore>,
        description: String,
        staging: PathBuf,
    },
}

/// Creates `dir` (and its parents) when missing, readable by its owner only.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The media directory when none is configured: beside an SQLite database file, else in the
/// working directory.
pub fn default_dir(database_url: &str) -> PathBuf {
    match crate::storage::sqlite_file(database_url).and_then(|f| f.parent().map(Path::to_path_buf))
    {
        Some(parent) => parent.join(DEFAULT_DIR_NAME),
        None => std::path::absolute(DEFAULT_DIR_NAME).unwrap_or_else(|_| DEFAULT_DIR_NAME.into()),
    }
}

impl MediaStore {
    /// A directory store at `dir`, created (0700) when missing.
    pub fn local(dir: PathBuf) -> Result<MediaStore, MediaError> {
        private_dir(&dir)?;
        private_dir(&dir.join(".incoming"))?;
        Ok(MediaStore::Local { dir })
    }

    /// A bucket store from `s3://BUCKET?endpoint=…&region=…&access_key_id=…&secret_access_key=…
    /// &allow_http=true`: query keys are `object_store`'s S3 settings (`AmazonS3ConfigKey`);
    /// whatever they leave out comes from the standard `AWS_*` environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …).
    /// Nothing is contacted here: a bucket that is away fails uploads, not the start.
    pub fn s3(url: &str) -> Result<MediaStore, MediaError> {
        let parsed = url::Url::parse(url).map_err(|e| MediaError::Config(e.to_string()))?;
        if parsed.scheme() != "s3" || parsed.host_str().is_none_or(str::is_empty) {
            return Err(MediaError::Config(
                "the media URL must look like s3://BUCKET?endpoint=…".into(),
            ));
        }
        let bucket = parsed.host_str().unwrap_or_default().to_string();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        let mut shown = Vec::new();
        for (name, value) in parsed.query_pairs() {
            let config: AmazonS3ConfigKey = name
                .parse()
                .map_err(|_| MediaError::Config(format!("unknown S3 setting {name:?}")))?;
            if !name.contains("secret") && !name.contains("token") && !name.contains("key") {
                shown.push(format!("{name}={value}"));
            }
            builder = builder.with_config(config, value.into_owned());
        }
        let store = builder.build()?;
        let staging = std::env::temp_dir().join("wrenchline-uploads");
        private_dir(&staging)?;
        Ok(MediaStore::Remote {
            store: Arc::new(store),
            description: format!("s3://{bucket} ({})", shown.join(", ")),
            staging,
        })
    }

    pub fn describe(&self) -> String {
        match self {
            MediaStore::Local { dir } => dir.display().to_string(),
            MediaStore::Remote { description, .. } => description.clone(),
        }
    }

    /// Where uploads are spooled while they are checked: on the same filesystem as the files
    /// for a directory store, so that keeping one is a rename.
    pub fn staging_dir(&self) -> PathBuf {
        match self {
            MediaStore::Local { dir } => dir.join(".incoming"),
            MediaStore::Remote { staging, .. } => staging.clone(),
        }
    }

    fn local_path(dir: &Path, key: &str) -> PathBuf {
        key.split('/')
            .fold(dir.to_path_buf(), |path, part| path.join(part))
    }

    /// Stores the file at `spooled` under `key` (moving it for a directory store), durably.
    pub async fn put_file(&self, key: &str, spooled: &Path) -> Result<(), MediaError> {
        match self {
            MediaStore::Local { dir } => {
                let target = Self::local_path(dir, key);
                let spooled = spooled.to_path_buf();
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    if let Some(parent) = target.parent() {
                        private_dir(parent)?;
                    }
                    set_private(&spooled)?;
                    std::fs::File::open(&spooled)?.sync_all()?;
                    std::fs::rename(&spooled, &target)?;
                    if let Some(parent) = target.parent() {
                        std::fs::File::open(parent)?.sync_all()?;
                    }
                    Ok(())
                })
                .await
                .map_err(std::io::Error::other)??;
                Ok(())
            }
            MediaStore::Remote { store, .. } => {
                let mut upload = object_store::WriteMultipart::new_with_chunk_size(
                    store.put_multipart(&ObjectPath::from(key)).await?,
                    8 * 1024 * 1024,
                );
                let mut file = tokio::fs::File::open(spooled).await?;
                let mut buffer = vec![0u8; 1024 * 1024];
                loop {
                    let n = file.read(&mut buffer).await?;
                    if n == 0 {
                        break;
                    }
                    upload.wait_for_capacity(4).await?;
                    upload.write(&buffer[..n]);
                }
                upload.finish().await?;
                Ok(())
            }
        }
    }

    /// Stores `bytes` under `key`.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), MediaError> {
        match self {
            MediaStore::Local { dir } => {
                let spooled = tempfile::NamedTempFile::new_in(dir.join(".incoming"))?;
                std::fs::write(spooled.path(), &bytes)?;
                let (_, path) = spooled.keep().map_err(|e| e.error)?;
                let stored = self.put_file(key, &path).await;
                if stored.is_err() {
                    let _ = std::fs::remove_file(&path);
                }
                stored
            }
            MediaStore::Remote { store, .. } => {
                store.put(&ObjectPath::from(key), bytes.into()).await?;
                Ok(())
            }
        }
    }

    /// Reads `key`, the whole file or `range` of it (already checked against its size by the
    /// caller through [`MediaStore::size`]).
    pub async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<Stored, MediaError> {
        match self {
            MediaStore::Local { dir } => {
                let path = Self::local_path(dir, key);
                let mut file = match tokio::fs::File::open(&path).await {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(MediaError::NotFound)
                    }
                    Err(e) => return Err(e.into()),
                };
                let size = file.metadata().await?.len();
                let body = match range {
                    Some(range) => {
                        file.seek(std::io::SeekFrom::Start(range.start)).await?;
                        let taken = file.take(range.end - range.start);
                        Body::from_stream(tokio_util::io::ReaderStream::new(taken))
                    }
                    None => Body::from_stream(tokio_util::io::ReaderStream::new(file)),
                };
                Ok(Stored { size, body })
            }
            MediaStore::Remote { store, .. } => {
                let options = GetOptions {
                    range: range.map(GetRange::Bounded),
                    ..Default::default()
                };
                let result = match store.get_opts(&ObjectPath::from(key), options).await {
                    Ok(result) => result,
                    Err(object_store::Error::NotFound { .. }) => return Err(MediaError::NotFound),
                    Err(e) => return Err(e.into()),
                };
                let size = result.meta.size;
                let stream = result
                    .into_stream()
                    .map(|chunk| chunk.map_err(std::io::Error::other));
                Ok(Stored {
                    size,
                    body: Body::from_stream(stream),
                })
            }
        }
    }

    /// Deletes `key`; a file that is not there is already deleted.
    pub async fn delete(&self, key: &str) -> Result<(), MediaError> {
        match self {
            MediaStore::Local { dir } => {
                match tokio::fs::remove_file(Self::local_path(dir, key)).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            MediaStore::Remote { store, .. } => match store.delete(&ObjectPath::from(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Whether `key` exists (for tests and checks).
    pub async fn exists(&self, key: &str) -> Result<bool, MediaError> {
        match self {
            MediaStore::Local { dir } => {
                Ok(tokio::fs::try_exists(Self::local_path(dir, key)).await?)
            }
            MediaStore::Remote { store, .. } => match store.head(&ObjectPath::from(key)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// The whole stored bytes of `key` (for tests and checks).
    pub async fn read_all(&self, key: &str) -> Result<Vec<u8>, MediaError> {
        let stored = self.read(key, None).await?;
        let bytes = axum::body::to_bytes(stored.body, usize::MAX)
            .await
            .map_err(std::io::Error::other)?;
        Ok(bytes.to_vec())
    }
}

fn set_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
