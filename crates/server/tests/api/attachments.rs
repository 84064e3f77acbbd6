//! Attachments: uploads are judged by their bytes (type sniffed, the whole file well formed,
//! size, length and pixel limits, refused before the body ends when too large), photos are
//! stored re-encoded without metadata, files are served to the session's participants only
//! (with ranges for clips and voice notes), and messages carry them through `attachment_ids`.
//! Test files are made here: photos with the `image` crate (EXIF spliced in by hand), clips and
//! voice notes with Debian's `ffmpeg`.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use image::codecs::jpeg::JpegEncoder;
use reqwest::{multipart, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;
use wrenchline_server::media::store::{key, MediaFile};
use wrenchline_server::media::sweep_once;

use crate::helpers::{spawn_app, spawn_app_with, Actor, TestApp};

fn authed(request: RequestBuilder, actor: &Actor) -> RequestBuilder {
    match actor {
        Actor::Anonymous => request,
        Actor::Customer { cookie, .. } => request.header("cookie", format!("wl_customer={cookie}")),
        Actor::Mechanic { token, .. } => request.bearer_auth(token),
    }
}

async fn upload(
    app: &TestApp,
    session: Uuid,
    actor: &Actor,
    name: &str,
    declared: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let part = multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(declared)
        .unwrap();
    let form = multipart::Form::new().part("file", part);
    let request = app
        .http
        .post(format!("{}/api/sessions/{session}/attachments", app.base))
        .multipart(form);
    let response = authed(request, actor).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn fetch(app: &TestApp, path: &str, actor: &Actor, range: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(format!("{}{path}", app.base));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    authed(request, actor).send().await.unwrap()
}

fn id_of(body: &Value) -> Uuid {
    body["id"].as_str().expect("an id").parse().unwrap()
}

/// A JPEG of `width` × `height` with a gradient, as a camera would make it.
fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&pixels)
        .unwrap();
    out
}

const SERIAL: &[u8] = b"CAMSERIAL-90210";

/// An EXIF APP1 segment (little-endian TIFF) with an orientation, a camera serial number, a
/// capture time and a GPS position.
fn exif_app1(orientation: u16) -> Vec<u8> {
    let mut tiff: Vec<u8> = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    // IFD0: Orientation, DateTime, BodySerialNumber, GPS IFD pointer.
    let entries = 4u16;
    let ifd0_len = 2 + 12 * u32::from(entries) + 4;
    let date_at = 8 + ifd0_len;
    let date = b"2026:12:01 07:45:00\0";
    let serial_at = date_at + date.len() as u32;
    let mut serial = SERIAL.to_vec();
    serial.push(0);
    let gps_at = serial_at + serial.len() as u32;
    let entry = |tag: u16, kind: u16, count: u32, value: u32| {
        let mut e = Vec::new();
        e.extend_from_slice(&tag.to_le_bytes());
        e.extend_from_slice(&kind.to_le_bytes());
        e.extend_from_slice(&count.to_le_bytes());
        e.extend_from_slice(&value.to_le_bytes());
        e
    };
    tiff.extend_from_slice(&entries.to_le_bytes());
    tiff.extend(entry(0x0112, 3, 1, u32::from(orientation)));
    tiff.extend(entry(0x0132, 2, date.len() as u32, date_at));
    tiff.extend(entry(0xA431, 2, serial.len() as u32, serial_at));
    tiff.extend(entry(0x8825, 4, 1, gps_at));
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(date);
    tiff.extend_from_slice(&serial);
    // GPS IFD: latitude ref N and latitude 37/1 46/1 30/1.
    let rationals_at = gps_at + 2 + 12 * 2 + 4;
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend(entry(0x0001, 2, 2, u32::from_le_bytes(*b"N\0\0\0")));
    tiff.extend(entry(0x0002, 5, 3, rationals_at));
    tiff.extend_from_slice(&0u32.to_le_bytes());
    for value in [37u32, 46, 30] {
        tiff.extend_from_slice(&value.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
    }
    let mut segment = vec![0xFF, 0xE1];
    let length = (2 + 6 + tiff.len()) as u16;
    segment.extend_from_slice(&length.to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend(tiff);
    segment
}

/// `jpeg` with an EXIF segment spliced in right after its start-of-image marker.
fn with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend(exif_app1(orientation));
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether a JPEG has an APP1 (EXIF/XMP) segment among its headers.
fn has_app1(jpeg: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        if marker == 0xE1 {
            return true;
        }
        if marker == 0xDA {
            return false;
        }
        i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
    }
    false
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    chunk
}

/// A small, well-formed PNG header declaring `width` × `height` pixels over a few bytes of data:
/// what a decompression bomb looks like before it is decoded.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(b"IDAT", &[0x78, 0x9C, 0x63, 0, 0, 0, 1, 0, 1]));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// Runs Debian's `ffmpeg` with `args`, returning what it wrote to standard output.
fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed (scripts/setup.sh)");
    assert!(
        output.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn ffmpeg_file(args: &[&str], extension: &str) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("wl-fixture-{}.{extension}", Uuid::new_v4()));
    let mut all: Vec<&str> = args.to_vec();
    let target = path.to_str().unwrap().to_string();
    all.push(&target);
    ffmpeg(&all);
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    bytes
}

