//! Attachments on the desktop, without Tauri: which attachment a `wlmedia://` address names
//! (the webview loads photos, clips and voice notes from the shell, which fetches them with the
//! mechanic's token, so no token or server address ever reaches the page), the headers the
//! answer carries, and where "Save" puts a file (a name of the mechanic's choosing, made safe,
//! never over an existing file).

use std::path::{Path, PathBuf};

use uuid::Uuid;
use wrenchline_client::MediaVariant;

/// The URI scheme the shell registers: `wlmedia://localhost/{id}` (Linux, macOS) or
/// `http://wlmedia.localhost/{id}` (Windows), and `…/{id}/thumbnail`.
pub const SCHEME: &str = "wlmedia";

/// The attachment and variant an address path names: `/{id}` or `/{id}/thumbnail` (the slash
/// may arrive escaped as `%2F`). Anything else names nothing.
pub fn parse_path(path: &str) -> Option<(Uuid, MediaVariant)> {
    let path = path.replace("%2F", "/").replace("%2f", "/");
    let mut parts = path.trim_start_matches('/').split('/');
    let id = Uuid::parse_str(parts.next()?).ok()?;
    let variant = match parts.next() {
        None | Some("") => MediaVariant::File,
        Some("thumbnail") => MediaVariant::Thumbnail,
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((id, variant))
}

/// A file name the page sent percent-encoded (`encodeURIComponent`) in a header, decoded and
/// made safe; the server keeps none of it but the name travels with the upload.
pub fn upload_name(header: &str) -> String {
    let decoded: String = url::form_urlencoded::parse(format!("n={header}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    safe_file_name(&decoded)
}

/// Headers every media answer carries besides its type and range: the page may not sniff
/// another type into it, and nothing caches it on disk.
pub const RESPONSE_HEADERS: [(&str, &str); 3] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "private, no-store"),
    ("Accept-Ranges", "bytes"),
];

/// A file name from the page made safe for any file system: no directories, no control or
/// reserved characters, not empty, not hidden, at most 120 characters.
pub fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned
        .trim()
        .trim_start_matches('.')
        .trim_end_matches(['.', ' ']);
    let short: String = trimmed
        .chars()
        .rev()
        .take(120)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if short.is_empty() {
        "attachment".to_string()
    } else {
        short
    }
}

/// Where to save `name` in `dir`: the name itself, or `name (2).ext`, `name (3).ext`… when taken.
pub fn save_path(dir: &Path, name: &str) -> PathBuf {
    let name = safe_file_name(name);
    let candidate = dir.join(&name);
    if !candidate.exists() {
        return candidate;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
        _ => (name.clone(), String::new()),
    };
    (2..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .expect("an unused name exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b0f8a5e-5d27-4c4e-9d8e-3f1f2a3b4c5d";

    #[test]
    fn paths_name_a_file_or_its_thumbnail_and_nothing_else() {
        let id = Uuid::parse_str(ID).unwrap();
        assert_eq!(
            parse_path(&format!("/{ID}")),
            Some((id, MediaVariant::File))
        );
        assert_eq!(
            parse_path(&format!("/{ID}/thumbnail")),
            Some((id, MediaVariant::Thumbnail))
        );
        assert_eq!(
            parse_path(&format!("/{ID}%2Fthumbnail")),
            Some((id, MediaVariant::Thumbnail))
        );
        assert_eq!(parse_path("/../../etc/passwd"), None);
        assert_eq!(parse_path(&format!("/{ID}/other")), None);
        assert_eq!(parse_path(&format!("/{ID}/thumbnail/x")), None);
        assert_eq!(parse_path("/"), None);
    }

    #[test]
    fn upload_names_are_decoded_and_made_safe() {
        assert_eq!(upload_name("leak%20under%20car.jpg"), "leak under car.jpg");
        assert_eq!(upload_name("a%2Bb%26c.png"), "a+b&c.png");
        assert_eq!(upload_name("..%2F..%2Fx.png"), "x.png");
    }

    #[test]
    fn saved_names_stay_in_their_folder_and_never_overwrite() {
        assert_eq!(safe_file_name("../../.bashrc"), "bashrc");
        assert_eq!(safe_file_name("C:\\x\\photo?.jpg"), "photo_.jpg");
        assert_eq!(safe_file_name(" .. "), "attachment");
        let dir = std::env::temp_dir().join(format!("wl-save-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(save_path(&dir, "leak.jpg"), dir.join("leak.jpg"));
        std::fs::write(dir.join("leak.jpg"), b"x").unwrap();
        assert_eq!(save_path(&dir, "leak.jpg"), dir.join("leak (2).jpg"));
        std::fs::write(dir.join("leak (2).jpg"), b"x").unwrap();
        assert_eq!(save_path(&dir, "leak.jpg"), dir.join("leak (3).jpg"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
