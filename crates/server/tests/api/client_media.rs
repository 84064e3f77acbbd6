//! wrenchline-client's attachments (what the desktop app does with them, token in Rust) against
//! the real server: a mechanic's `MechanicSession` uploads a photo, sends it in a message (once
//! under its client_id), sees the customer's photo arrive on the chat topic with its kind, reads
//! the file, its thumbnail and a range of it, saves it to disk whole, and is told the server's
//! reason for a file it refuses; a mechanic of another session gets nothing.

use std::io::Cursor;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;
use wrenchline_client::{
    ChatEvent, MechanicEvent, MechanicEvents, MechanicOptions, MechanicSession, MediaVariant,
    Upload,
};
use wrenchline_protocol::{AttachmentKind, Message};

use crate::helpers::{spawn_app, Actor, TestApp, PASSWORD};

/// A 2 s WebM/Opus voice note, as a live recorder writes it (Debian's ffmpeg).
fn webm_voice_note() -> Vec<u8> {
    let output = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=220:duration=2",
        ])
        .args(["-c:a", "libopus", "-b:a", "32k", "-f", "webm", "-"])
        .output()
        .expect("ffmpeg is installed (scripts/setup.sh)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A real photo: a 320×240 gradient as JPEG.
fn jpeg() -> Vec<u8> {
    let picture = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    picture
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("a JPEG encodes");
    out.into_inner()
}

async fn signed_in(app: &TestApp, name: &str) -> (MechanicSession, MechanicEvents) {
    let actor = app.mechanic(name).await;
    let email = app.email_of(&actor).await;
    MechanicSession::sign_in(&app.base, &email, PASSWORD, MechanicOptions::default())
        .await
        .expect("a mechanic signs in")
}

/// A customer's session accepted by a signed-in `MechanicSession`.
async fn accepted(app: &TestApp, name: &str) -> (Actor, Uuid, MechanicSession, MechanicEvents) {
    let (customer, id) = app.offered_session().await;
    let (mechanic, events) = signed_in(app, name).await;
    mechanic.accept(id).await.expect("the mechanic accepts");
    (customer, id, mechanic, events)
}

/// The customer uploads a file over HTTP (multipart, part `file`), as the web page does.
async fn customer_upload(
    app: &TestApp,
    customer: &Actor,
    id: Uuid,
    name: &str,
    kind: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let Actor::Customer { cookie, .. } = customer else {
        panic!("a customer")
    };
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(kind)
        .unwrap();
    let response = app
        .http
        .post(format!("{}/api/sessions/{id}/attachments", app.base))
        .header("cookie", format!("wl_customer={cookie}"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("the upload reaches the server");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_mechanic_uploads_sends_reads_and_saves_a_photo() {
    let app = spawn_app().await;
    let (customer, id, mechanic, _events) = accepted(&app, "Rae").await;
    let photo = jpeg();

    let stored = mechanic
        .upload(
            id,
            Upload::new("engine bay.jpg", "image/jpeg", photo.clone()),
        )
        .await
        .expect("the photo uploads");
    assert_eq!(stored.kind, AttachmentKind::Image);
    assert_eq!(stored.content_type, "image/jpeg");
    assert_eq!((stored.width, stored.height), (Some(320), Some(240)));

    let sent = mechanic
        .send(id, "with-photo-1", "", &[stored.id])
        .await
        .expect("the message goes out");
    assert_eq!(sent.attachments.len(), 1);
    assert_eq!(sent.attachments[0].id, stored.id);
    // Sent again under the same client_id (a retry after a lost answer): the same message.
    let again = mechanic
        .send(id, "with-photo-1", "", &[stored.id])
        .await
        .expect("a retry answers the stored message");
    assert_eq!(again.id, sent.id);
    assert_eq!(app.message_count().await, 1);

    // The file the mechanic's view loads is the one the customer gets.
    let file = mechanic
        .media(stored.id, MediaVariant::File, None)
        .await
        .expect("the file is served");
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.content_type, "image/jpeg");
    assert_eq!(file.bytes.len() as u64, stored.bytes);
    let response = app
        .send(
            reqwest::Method::GET,
            &format!("/api/attachments/{}", stored.id),
            &customer,
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), file.bytes);

    let thumbnail = mechanic
        .media(stored.id, MediaVariant::Thumbnail, None)
        .await
        .expect("the thumbnail is served");
    assert!(thumbnail.content_type.starts_with("image/"));
    assert!(!thumbnail.bytes.is_empty() && thumbnail.bytes.len() < file.bytes.len() * 4);

    // Saved whole, through a temporary file that does not stay behind.
    let dir = std::env::temp_dir().join(format!("wl-client-save-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("engine-bay.jpg");
    let written = mechanic
        .save_attachment(stored.id, &path)
        .await
        .expect("the file saves");
    assert_eq!(written, stored.bytes);
    assert_eq!(std::fs::read(&path).unwrap(), file.bytes.to_vec());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
    mechanic.stop().await;
}

#[tokio::test]
async fn the_customers_photo_reaches_the_mechanics_chat_with_its_kind() {
    let app = spawn_app().await;
    let (customer, id, mechanic, mut events) = accepted(&app, "Rae").await;
    mechanic.open_chat(id).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(MechanicEvent::Chat(ChatEvent::Subscribed { .. })) = events.recv().await {
                break;
            }
        }
    })
    .await
    .expect("the chat subscribes");

    let (status, body) =
        customer_upload(&app, &customer, id, "leak.jpg", "image/jpeg", jpeg()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let attachment = body["id"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &customer,
            Some(&serde_json::json!({"client_id": "cust-photo-1", "attachment_ids": [attachment]})),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");

    let message: Message = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(MechanicEvent::Chat(ChatEvent::Message { message, .. })) =
                events.recv().await
            {
                return serde_json::from_value(message).expect("a message record");
            }
        }
    })
    .await
    .expect("the message arrives on the chat topic");
    assert_eq!(message.body, "");
    assert_eq!(message.attachments.len(), 1);
    assert_eq!(message.attachments[0].kind, AttachmentKind::Image);
    assert_eq!(message.attachments[0].id.to_string(), attachment);
    assert_eq!(
        wrenchline_desk_core_text(&message),
        "Photo",
        "the notification of a message with only a photo says so"
    );

    // A voice note (as a recorder writes it) plays from the mechanic's side: ranges pass through.
    let (status, body) = customer_upload(
        &app,
        &customer,
        id,
        "idle.webm",
        "audio/webm",
        webm_voice_note(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "audio");
    let voice: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    let part = mechanic
        .media(voice, MediaVariant::File, Some("bytes=0-99"))
        .await
        .expect("a range of the voice note");
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes.len(), 100);
    assert!(
        part.content_range
            .as_deref()
            .is_some_and(|r| r.starts_with("bytes 0-99/")),
        "{:?}",
        part.content_range
    );
    let rest = mechanic
        .media(voice, MediaVariant::File, Some("bytes=100-"))
        .await
        .expect("the rest of it");
    assert_eq!(rest.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        rest.bytes.len() as u64 + 100,
        body["bytes"].as_u64().unwrap()
    );
    mechanic.stop().await;
}