/// An MP4 clip (H.264 test pattern, AAC tone) of `seconds`.
fn mp4_clip(seconds: u32) -> Vec<u8> {
    let duration = seconds.to_string();
    ffmpeg_file(
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=size=160x120:rate=10:duration={duration}"),
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:duration={duration}"),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            // What a phone writes about the customer: where and when, and with what.
            "-metadata",
            "title=CUSTOMER-SECRET-TITLE",
            "-metadata",
            "location=+37.7749-122.4194/",
            "-metadata",
            "creation_time=2026-12-01T07:45:00Z",
            "-movflags",
            "use_metadata_tags",
        ],
        "mp4",
    )
}

/// A WebM/Opus voice note of `seconds`, written to a pipe as a live recorder writes it: no
/// duration in its header, no cues.
fn webm_voice_note(seconds: u32) -> Vec<u8> {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=220:duration={seconds}"),
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-f",
        "webm",
        "-",
    ])
}

fn media_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(media_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn media_dir(app: &TestApp) -> std::path::PathBuf {
    app.state
        .settings
        .media_dir
        .clone()
        .expect("tests set a media directory")
}

#[tokio::test]
async fn a_photo_is_stored_upright_without_its_metadata_and_sent_in_a_message() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    // Orientation 6: the camera was turned; the stored picture is turned back upright.
    let original = with_exif(&jpeg(64, 48), 6);
    assert!(has_app1(&original) && contains(&original, SERIAL));
    let (status, body) = upload(
        &app,
        session,
        &customer,
        "IMG_0001.JPG",
        "image/jpeg",
        original,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "image");
    assert_eq!(body["content_type"], "image/jpeg");
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(48), Some(64))
    );
    assert!(body.get("duration_ms").is_none(), "{body}");
    let id = id_of(&body);

    // What the store holds: a JPEG with no APP1 segment, no serial number, no GPS tag.
    let stored = app
        .state
        .media
        .store
        .read_all(&key(session, id, MediaFile::Original))
        .await
        .unwrap();
    assert_eq!(&stored[..2], &[0xFF, 0xD8]);
    assert!(!has_app1(&stored), "an APP1 segment survived");
    assert!(
        !contains(&stored, b"Exif")
            && !contains(&stored, SERIAL)
            && !contains(&stored, b"2026:12:01")
    );
    assert_eq!(body["bytes"].as_u64(), Some(stored.len() as u64));
    let decoded = image::load_from_memory(&stored).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (48, 64));

    // Both participants read it (the customer by cookie, as <img src> does), with safe headers.
    for actor in [&customer, &mechanic] {
        let response = fetch(&app, &format!("/api/attachments/{id}"), actor, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "image/jpeg");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox"));
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("inline; filename=\"photo-"),
            "{disposition}"
        );
        assert!(
            !disposition.contains("IMG_0001"),
            "the client's file name is not used"
        );
        assert_eq!(response.bytes().await.unwrap().as_ref(), stored.as_slice());
        let thumbnail = fetch(
            &app,
            &format!("/api/attachments/{id}/thumbnail"),
            actor,
            None,
        )
        .await;
        assert_eq!(thumbnail.status(), StatusCode::OK);
        assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
        let thumbnail = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
        assert!(thumbnail.width() <= 320 && thumbnail.height() <= 320);
    }

    // Sent without text; the message and the history carry it; posting again changes nothing.
    let path = format!("/api/sessions/{session}/messages");
    let send = json!({"client_id": "photo-1", "attachment_ids": [id]});
    let (status, message) = app.post(&path, &customer, Some(&send)).await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    assert_eq!(message["body"], "");
    assert_eq!(message["attachments"][0]["id"], id.to_string());
    assert_eq!(message["attachments"][0]["width"], 48);
    let (status, again) = app.post(&path, &customer, Some(&send)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, message);
    let (_, history) = app.get(&path, &mechanic).await;
    assert_eq!(history[0]["attachments"], message["attachments"]);
    assert_eq!(app.message_count().await, 1);

    // Once sent, it cannot go out with another message.
    let (status, body) = app
        .post(
            &path,
            &customer,
            Some(&json!({"client_id": "photo-2", "attachment_ids": [id]})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("attachment_already_sent"))
    );
    // A message still needs a body or an attachment.
    let (status, body) = app
        .post(&path, &customer, Some(&json!({"client_id": "empty"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn files_reach_the_sessions_participants_only() {
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let (status, body) = upload(
        &app,
        session,
        &customer,
        "a.jpg",
        "image/jpeg",
        jpeg(32, 32),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = id_of(&body);
    let (other_customer, _) = app.customer_with_session().await;
    let other_mechanic = app.mechanic("Other").await;
    for outsider in [&other_customer, &other_mechanic] {
        for path in [
            format!("/api/attachments/{id}"),
            format!("/api/attachments/{id}/thumbnail"),
        ] {
            let response = fetch(&app, &path, outsider, None).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        }
        // Nor can they upload into the session.
        let (status, _) = upload(&app, session, outsider, "b.jpg", "image/jpeg", jpeg(8, 8)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let response = fetch(
        &app,
        &format!("/api/attachments/{}", Uuid::new_v4()),
        &customer,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = fetch(
        &app,
        &format!("/api/attachments/{id}"),
        &Actor::Anonymous,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn files_that_are_not_photos_clips_or_voice_notes_are_refused_whatever_their_name() {
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let html = b"<!doctype html><script>alert(document.cookie)</script>".repeat(100);
    let mut polyglot = jpeg(32, 32);
    polyglot.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x08\x00<script>alert(1)</script>");
    let mut truncated = jpeg(64, 64);
    truncated.truncate(truncated.len() / 2);
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    for (name, bytes) in [
        ("photo.jpg", html.clone()),
        ("photo.jpg", polyglot),
        ("photo.jpg", truncated),
        ("clip.mp4", gif),
        ("note.webm", b"\x1a\x45\xdf\xa3 not really".repeat(40)),
    ] {
        let (status, body) = upload(&app, session, &customer, name, "image/jpeg", bytes).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}: {body}");
        assert_eq!(body["error"], "unsupported_file_type");
    }
    // A picture declaring 20000 × 20000 pixels is refused before it is decoded.
    let (status, body) = upload(
        &app,
        session,
        &customer,
        "bomb.png",
        "image/png",
        png_declaring(20_000, 20_000),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("40 megapixels"),
        "{body}"
    );
    // Nothing of any of them was kept.
    assert!(
        media_files(&media_dir(&app)).is_empty(),
        "{:?}",
        media_files(&media_dir(&app))
    );
    let sessions = app.state.store.messages(session, 0, 10).await.unwrap();
    assert!(sessions.is_empty());
}

/// Sends a request head and part of a body over a raw connection, then waits for the answer
/// without sending the rest.
async fn answer_before_the_end(
    app: &TestApp,
    actor: &Actor,
    session: Uuid,
    head_extra: &str,
    body: &[u8],
) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = match actor {
        Actor::Customer { cookie, .. } => format!("Cookie: wl_customer={cookie}\r\n"),
        Actor::Mechanic { token, .. } => format!("Authorization: Bearer {token}\r\n"),
        Actor::Anonymous => String::new(),
    };
    let head = format!(
        "POST /api/sessions/{session}/attachments HTTP/1.1\r\nHost: {addr}\r\n{auth}\
         Content-Type: multipart/form-data; boundary=XYZ\r\n{head_extra}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The body may be refused part-way: the server stops reading and answers.
    let _ = stream.write_all(body).await;
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer before the body ended")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_before_the_body_ends() {
    let app = spawn_app_with(|s| {
        s.limits.image_max_bytes = 100_000;
        s.limits.video_max_bytes = 200_000;
        s.limits.audio_max_bytes = 150_000;
    })
    .await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    // A declared length over every limit: refused on the head alone.
    let answer = answer_before_the_end(
        &app,
        &customer,
        session,
        "Content-Length: 50000000\r\n",
        b"",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("0.2 MB") || answer.contains("limited to"),
        "{answer}"
    );

    // No length (chunked): the bytes are counted as they arrive; a photo's limit applies once its
    // first bytes show it is a photo. 160 kB of 10 MB are sent, then the server has answered.
    let mut part =
        b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n\
                     Content-Type: image/jpeg\r\n\r\n"
            .to_vec();
    part.extend(jpeg(16, 16));
    part.resize(160_000, 0x55);
    let chunked = format!("{:x}\r\n", part.len());
    let mut body = chunked.into_bytes();
    body.extend(&part);
    body.extend_from_slice(b"\r\n");
    let answer = answer_before_the_end(
        &app,
        &customer,
        session,
        "Transfer-Encoding: chunked\r\n",
        &body,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("Photos are limited to 0.1 MB"), "{answer}");
    assert!(answer.contains("file_too_large"), "{answer}");
    // With a declared length that the photo limit rules out, refused after the first bytes.
    let answer = answer_before_the_end(
        &app,
        &customer,
        session,
        "Content-Length: 190000\r\n",
        &part[..10_000],
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(media_files(&media_dir(&app)).is_empty());
    // Within the limits, the same server takes a photo.
    let (status, body) = upload(
        &app,
        session,
        &customer,
        "ok.jpg",
        "image/jpeg",
        jpeg(40, 30),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn clips_and_voice_notes_have_their_length_read_from_the_file_and_answer_ranges() {
    let app = spawn_app_with(|s| {
        s.limits.audio_max_seconds = 4;
    })
    .await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let clip = mp4_clip(2);
    let (status, body) = upload(
        &app,
        session,
        &mechanic,
        "clip.bin",
        "application/octet-stream",
        clip.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "video");
    assert_eq!(body["content_type"], "video/mp4");
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(160), Some(120))
    );
    let duration = body["duration_ms"].as_u64().unwrap();
    assert!((1900..=2200).contains(&duration), "{duration}");
    let clip_id = id_of(&body);
    // The stored clip is the same streams without the phone's metadata.
    assert!(contains(&clip, b"CUSTOMER-SECRET-TITLE") && contains(&clip, b"+37.7749"));
    let clip = app
        .state
        .media
        .store
        .read_all(&key(session, clip_id, MediaFile::Original))
        .await
        .unwrap();
    assert!(
        !contains(&clip, b"CUSTOMER-SECRET-TITLE"),
        "the title survived"
    );
    assert!(!contains(&clip, b"+37.7749"), "the location survived");
    assert!(
        !contains(&clip, b"2026-12-01"),
        "the creation time survived"
    );
    assert_eq!(body["bytes"].as_u64(), Some(clip.len() as u64));
    // Its index is at the front, for playback that starts and seeks at once.
    assert_eq!(&clip[4..8], b"ftyp");
    let moov = clip.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = clip.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov < mdat, "moov at {moov}, mdat at {mdat}");
    // ffmpeg made a frame into a thumbnail.
    assert_eq!(body["has_thumbnail"], true);
    let thumbnail = fetch(
        &app,
        &format!("/api/attachments/{clip_id}/thumbnail"),
        &customer,
        None,
    )
    .await;
    assert_eq!(thumbnail.status(), StatusCode::OK);

    // Seeking: a range of the clip, the end of it, and a range outside it.
    let path = format!("/api/attachments/{clip_id}");
    let response = fetch(&app, &path, &customer, Some("bytes=100-199")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()["accept-ranges"], "bytes");
    assert_eq!(
        response.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-199/{}", clip.len())
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), &clip[100..200]);
    let response = fetch(&app, &path, &customer, Some("bytes=-50")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        &clip[clip.len() - 50..]
    );
    let response = fetch(
        &app,
        &path,
        &customer,
        Some(&format!("bytes={}-", clip.len() + 10)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let response = fetch(&app, &path, &customer, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().len(), clip.len());

    // A voice note recorded live (no duration in its header): its length from the blocks.
    let note = webm_voice_note(3);
    let (status, body) = upload(&app, session, &customer, "note.webm", "audio/webm", note).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "audio");
    assert_eq!(body["content_type"], "audio/webm");
    let duration = body["duration_ms"].as_u64().unwrap();
    assert!((2800..=3100).contains(&duration), "{duration}");
    assert_eq!(body["has_thumbnail"], false);
    assert!(body.get("width").is_none());
    let note_id = id_of(&body);
    let response = fetch(
        &app,
        &format!("/api/attachments/{note_id}/thumbnail"),
        &customer,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Over the length limit (4 s here): refused, with the limit in the message.
    let (status, body) = upload(
        &app,
        session,
        &customer,
        "long.webm",
        "audio/webm",
        webm_voice_note(6),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "too_long");
    assert_eq!(body["message"], "Voice notes are limited to 4 seconds");
    // A clip with bytes appended after its last box is not one file.
    let mut appended = mp4_clip(1);
    appended.extend_from_slice(b"<html><script>alert(1)</script></html>");
    let (status, _) = upload(&app, session, &customer, "c.mp4", "video/mp4", appended).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Other containers: QuickTime and WebM clips, an MP4/AAC voice note.
    let mov = ffmpeg_file(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=96x64:rate=10:duration=1",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mov",
        ],
        "mov",
    );
    let webm = ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=96x64:rate=10:duration=1",
        "-c:v",
        "libvpx",
        "-b:v",
        "200k",
        "-f",
        "webm",
        "-",
    ]);
    let m4a = ffmpeg_file(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:duration=2",
            "-c:a",
            "aac",
            "-f",
            "mp4",
        ],
        "m4a",
    );
    for (bytes, kind, content_type, seconds) in [
        (mov, "video", "video/quicktime", 1),
        (webm, "video", "video/webm", 1),
        (m4a, "audio", "audio/mp4", 2),
    ] {
        let (status, body) = upload(
            &app,
            session,
            &mechanic,
            "f",
            "application/octet-stream",
            bytes,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{content_type}: {body}");
        assert_eq!(
            (body["kind"].as_str(), body["content_type"].as_str()),
            (Some(kind), Some(content_type))
        );
        let ms = body["duration_ms"].as_u64().unwrap();
        assert!(
            ms + 200 >= seconds * 1000 && ms <= seconds * 1000 + 200,
            "{content_type}: {ms} ms"
        );
        if kind == "video" {
            assert_eq!(
                (body["width"].as_u64(), body["height"].as_u64()),
                (Some(96), Some(64)),
                "{content_type}"
            );
        }
    }

    // Both go out in one message, in the order given.
    let (status, message) = app
        .post(
            &format!("/api/sessions/{session}/messages"),
            &customer,
            Some(&json!({"client_id": "both", "body": "Listen", "attachment_ids": [note_id, clip_id]})),
        )
        .await;
    // The clip is the mechanic's upload: the customer cannot send it.
    assert_eq!(
        (status, message["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("attachment_not_found"))
    );
    let (status, message) = app
        .post(
            &format!("/api/sessions/{session}/messages"),
            &customer,
            Some(&json!({"client_id": "both", "body": "Listen", "attachment_ids": [note_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    assert_eq!(message["attachments"][0]["kind"], "audio");
}

#[tokio::test]
async fn an_attachment_goes_out_in_its_own_session_only() {
    let app = spawn_app().await;
    let (_customer, mechanic, first) = app.waiting_session().await;
    let (_other_customer, second) = app.offered_session().await;
    let (status, _) = app
        .post(&format!("/api/sessions/{second}/accept"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = upload(&app, first, &mechanic, "a.png", "image/png", {
        let mut png = Vec::new();
        image::RgbaImage::new(8, 8)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    })
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Transparent pictures stay PNG.
    assert_eq!(body["content_type"], "image/png");
    let id = id_of(&body);
    let (status, body) = app
        .post(
            &format!("/api/sessions/{second}/messages"),
            &mechanic,
            Some(&json!({"client_id": "x", "attachment_ids": [id]})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("attachment_not_found")),
        "{body}"
    );
    assert_eq!(app.message_count().await, 0);
    // Listed twice, or too many: a field error.
    let (status, body) = app
        .post(
            &format!("/api/sessions/{first}/messages"),
            &mechanic,
            Some(&json!({"client_id": "y", "attachment_ids": [id, id]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["fields"]["attachment_ids"].is_string());
}

#[tokio::test]
async fn unsent_uploads_and_expired_media_are_deleted_and_the_chat_says_what_was_there() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let (_, sent) = upload(
        &app,
        session,
        &customer,
        "a.jpg",
        "image/jpeg",
        jpeg(20, 20),
    )
    .await;
    let (_, unsent) = upload(
        &app,
        session,
        &customer,
        "b.jpg",
        "image/jpeg",
        jpeg(20, 20),
    )
    .await;
    let (sent, unsent) = (id_of(&sent), id_of(&unsent));
    let path = format!("/api/sessions/{session}/messages");
    let (status, _) = app
        .post(
            &path,
            &customer,
            Some(&json!({"client_id": "p", "attachment_ids": [sent]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let store = &app.state.media.store;
    let now = OffsetDateTime::now_utc();

    // Within the grace period nothing goes.
    let swept = sweep_once(&app.state, now + time::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(swept.orphans, 0);
    // After it, the unsent one goes, files and row; the sent one stays.
    let swept = sweep_once(&app.state, now + time::Duration::hours(25))
        .await
        .unwrap();
    assert_eq!((swept.orphans, swept.purged), (1, 1));
    assert!(!store
        .exists(&key(session, unsent, MediaFile::Original))
        .await
        .unwrap());
    assert!(!store
        .exists(&key(session, unsent, MediaFile::Thumbnail))
        .await
        .unwrap());
    assert!(app.state.store.attachment(unsent).await.unwrap().is_none());
    assert!(store
        .exists(&key(session, sent, MediaFile::Original))
        .await
        .unwrap());
    // An orphan cannot be sent any more.
    let (status, _) = app
        .post(
            &path,
            &customer,
            Some(&json!({"client_id": "q", "attachment_ids": [unsent]})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An upload a stopped server left half-received goes once it is stale; a recent one stays.
    let staging = app.state.media.store.staging_dir();
    let stale = staging.join("left-over");
    std::fs::write(&stale, b"half an upload").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let recent = staging.join("under-way");
    std::fs::write(&recent, b"still arriving").unwrap();
    let swept = sweep_once(&app.state, now).await.unwrap();
    assert_eq!(swept.stale_spools, 1);
    assert!(!stale.exists() && recent.exists());
    std::fs::remove_file(&recent).unwrap();

    // The session ends; 90 days later (the default) its media are deleted.
    let (status, _) = app
        .post(&format!("/api/sessions/{session}/end"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let swept = sweep_once(&app.state, now + time::Duration::days(89))
        .await
        .unwrap();
    assert_eq!(swept.expired, 0);
    let swept = sweep_once(&app.state, now + time::Duration::days(91))
        .await
        .unwrap();
    assert_eq!((swept.expired, swept.purged), (1, 1));
    assert!(!store
        .exists(&key(session, sent, MediaFile::Original))
        .await
        .unwrap());
    // A second pass (or another node) finds nothing left to do.
    let swept = sweep_once(&app.state, now + time::Duration::days(92))
        .await
        .unwrap();
    assert_eq!((swept.expired, swept.purged), (0, 0));
    // The history still lists it, saying when it was removed; the file answers 410.
    let (_, history) = app.get(&path, &mechanic).await;
    let listed = &history[0]["attachments"][0];
    assert_eq!(listed["id"], sent.to_string());
    assert!(listed["removed_at"].is_string(), "{listed}");
    let response = fetch(&app, &format!("/api/attachments/{sent}"), &customer, None).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(media_files(&media_dir(&app)).is_empty());
}

#[tokio::test]
async fn the_media_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let (status, body) = upload(
        &app,
        session,
        &customer,
        "a.jpg",
        "image/jpeg",
        jpeg(10, 10),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let dir = media_dir(&app);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let files = media_files(&dir);
    assert_eq!(files.len(), 2, "the photo and its thumbnail: {files:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        assert!(file.to_str().unwrap().contains(&id_of(&body).to_string()));
    }
}

#[tokio::test]
async fn uploads_are_refused_in_an_ended_session() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let (status, _) = app
        .post(&format!("/api/sessions/{session}/end"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = upload(
        &app,
        session,
        &customer,
        "a.jpg",
        "image/jpeg",
        jpeg(10, 10),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("session_ended"))
    );
}

#[tokio::test]
async fn the_messages_row_change_carries_its_attachments() {
    use crate::realtime::{config, token, Client};
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let chat = format!("realtime:chat:session-{session}");
    let bindings = json!([{"event": "INSERT", "schema": "public", "table": "messages", "filter": format!("session_id=eq.{session}")}]);
    let mut desk = Client::connect(&app).await;
    desk.join(&chat, &token(&app, &mechanic).await, config(bindings))
        .await;
    let subscribed = desk.expect("subscribed", |f| f[3] == "system").await;
    assert_eq!(subscribed[4]["status"], "ok", "{subscribed}");
    let (status, photo) = upload(
        &app,
        session,
        &customer,
        "a.jpg",
        "image/jpeg",
        jpeg(30, 20),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, posted) = app
        .post(
            &format!("/api/sessions/{session}/messages"),
            &customer,
            Some(&json!({"client_id": "rt", "body": "The light", "attachment_ids": [photo["id"]]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{posted}");
    let change = desk
        .expect("the message", |f| f[3] == "postgres_changes")
        .await;
    let data = &change[4]["data"];
    assert_eq!(data["record"]["id"], posted["id"]);
    assert_eq!(data["record"]["attachments"], posted["attachments"]);
    assert_eq!(data["record"]["attachments"][0]["kind"], "image");
    assert!(data["columns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "attachments" && c["type"] == "jsonb"));
}

#[tokio::test]
async fn media_go_with_the_transcript_at_the_latest() {
    // Media retention off (0): the transcript's retention still takes the files.
    let app = spawn_app_with(|s| s.media_retention_days = 0).await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let (_, photo) = upload(
        &app,
        session,
        &customer,
        "a.jpg",
        "image/jpeg",
        jpeg(20, 20),
    )
    .await;
    let photo = id_of(&photo);
    let (status, _) = app
        .post(
            &format!("/api/sessions/{session}/messages"),
            &customer,
            Some(&json!({"client_id": "p", "attachment_ids": [photo]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .post(&format!("/api/sessions/{session}/end"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let later = OffsetDateTime::now_utc() + time::Duration::days(400);
    let swept = sweep_once(&app.state, later).await.unwrap();
    assert_eq!(swept.expired, 0, "media retention is off");
    wrenchline_server::retention::forget_once(&app.state.store, 365, later).await;
    assert!(app
        .state
        .store
        .messages(session, 0, 10)
        .await
        .unwrap()
        .is_empty());
    let swept = sweep_once(&app.state, later).await.unwrap();
    assert_eq!(swept.purged, 1);
    assert!(media_files(&media_dir(&app)).is_empty());
    // The next retention pass deletes the rows whose files are gone.
    wrenchline_server::retention::forget_once(&app.state.store, 365, later).await;
    assert!(app.state.store.attachment(photo).await.unwrap().is_none());
}

#[tokio::test]
async fn an_upload_needs_a_part_named_file_with_bytes_in_it() {
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let (status, body) = upload(
        &app,
        session,
        &customer,
        "empty.jpg",
        "image/jpeg",
        Vec::new(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("empty_file"))
    );
    let form = multipart::Form::new().part("photo", multipart::Part::bytes(jpeg(8, 8)));
    let request = app
        .http
        .post(format!("{}/api/sessions/{session}/attachments", app.base))
        .multipart(form);
    let response = authed(request, &customer).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // One part only: a second one is refused too, and nothing is kept.
    let form = multipart::Form::new()
        .part(
            "file",
            multipart::Part::bytes(jpeg(8, 8)).file_name("a.jpg"),
        )
        .text("caption", "the dash");
    let request = app
        .http
        .post(format!("{}/api/sessions/{session}/attachments", app.base))
        .multipart(form);
    let response = authed(request, &customer).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(media_files(&media_dir(&app)).is_empty());
    let request = app
        .http
        .post(format!("{}/api/sessions/{session}/attachments", app.base))
        .json(&json!({"file": "x"}));
    let response = authed(request, &customer).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_media_type");
}

/// The S3 media store against an S3-API server (`scripts/with-s3.sh`, `make test-s3`, which runs
/// it with `--run-ignored all`); without one it fails rather than passing unseen.
#[tokio::test]
#[ignore = "needs an S3-API server: run through scripts/with-s3.sh (make test-s3)"]
async fn s3_media_store_keeps_serves_and_deletes_files() {
    let url = std::env::var("WRENCHLINE_TEST_S3_URL")
        .expect("WRENCHLINE_TEST_S3_URL: run through scripts/with-s3.sh (make test-s3)");
    let app = spawn_app_with(|s| {
        s.media_url = Some(url);
        s.media_dir = None;
    })
    .await;
    assert!(app.state.media.store.describe().starts_with("s3://"));
    let (customer, mechanic, session) = app.waiting_session().await;
    let (status, photo) = upload(
        &app,
        session,
        &customer,
        "a.jpg",
        "image/jpeg",
        with_exif(&jpeg(40, 30), 1),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{photo}");
    let photo = id_of(&photo);
    let stored = app
        .state
        .media
        .store
        .read_all(&key(session, photo, MediaFile::Original))
        .await
        .unwrap();
    assert!(!has_app1(&stored) && !contains(&stored, SERIAL));
    let response = fetch(&app, &format!("/api/attachments/{photo}"), &mechanic, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), stored.as_slice());

    // A clip larger than one multipart chunk would be is streamed in and served by ranges.
    let clip = mp4_clip(2);
    let (status, body) = upload(&app, session, &mechanic, "c.mp4", "video/mp4", clip.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let clip_id = id_of(&body);
    let clip = app
        .state
        .media
        .store
        .read_all(&key(session, clip_id, MediaFile::Original))
        .await
        .unwrap();
    assert_eq!(body["bytes"].as_u64(), Some(clip.len() as u64));
    let response = fetch(
        &app,
        &format!("/api/attachments/{clip_id}"),
        &customer,
        Some("bytes=10-29"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap().as_ref(), &clip[10..30]);
    let thumbnail = fetch(
        &app,
        &format!("/api/attachments/{clip_id}/thumbnail"),
        &customer,
        None,
    )
    .await;
    assert_eq!(thumbnail.status(), StatusCode::OK);

    // Never sent: deleted from the bucket after the grace period.
    let swept = sweep_once(
        &app.state,
        OffsetDateTime::now_utc() + time::Duration::days(2),
    )
    .await
    .unwrap();
    assert_eq!(swept.purged, 2);
    for id in [photo, clip_id] {
        for file in [MediaFile::Original, MediaFile::Thumbnail] {
            assert!(!app
                .state
                .media
                .store
                .exists(&key(session, id, file))
                .await
                .unwrap());
        }
    }
}
