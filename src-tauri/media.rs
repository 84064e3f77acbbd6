//! The `wlmedia` URI scheme: the webview loads an attachment (`wlmedia://localhost/{id}`, or
//! `…/{id}/thumbnail`) from the shell, which fetches it from the server with the mechanic's
//! token (`MechanicSession::media`), passing a player's `Range` on, so video and voice notes
//! seek. The page never holds a token or an address with one in it. Which addresses name what,
//! and the headers of the answer, are `wrenchline_desk_core::media`'s.

use tauri::http::{header, Request, Response, StatusCode};
use tauri::{Manager, UriSchemeContext, UriSchemeResponder, Wry};
use wrenchline_desk_core::media::{parse_path, RESPONSE_HEADERS};

use crate::desk::Desk;

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
