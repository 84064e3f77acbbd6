//! The `wlmedia` URI scheme: the webview loads an attachment (`wlmedia://localhost/{id}`, or
//! `…/{id}/thumbnail`) from the shell, which fetches it from the server with the mechanic's
//! token (`MechanicSession::media`), passing a player's `Range` on, so video and voice notes
//! seek. The page never holds a token or an address with one in it. Which addresses name what,
//! and the headers of the answer, are `wrenchline_desk_core::media`'s. Also the commands about
//! attachments: upload, the bytes for the page's players, save to disk.

use tauri::http::{header, Request, Response, StatusCode};
use tauri::{AppHandle, Manager, State, UriSchemeContext, UriSchemeResponder, Wry};
use uuid::Uuid;
use wrenchline_client::Upload;
use wrenchline_desk_core::media::{self, parse_path, RESPONSE_HEADERS};
use wrenchline_protocol::Attachment;

use crate::desk::Desk;
use crate::error::{Error, Result};

/// The protocol handler; answers from a task so the webview never waits on the main thread.
pub fn serve(
    ctx: UriSchemeContext<'_, Wry>,
    request: Request<Vec<u8>>,
    responder: UriSchemeResponder,
) {
    let app = ctx.app_handle().clone();
    let path = request.uri().path().to_string();
    let range = request
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    tauri::async_runtime::spawn(async move {
        let session = app.state::<Desk>().session();
        let answer = match (parse_path(&path), session) {
            (None, _) => plain(StatusCode::NOT_FOUND, "No such attachment."),
            (Some(_), Err(e)) => plain(StatusCode::UNAUTHORIZED, &e.to_string()),
            (Some((id, variant)), Ok(session)) => {
                match session.media(id, variant, range.as_deref()).await {
                    Ok(media) => {
                        let mut answer = Response::builder()
                            .status(media.status.as_u16())
                            .header(header::CONTENT_TYPE, media.content_type);
                        if let Some(content_range) = media.content_range {
                            answer = answer.header(header::CONTENT_RANGE, content_range);
                        }
                        for (name, value) in RESPONSE_HEADERS {
                            answer = answer.header(name, value);
                        }
                        answer
                            .header(header::CONTENT_LENGTH, media.bytes.len())
                            .body(media.bytes.to_vec())
                            .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "Bad answer."))
                    }
                    Err(e) => {
                        log::info!("attachment {id} not served: {e}");
                        let status = e
                            .status()
                            .and_then(|s| StatusCode::from_u16(s.as_u16()).ok())
                            .unwrap_or(StatusCode::BAD_GATEWAY);
                        plain(status, &e.to_string())
                    }
                }
            }
        };
        responder.respond(answer);
    });
}

fn plain(status: StatusCode, text: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(text.as_bytes().to_vec())
        .unwrap_or_default()
}

/// Uploads a file for a session: its bytes are the raw body of the call, the session, the name
/// (percent-encoded) and the declared type are the headers `x-session-id`, `x-file-name` and
/// `x-content-type`.
#[tauri::command(rename_all = "snake_case")]
pub async fn upload_attachment(
    desk: State<'_, Desk>,
    request: tauri::ipc::Request<'_>,
) -> Result<Attachment> {
    let tauri::ipc::InvokeBody::Raw(bytes) = request.body() else {
        return Err(Error::Invalid("The file must come as raw bytes.".into()));
    };
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let session_id = Uuid::parse_str(&header("x-session-id"))
        .map_err(|_| Error::Invalid("Which session is the file for?".into()))?;
    let upload = Upload::new(
        media::upload_name(&header("x-file-name")),
        header("x-content-type"),
        bytes.clone(),
    );
    Ok(desk.session()?.upload(session_id, upload).await?)
}

/// An attachment's whole file as raw bytes, for the page's players: WebKitGTK's media backend
/// cannot read a custom URI scheme, so audio and video play from a `blob:` URL made of these.
#[tauri::command(rename_all = "snake_case")]
pub async fn attachment_bytes(desk: State<'_, Desk>, id: Uuid) -> Result<tauri::ipc::Response> {
    let media = desk
        .session()?
        .media(id, wrenchline_client::MediaVariant::File, None)
        .await?;
    Ok(tauri::ipc::Response::new(media.bytes.to_vec()))
}

/// Saves an attachment into the Downloads folder (under a safe name that takes no other file's
/// place) and answers where.
#[tauri::command(rename_all = "snake_case")]
pub async fn save_attachment(
    app: AppHandle,
    desk: State<'_, Desk>,
    id: Uuid,
    file_name: String,
) -> Result<String> {
    let dir = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir().map(|home| home.join("Downloads")))
        .map_err(|e| Error::Internal(format!("no folder to save into: {e}")))?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Internal(format!("cannot create {}: {e}", dir.display())))?;
    let path = media::save_path(&dir, &file_name);
    desk.session()?.save_attachment(id, &path).await?;
    log::info!("attachment {id} saved to {}", path.display());
    Ok(path.display().to_string())
}
