//! Desktop updates: the dynamic update check tauri-plugin-updater calls and the release download,
//! against a releases folder holding a real artifact signed with a throwaway updater key, in
//! Tauri's formats (a `.sig` is base64 of a minisign signature, the pubkey base64 of a minisign
//! public key), verified the way the updater plugin does it (`minisign-verify`).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app_with, Actor, TestApp};

const DEB: &str = "Wrenchline_0.2.0_amd64.deb";

/// A Tauri-format updater key pair made for this test only.
struct UpdaterKey {
    pk: minisign::PublicKey,
    sk: minisign::SecretKey,
    /// What `plugins.updater.pubkey` holds.
    pubkey_base64: String,
}

impl UpdaterKey {
    fn generate() -> Self {
        let minisign::KeyPair { pk, sk } =
            minisign::KeyPair::generate_unencrypted_keypair().expect("generate key");
        let pubkey_base64 = BASE64.encode(pk.to_box().expect("public key box").to_string());
        UpdaterKey {
            pk,
            sk,
            pubkey_base64,
        }
    }

    /// The content of the `.sig` file `tauri signer sign` writes for `data`.
    fn sign(&self, data: &[u8], file: &str) -> String {
        let signature = minisign::sign(
            Some(&self.pk),
            &self.sk,
            Cursor::new(data),
            Some(&format!("file:{file}")),
            Some("signature from tauri secret key"),
        )
        .expect("sign");
        BASE64.encode(signature.to_string())
    }
}

/// How tauri-plugin-updater checks a download: decode both base64 layers, then minisign.
fn updater_verifies(pubkey_base64: &str, signature_base64: &str, data: &[u8]) -> bool {
    let decode = |s: &str| String::from_utf8(BASE64.decode(s).expect("base64")).expect("utf-8");
    let pk = minisign_verify::PublicKey::decode(&decode(pubkey_base64)).expect("public key");
    let signature =
        minisign_verify::Signature::decode(&decode(signature_base64)).expect("signature");
    pk.verify(data, &signature, true).is_ok()
}

struct Releases {
    dir: PathBuf,
    key: UpdaterKey,
    deb: Vec<u8>,
}