/// What the desktop's notification says of a message (desk-core is not a dependency of the
/// server's tests: the same rule, read from the protocol's label).
fn wrenchline_desk_core_text(message: &Message) -> String {
    if message.body.trim().is_empty() && message.attachments.len() == 1 {
        message.attachments[0].kind.label().to_string()
    } else {
        message.body.clone()
    }
}

#[tokio::test]
async fn a_refused_file_says_why_and_an_outsider_reads_nothing() {
    let app = spawn_app().await;
    let (_customer, id, mechanic, _events) = accepted(&app, "Rae").await;

    let refused = mechanic
        .upload(
            id,
            Upload::new(
                "notes.jpg",
                "image/jpeg",
                b"not a picture at all, just text".to_vec(),
            ),
        )
        .await
        .expect_err("text is not a photo");
    assert_eq!(refused.status(), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    assert_eq!(refused.code(), Some("unsupported_file_type"));

    let stored = mechanic
        .upload(id, Upload::new("dash.jpg", "image/jpeg", jpeg()))
        .await
        .expect("the photo uploads");
    let (outsider, _events) = signed_in(&app, "Lee").await;
    let denied = outsider
        .media(stored.id, MediaVariant::File, None)
        .await
        .expect_err("another session's mechanic");
    assert_eq!(denied.status(), Some(StatusCode::NOT_FOUND));
    let upload = outsider
        .upload(id, Upload::new("x.jpg", "image/jpeg", jpeg()))
        .await
        .expect_err("nor may they upload to it");
    assert_eq!(upload.status(), Some(StatusCode::NOT_FOUND));
    mechanic.stop().await;
    outsider.stop().await;
}
