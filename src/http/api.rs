//! The journal's JSON API under `/api/v1/`: `orders` (a filtered page, newest first),
//! `orders/{orderId}` (the whole entry and its timeline), `breakdown` (groups added
//! up). Errors are `{"error": "…"}`: 400 names the parameter and its value, 404 an
//! unknown order or path, 503 a journal that is off or not open yet.

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::{response, Ctx};
use crate::error::Chain;
use crate::journal::query::{self, detail_json};
use crate::store::{JournalReadError, Store};

const JSON: &str = "application/json";

/// Why the journal cannot be read now.
#[derive(Debug)]
pub(super) enum Unavailable {
    /// The state database is still loading (the server answers before it is open).
    NotOpen,
    /// `journal.enabled: false`.
    Off,
    /// The blocking read task ended without an answer.
    Failed(String),
}

impl Unavailable {
    pub(super) fn message(&self) -> String {
        match self {
            Unavailable::NotOpen => {
                "the order journal is not open yet (the state database is loading)".to_string()
            }
            Unavailable::Off => "the order journal is off (journal.enabled: false)".to_string(),
            Unavailable::Failed(why) => format!("reading the order journal failed: {why}"),
        }
    }

    pub(super) fn status(&self) -> StatusCode {
        match self {
            Unavailable::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Runs a read of the journal on the blocking pool: a long walk never holds up the
/// server's async threads.
pub(super) async fn read_journal<T, F>(ctx: &Ctx, read: F) -> Result<T, Unavailable>
where
    F: FnOnce(&Store) -> T + Send + 'static,
    T: Send + 'static,
{
    let store: Arc<Store> = ctx.journal.get().cloned().ok_or(Unavailable::NotOpen)?;
    if !store.journal_on() {
        return Err(Unavailable::Off);
    }
    tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(|e| Unavailable::Failed(e.to_string()))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes.push(b'\n');
    response(status, JSON, bytes)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": message.into() }))
}

/// Decodes `%XX` escapes of a path segment (`+` stays `+`: order ids may hold one).
pub(super) fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes a path segment: everything but letters, digits and `-._~` as `%XX`.
pub(super) fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/api/…`.
pub(super) async fn route(ctx: &Ctx, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let now_ms = crate::clock::unix_now_ms();
    let params = query::split_query(query);
    match path {
        "/api/v1/orders" => {
            let list = match query::parse_list(&params, now_ms, &[]) {
                Ok(q) => q,
                Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
            };
            match read_journal(ctx, move |store| store.journal_list(&list)).await {
                Ok(Ok(page)) => json_response(StatusCode::OK, &page.to_json()),
                Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, Chain(&e).to_string()),
                Err(u) => error(u.status(), u.message()),
            }
        }
        "/api/v1/breakdown" => {
            let q = match query::parse_breakdown(&params, now_ms) {
                Ok(q) => q,
                Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
            };
            match read_journal(ctx, move |store| store.journal_breakdown(&q)).await {
                Ok(Ok(b)) => json_response(StatusCode::OK, &b.to_json()),
                Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, Chain(&e).to_string()),
                Err(u) => error(u.status(), u.message()),
            }
        }
        _ => match path.strip_prefix("/api/v1/orders/") {
            Some(raw) if !raw.is_empty() && !raw.contains('/') => {
                let Some(order_id) = percent_decode(raw) else {
                    return error(StatusCode::NOT_FOUND, format!("no order {raw:?}"));
                };
                if !params.is_empty() {
                    let name = &params[0].0;
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("unknown parameter `{name}` (this path takes none)"),
                    );
                }
                let id = order_id.clone();
                match read_journal(ctx, move |store| store.journal_get(&id)).await {
                    Ok(Ok(Some(entry))) => json_response(StatusCode::OK, &detail_json(&entry)),
                    Ok(Ok(None)) => error(
                        StatusCode::NOT_FOUND,
                        format!("no journal entry for order {order_id:?} (never tracked, or evicted)"),
                    ),
                    Ok(Err(e @ JournalReadError::Damaged { .. })) => {
                        error(StatusCode::INTERNAL_SERVER_ERROR, Chain(&e).to_string())
                    }
                    Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, Chain(&e).to_string()),
                    Err(u) => error(u.status(), u.message()),
                }
            }
            _ => error(
                StatusCode::NOT_FOUND,
                format!("no such path {path:?}: try /api/v1/orders, /api/v1/orders/{{orderId}} or /api/v1/breakdown"),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_round_trip_every_visible_ascii_id() {
        let id = "a+b/c?d#e%f<g>&\"'`~";
        let enc = percent_encode(id);
        assert!(enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        assert_eq!(percent_decode(&enc).as_deref(), Some(id));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