impl Drop for Releases {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_release(dir: &Path, version: &str, platforms: Value) {
    let folder = dir.join(version);
    std::fs::create_dir_all(&folder).unwrap();
    let release = json!({
        "version": version,
        "notes": format!("Wrenchline {version}"),
        "pub_date": "2026-11-25T12:00:00Z",
        "platforms": platforms,
    });
    std::fs::write(folder.join("release.json"), release.to_string()).unwrap();
}

/// 0.1.5 and 0.2.0 for Linux, 0.3.0 for Apple silicon only, and a stray file outside any release.
fn releases() -> Releases {
    let dir = std::env::temp_dir().join(format!("wl-releases-{}", Uuid::new_v4()));
    let key = UpdaterKey::generate();
    // Stands in for a .deb: real bytes, signed for real; contents do not matter to the server.
    let deb: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();

    let older = b"wrenchline 0.1.5".to_vec();
    write_release(
        &dir,
        "0.1.5",
        json!({"linux-x86_64": {"file": "Wrenchline_0.1.5_amd64.deb", "signature": key.sign(&older, "Wrenchline_0.1.5_amd64.deb")}}),
    );
    std::fs::write(dir.join("0.1.5/Wrenchline_0.1.5_amd64.deb"), &older).unwrap();

    let rpm = b"wrenchline 0.2.0 rpm".to_vec();
    write_release(
        &dir,
        "0.2.0",
        json!({
            "linux-x86_64": {"file": DEB, "signature": key.sign(&deb, DEB)},
            "linux-x86_64-deb": {"file": DEB, "signature": key.sign(&deb, DEB)},
            "linux-x86_64-rpm": {"file": "Wrenchline-0.2.0-1.x86_64.rpm", "signature": key.sign(&rpm, "Wrenchline-0.2.0-1.x86_64.rpm")},
        }),
    );
    std::fs::write(dir.join("0.2.0").join(DEB), &deb).unwrap();
    std::fs::write(dir.join("0.2.0/Wrenchline-0.2.0-1.x86_64.rpm"), &rpm).unwrap();
    std::fs::write(dir.join("0.2.0/notes-draft.txt"), b"not listed").unwrap();

    let app_tar = b"wrenchline 0.3.0 app".to_vec();
    write_release(
        &dir,
        "0.3.0",
        json!({"darwin-aarch64": {"file": "Wrenchline.app.tar.gz", "signature": key.sign(&app_tar, "Wrenchline.app.tar.gz")}}),
    );
    std::fs::write(dir.join("0.3.0/Wrenchline.app.tar.gz"), &app_tar).unwrap();

    std::fs::write(dir.join("secret.txt"), b"outside every release").unwrap();
    Releases { dir, key, deb }
}

async fn app_serving(releases: &Releases) -> TestApp {
    let dir = releases.dir.clone();
    spawn_app_with(move |settings| settings.releases_dir = Some(dir)).await
}

async fn get_bytes(app: &TestApp, url: &str) -> (StatusCode, Vec<u8>) {
    let response = app.http.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn current_or_newer_versions_get_no_update() {
    let releases = releases();
    let app = app_serving(&releases).await;
    for current in ["0.2.0", "0.2.1", "1.0.0"] {
        let (status, body) = app
            .get(
                &format!("/api/desk/updates/linux/x86_64/{current}"),
                &Actor::Anonymous,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{current}: {body}");
        assert_eq!(body, Value::Null);
    }
    // 0.3.0 exists, but not for this platform.
    let (status, _) = app
        .get("/api/desk/updates/windows/x86_64/0.1.0", &Actor::Anonymous)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_older_version_gets_the_newest_release_for_its_platform() {
    let releases = releases();
    let app = app_serving(&releases).await;

    let (status, manifest) = app
        .get("/api/desk/updates/linux/x86_64/0.1.0", &Actor::Anonymous)
        .await;
    assert_eq!(status, StatusCode::OK, "{manifest}");
    assert_eq!(manifest["version"], "0.2.0");
    assert_eq!(manifest["notes"], "Wrenchline 0.2.0");
    assert_eq!(manifest["pub_date"], "2026-11-25T12:00:00Z");
    assert_eq!(
        manifest["url"],
        format!("{}/api/desk/releases/0.2.0/{DEB}", app.base)
    );
    assert!(manifest["signature"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));

    let (status, rpm) = app
        .get(
            "/api/desk/updates/linux/x86_64/0.1.5?bundle_type=rpm",
            &Actor::Anonymous,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(rpm["url"]
        .as_str()
        .unwrap()
        .ends_with("/Wrenchline-0.2.0-1.x86_64.rpm"));

    let (status, mac) = app
        .get("/api/desk/updates/darwin/aarch64/0.1.0", &Actor::Anonymous)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mac["version"], "0.3.0");
}

#[tokio::test]
async fn the_download_verifies_against_the_manifest_signature_and_a_tampered_one_does_not() {
    let releases = releases();
    let app = app_serving(&releases).await;
    let (_, manifest) = app
        .get("/api/desk/updates/linux/x86_64/0.1.0", &Actor::Anonymous)
        .await;
    let signature = manifest["signature"].as_str().unwrap();

    let (status, bytes) = get_bytes(&app, manifest["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, releases.deb);
    assert!(updater_verifies(
        &releases.key.pubkey_base64,
        signature,
        &bytes
    ));

    let mut tampered = bytes.clone();
    tampered[bytes.len() / 2] ^= 0x01;
    assert!(!updater_verifies(
        &releases.key.pubkey_base64,
        signature,
        &tampered
    ));

    let other = UpdaterKey::generate();
    assert!(!updater_verifies(&other.pubkey_base64, signature, &bytes));
}

#[tokio::test]
async fn release_downloads_cannot_leave_the_listed_files() {
    let releases = releases();
    let app = app_serving(&releases).await;
    for path in [
        "/api/desk/releases/0.2.0/..%2F..%2Fsecret.txt",
        "/api/desk/releases/0.2.0/..%2Fsecret.txt",
        "/api/desk/releases/..%2F0.2.0/release.json",
        "/api/desk/releases/0.2.0%2F..%2F..%2F/secret.txt",
        "/api/desk/releases/0.2.0/%2Fetc%2Fpasswd",
        "/api/desk/releases/0.2.0/release.json",
        "/api/desk/releases/0.2.0/notes-draft.txt",
        "/api/desk/releases/0.2.0/Wrenchline_9.9.9_amd64.deb",
        "/api/desk/releases/0.2.0/.",
        "/api/desk/releases/0.2/Wrenchline_0.2.0_amd64.deb",
        "/api/desk/releases/9.9.9/Wrenchline_0.2.0_amd64.deb",
        "/api/desk/releases/0.1.5/Wrenchline_0.2.0_amd64.deb",
    ] {
        let (status, body) = get_bytes(&app, &format!("{}{path}", app.base)).await;
        assert!(status.is_client_error(), "{path}: {status}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("outside every release"), "{path}: {text}");
        assert!(!text.contains("root:"), "{path}: {text}");
    }

    let (status, body) = app
        .get(
            "/api/desk/releases/0.2.0/..%2Fsecret.txt",
            &Actor::Anonymous,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_file_name");
    assert!(body["message"].is_string());

    let (status, body) = app
        .get(
            "/api/desk/updates/linux/x86_64/not-a-version",
            &Actor::Anonymous,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_version");

    let (status, _) = app
        .get("/api/desk/updates/..%2F/x86_64/0.1.0", &Actor::Anonymous)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_a_releases_folder_updates_are_not_found() {
    let app = spawn_app_with(|_| {}).await;
    for path in [
        "/api/desk/updates/linux/x86_64/0.1.0",
        "/api/desk/releases/0.2.0/Wrenchline_0.2.0_amd64.deb",
    ] {
        let (status, body) = app.get(path, &Actor::Anonymous).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"], "updates_not_configured");
        assert!(body["message"].is_string());
    }
}

#[tokio::test]
async fn a_download_is_sent_as_stored_even_to_a_client_that_takes_compression() {
    let releases = releases();
    let app = app_serving(&releases).await;
    let url = format!("{}/api/desk/releases/0.2.0/{DEB}", app.base);
    let response = app
        .http
        .get(&url)
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("content-encoding").is_none(),
        "{:?}",
        response.headers()
    );
    assert_eq!(
        response.headers()["content-length"],
        releases.deb.len().to_string().as_str()
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), releases.deb);
}

/// A release whose package is larger than the sockets between test and server can buffer, so a
/// download whose body is not read stays under way.
fn large_release() -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("wl-releases-{}", Uuid::new_v4()));
    let file = "Wrenchline_0.9.0_amd64.deb";
    write_release(
        &dir,
        "0.9.0",
        json!({"linux-x86_64": {"file": file, "signature": "unused"}}),
    );
    let package: Vec<u8> = (0..64 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("0.9.0").join(file), package).unwrap();
    (dir, format!("/api/desk/releases/0.9.0/{file}"))
}

#[tokio::test]
async fn downloads_beyond_the_cap_are_told_to_come_back() {
    let (dir, path) = large_release();
    let served = dir.clone();
    let app = spawn_app_with(move |s| {
        s.releases_dir = Some(served);
        s.limits.release_downloads_at_once = 1;
    })
    .await;
    let url = format!("{}{path}", app.base);
    // Headers arrive while the package is still being read from disk and sent.
    let mut under_way = reqwest::get(&url).await.unwrap();
    assert_eq!(under_way.status(), StatusCode::OK);
    assert_eq!(
        under_way.headers()["content-length"],
        (64 * 1024 * 1024).to_string().as_str()
    );
    let first = under_way.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());

    let busy = reqwest::get(&url).await.unwrap();
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = busy.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = busy.json().await.unwrap();
    assert_eq!(body["error"], "downloads_busy", "{body}");

    // A client that goes away frees its place.
    drop(under_way);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let response = reqwest::get(&url).await.unwrap();
        if response.status() == StatusCode::OK {
            assert_eq!(response.bytes().await.unwrap().len(), 64 * 1024 * 1024);
            break;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(tokio::time::Instant::now() < deadline, "never freed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
