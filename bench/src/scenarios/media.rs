//! Attachments under load: `media_uploads` customers (50) each upload a photo at the same
//! moment, as `multipart/form-data` to `POST /api/sessions/{id}/attachments`, then send it in a
//! message; each session's mechanic, subscribed to the session's `postgres_changes` as the
//! desktop app is, fetches the thumbnail as soon as the message arrives. Measured: upload
//! throughput over each batch (photos and MB per second, the server checking, decoding,
//! re-encoding and thumbnailing every one) and, per photo, the time from the start of its
//! upload to the mechanic holding its thumbnail, p50/p99 over `media_rounds` batches.

use std::sync::Arc;
use std::time::Duration;

use image::codecs::jpeg::JpegEncoder;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;
use wrenchline_client::{
    ChannelEvent, ChannelOptions, PostgresChanges, RealtimeClient, RealtimeOptions,
};

use super::Env;
use crate::fixture::Fixture;
use crate::procs::{CpuMeter, Db, Server, System};
use crate::report::{Metrics, Outcome};
use crate::stats::{now_micros, Counter, Latencies, LatencySummary};

/// A phone photo's size in pixels (the server scales nothing below 4096 on the long side).
const PHOTO: (u32, u32) = (2016, 1512);

/// A photo-like JPEG: gradients with fine texture, so it compresses as a camera picture does.
fn photo() -> Vec<u8> {
    let (w, h) = PHOTO;
    let pixels = image::RgbImage::from_fn(w, h, |x, y| {
        let grain = ((x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 23) as u8;
        image::Rgb([
            ((x * 200 / w) as u8).wrapping_add(grain),
            ((y * 200 / h) as u8).wrapping_add(grain / 2),
            (((x + y) * 100 / (w + h)) as u8).wrapping_add(grain),
        ])
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&pixels)
        .expect("a JPEG");
    out
}

#[derive(Default)]
struct Tally {
    failed: Counter,
    seen: Counter,
    seen_latency: Latencies,
    upload_latency: Latencies,
}

#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    pub uploads: usize,
    pub seconds: f64,
    pub photos_per_s: f64,
    pub mb_per_s: f64,
    pub server_cpu: f64,
}

fn body_ts(record: &Value) -> Option<u64> {
    record["body"].as_str()?.strip_prefix("ts=")?.parse().ok()
}

async fn run(
    env: &Env,
    db: &Db,
    fixture: &Fixture,
    photo: Arc<Vec<u8>>,
) -> anyhow::Result<Metrics> {
    let sizes = &env.sizes;
    let mut server = Server::start(&env.programs, System::Wrenchline, Some(db)).await?;
    let result = async {
        let base = server.base_url();
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(20))
            .build()?;
        let tally = Arc::new(Tally::default());
        let pairs = &fixture.pairs[..sizes.media_uploads.min(fixture.pairs.len())];
        let mut clients = Vec::new();
        let mut listeners = JoinSet::new();
        for pair in pairs {
            let mechanic = &fixture.mechanics[pair.mechanic];
            let client = RealtimeClient::connect_with(
                &base,
                mechanic.token.clone(),
                RealtimeOptions::default(),
            )?;
            let channel = client.channel(
                &format!("chat:session-{}", pair.session),
                ChannelOptions {
                    postgres_changes: vec![PostgresChanges::new("INSERT", "messages")
                        .filter(format!("session_id=eq.{}", pair.session))],
                    ..ChannelOptions::default()
                },
            );
            let mut events = channel.events();
            channel.subscribe().await?;
            let (tally, http, base, token) = (
                tally.clone(),
                http.clone(),
                base.clone(),
                mechanic.token.clone(),
            );
            listeners.spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(ChannelEvent::PostgresChange(change)) => {
                            let record = &change.record;
                            let (Some(ts), Some(id)) =
                                (body_ts(record), record["attachments"][0]["id"].as_str())
                            else {
                                continue;
                            };
                            let fetched = http
                                .get(format!("{base}/api/attachments/{id}/thumbnail"))
                                .bearer_auth(&token)
                                .send()
                                .await;
                            let thumbnail = match fetched {
                                Ok(r) if r.status().is_success() => r.bytes().await.ok(),
                                _ => None,
                            };
                            if thumbnail.is_some_and(|b| !b.is_empty()) {
                                tally.seen.add(1);
                                tally
                                    .seen_latency
                                    .record(0, now_micros().saturating_sub(ts));
                            } else {
                                tally.failed.add(1);
                            }
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break,
                    }
                }
            });
            clients.push((client, channel));
        }
        let mut batches = Vec::new();
        for _ in 0..sizes.media_rounds {
            let before = tally.seen.get();
            let cpu = CpuMeter::start(server.pid);
            let started = Instant::now();
            let mut uploads = JoinSet::new();
            for pair in pairs {
                let (http, base, photo, tally) =
                    (http.clone(), base.clone(), photo.clone(), tally.clone());
                let (session, token) = (pair.session, pair.customer.token.clone());
                uploads.spawn(async move {
                    let ts = now_micros();
                    let part = reqwest::multipart::Part::bytes(photo.to_vec())
                        .file_name("IMG.jpg")
                        .mime_str("image/jpeg")
                        .expect("a MIME type");
                    let uploaded = http
                        .post(format!("{base}/api/sessions/{session}/attachments"))
                        .bearer_auth(&token)
                        .multipart(reqwest::multipart::Form::new().part("file", part))
                        .send()
                        .await;
                    let attachment: Value = match uploaded {
                        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
                        _ => Value::Null,
                    };
                    tally
                        .upload_latency
                        .record(1, now_micros().saturating_sub(ts));
                    let Some(id) = attachment["id"].as_str() else {
                        tally.failed.add(1);
                        return;
                    };
                    let sent = http
                        .post(format!("{base}/api/sessions/{session}/messages"))
                        .bearer_auth(&token)
                        .json(&json!({
                            // New in every run and round: a repeated one is answered with
                            // the stored message and broadcasts nothing.
                            "client_id": format!("bench-media-{}", uuid::Uuid::new_v4()),
                            "body": format!("ts={ts}"),
                            "attachment_ids": [id],
                        }))
                        .send()
                        .await;
                    if !sent.is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED) {
                        tally.failed.add(1);
                    }
                });
            }
            while uploads.join_next().await.is_some() {}
            let seconds = started.elapsed().as_secs_f64();
            let server_cpu = cpu.cores();
            let deadline = Instant::now() + Duration::from_secs(30);
            while tally.seen.get() - before < pairs.len() as u64 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            server.check_alive()?;
            let batch = Batch {
                uploads: pairs.len(),
                seconds,
                photos_per_s: pairs.len() as f64 / seconds,
                mb_per_s: (pairs.len() * photo.len()) as f64 / 1e6 / seconds,
                server_cpu,
            };
            eprintln!(
                "  media {:<8} {} photos of {:.2} MB at once: {:.2} s, {:.1} photos/s, {:.1} MB/s",
                db.kind,
                batch.uploads,
                photo.len() as f64 / 1e6,
                batch.seconds,
                batch.photos_per_s,
                batch.mb_per_s
            );
            batches.push(batch);
        }
        for (client, _) in &clients {
            client.disconnect().await;
        }
        listeners.abort_all();
        let seen = LatencySummary::of(&tally.seen_latency.snapshot());
        let upload = LatencySummary::of(&tally.upload_latency.snapshot());
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let m: Metrics = vec![
            (
                "photos/s (50 at once)".into(),
                median(batches.iter().map(|b| b.photos_per_s).collect()),
            ),
            (
                "upload MB/s".into(),
                median(batches.iter().map(|b| b.mb_per_s).collect()),
            ),
            ("upload p50 ms".into(), upload.p50_ms),
            ("upload p99 ms".into(), upload.p99_ms),
            ("upload to thumbnail seen p50 ms".into(), seen.p50_ms),
            ("upload to thumbnail seen p99 ms".into(), seen.p99_ms),
            ("thumbnails seen".into(), seen.count as f64),
            ("failed".into(), tally.failed.get() as f64),
            (
                "server cores".into(),
                median(batches.iter().map(|b| b.server_cpu).collect()),
            ),
        ];
        anyhow::Ok(m)
    }
    .await;
    server.stop().await;
    result
}

pub async fn media(env: &Env) -> Vec<Outcome> {
    let photo = Arc::new(photo());
    let mut outcomes = Vec::new();
    for (db, fixture) in env.databases() {
        let mut outcome = Outcome::new(
            "media",
            System::Wrenchline.name(),
            Some(db.kind),
            json!({
                "uploads_at_once": env.sizes.media_uploads.min(fixture.pairs.len()),
                "rounds": env.sizes.media_rounds,
                "photo": format!("{}x{} JPEG, {} bytes", PHOTO.0, PHOTO.1, photo.len()),
                "latency": "upload started → message sent → postgres_changes INSERT at the mechanic → thumbnail fetched",
            }),
        );
        for r in 0..env.sizes.runs {
            eprintln!("media on {}: run {}/{}", db.kind, r + 1, env.sizes.runs);
            match run(env, db, fixture, photo.clone()).await {
                Ok(m) => outcome.add_run(&m, json!({})),
                Err(e) => {
                    eprintln!("  failed: {e:#}");
                    outcome.error.get_or_insert(format!("{e:#}"));
                }
            }
        }
        outcome.finish();
        outcomes.push(outcome);
    }
    outcomes
}
