//! The HTTP server: `/metrics` (or `--web.telemetry-path`), the on-call overview
//! (`/`), the order journal's pages (`pages`: `/orders`, `/orders/{id}`, `/breakdown`)
//! and JSON API (`api`: `/api/v1/…`), `/healthz` and `/readyz`; TLS, basic auth and
//! headers from the web configuration file (`web_config`); bounded against connection
//! floods (`limits`). The journal's pages and API show order ids: they are served and
//! protected exactly as `/metrics` is.
//!
//! `/healthz` and `/readyz` answer without basic auth (a documented choice): probes
//! (kubelet, systemd, load balancers) rarely carry credentials, and the probes tell
//! nothing but up or ready. They are still served over TLS when TLS is on.

mod api;
mod auth;
pub mod limits;
mod pages;
pub mod web_config;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use limits::{Activity, FloodLog, Watched};
pub use web_config::{WebConfig, WebConfigError};

use crate::metrics::{self, Metrics};
use crate::status::Status;
use crate::store::Store;

/// The state database, once the daemon has opened and loaded it (the server answers
/// before): the journal's pages and API read it.
pub type JournalHandle = Arc<OnceLock<Arc<Store>>>;

/// What the landing page shows besides live status.
#[derive(Debug, Clone)]
pub struct PageInfo {
    pub spool_dir: String,
    pub state_dir: String,
    pub api_url: String,
    pub apps: Vec<String>,
    /// Set by the daemon once the store is loaded.
    pub journal: JournalHandle,
}

/// How the server is exposed: the exporter conventions' `--web.*` flags.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where the metrics are served (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// TLS, users and headers (`--web.config.file`).
    pub web: WebConfig,
}

/// The metrics path when `--web.telemetry-path` is not given.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            telemetry_path: DEFAULT_TELEMETRY_PATH.to_string(),
            web: WebConfig::plain(),
        }
    }
}

#[derive(Clone)]
struct Ctx {
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    page: Arc<PageInfo>,
    telemetry_path: Arc<str>,
    users: Option<Arc<auth::BasicAuth>>,
    headers: Arc<Vec<(hyper::header::HeaderName, HeaderValue)>>,
    journal: JournalHandle,
    /// When the server started (Unix ms): the overview's uptime.
    started_ms: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    page: PageInfo,
    options: ServeOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = options.web.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let ctx = Ctx {
        metrics,
        status,
        journal: page.journal.clone(),
        started_ms: crate::clock::unix_now_ms(),
        page: Arc::new(page),
        telemetry_path: options.telemetry_path.into(),
        users: options.web.users.clone(),
        headers: Arc::new(options.web.headers.clone()),
    };
    let cap = limits::connection_cap(limits::nofile_soft_limit());
    let slots = Arc::new(Semaphore::new(cap));
    let flood = FloodLog::new(cap);
    tracing::debug!(max_connections = cap, "HTTP server limits");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically EMFILE: wait for descriptors to come back instead of spinning.
                flood.accept_failed(&e);
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Past the cap the connection is closed at once: a client learns it now, and
        // the descriptor is back before the next accept.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            flood.refused();
            drop(stream);
            continue;
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            serve_connection(stream, tls, ctx).await;
            drop(slot);
        });
    }
}

/// How long the accept loop waits after `accept` failed.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// One connection, bounded by the handshake, header-read and idle timeouts.
async fn serve_connection(stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>, ctx: Ctx) {
    let activity = Activity::new();
    let io = Watched::new(stream, activity.clone());
    match tls {
        None => limits::until_idle(http_connection(io, ctx), &activity).await,
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(limits::TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await;
            match handshake {
                Ok(Ok(tls_stream)) => {
                    limits::until_idle(http_connection(tls_stream, ctx), &activity).await
                }
                // A failed handshake is the client's problem (wrong CA, no client
                // certificate, a port scan): debug only, or a scanner fills the log.
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

/// HTTP/1.1 on an accepted (and maybe decrypted) stream.
async fn http_connection<I>(io: I, ctx: Ctx)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits::HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// Basic auth (except on the probes), the page, then the configured headers.
async fn handle(ctx: &Ctx, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
    let allowed = match (&ctx.users, probe) {
        (Some(users), false) => users.allows(req.headers().get(AUTHORIZATION)).await,
        _ => true,
    };
    let mut response = if allowed {
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        drop(req);
        route(ctx, get, &path, query.as_deref()).await
    } else {
        let mut r = response(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "Unauthorized\n",
        );
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        r
    };
    for (name, value) in ctx.headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn route(ctx: &Ctx, get: bool, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    if !get {
        return response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n",
        );
    }
    const TEXT: &str = "text/plain; charset=utf-8";
    match path {
        path if path == &*ctx.telemetry_path => {
            // Milliseconds of CPU with many series: on a blocking thread, not on an
            // async worker the scheduler needs.
            let metrics = Arc::clone(&ctx.metrics);
            match tokio::task::spawn_blocking(move || metrics.render()).await {
                Ok(body) => response(StatusCode::OK, metrics::CONTENT_TYPE, body),
                Err(_) => response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    "the metrics could not be rendered\n",
                ),
            }
        }
        "/healthz" => match ctx.status.liveness_problem(crate::clock::unix_now_ms()) {
            Some(problem) => response(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("{problem}\n"),
            ),
            None => response(StatusCode::OK, TEXT, "ok\n"),
        },
        "/readyz" => match ctx.status.not_ready_reason() {
            None => response(StatusCode::OK, TEXT, "ready\n"),
            Some(reason) => response(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{reason}\n")),
        },
        "/" => pages::landing(ctx).await,
        "/api" => api::route(ctx, path, query).await,
        path if path.starts_with("/api/") => api::route(ctx, path, query).await,
        "/orders" | "/breakdown" => pages::route(ctx, path, query).await,
        path if path.starts_with("/orders/") => pages::route(ctx, path, query).await,
        _ => response(
            StatusCode::NOT_FOUND,
            TEXT,
            format!("not found: try {}\n", ctx.telemetry_path),
        ),
    }
}

/// HTML-escapes text for element content and quoted attribute values: every
/// string on the landing page that is not a literal of this file goes through it.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The overview page: how the daemon is, then the last 15 minutes by country
/// (`countries`, from the journal, worst first, each row linking to its orders).
fn landing(ctx: &Ctx, now_ms: i64, countries: &str) -> String {
    let s = &ctx.status;
    let api_up = s.api_up.load(Ordering::Relaxed);
    let problem = s.api_problem();
    let api_state = if api_up {
        "up".to_string()
    } else {
        format!("<b class=\"bad\">down</b>: {}", escape(&problem))
    };
    let offset = s.clock_offset_secs.load(Ordering::Relaxed);
    let body = format!(
        r#"<h1>ITNIO OTP exporter</h1>
<p>Version {version}. Prometheus metrics of OTP delivery health.</p>
<ul id="links"><li><a href="{telemetry}">{telemetry}</a></li><li><a href="/orders" id="orders-link">/orders</a> (the order journal)</li><li><a href="/breakdown?by=operator&amp;since=15m" id="operators-link">operators, last 15 minutes</a></li><li><a href="/healthz">/healthz</a></li><li><a href="/readyz">/readyz</a></li></ul>
<table id="overview">
<tr id="ready"><td>Ready</td><td>{ready}</td></tr>
{overview}<tr id="apps"><td>Apps</td><td>{apps}</td></tr>
<tr><td>Spool</td><td>{spool}</td></tr>
<tr><td>State</td><td>{state}</td></tr>
<tr><td>API</td><td>{api_url}</td></tr>
<tr id="api-state" data-up="{api_up}"><td>API state</td><td>{api_state}</td></tr>
<tr><td>Clock correction</td><td>{offset} s</td></tr>
</table>
<h2 id="last-15-minutes">Last 15 minutes by country, worst first</h2>
{countries}"#,
        version = escape(env!("CARGO_PKG_VERSION")),
        telemetry = escape(&ctx.telemetry_path),
        ready = s.ready(),
        overview = pages::overview_rows(ctx, now_ms),
        apps = escape(&ctx.page.apps.join(", ")),
        spool = escape(&ctx.page.spool_dir),
        state = escape(&ctx.page.state_dir),
        api_url = escape(&ctx.page.api_url),
    );
    pages::layout("ITNIO OTP exporter", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Provider text (the API problem), paths and app ids reach the landing page:
    /// each is escaped, so none can open a tag or leave an attribute.
    #[test]
    fn every_dynamic_string_on_the_landing_page_is_escaped() {
        let hostile = r#"<script>alert('x')</script>"&"#;
        let status = Arc::new(Status::new());
        status.api_up.store(false, Ordering::Relaxed);
        status.set_api_problem(format!("provider said {hostile}"));
        let ctx = Ctx {
            metrics: Arc::new(Metrics::new(&["app<1>".to_string()])),
            status,
            page: Arc::new(PageInfo {
                spool_dir: format!("/spool/{hostile}"),
                state_dir: format!("/state/{hostile}"),
                api_url: format!("http://api.invalid/{hostile}"),
                apps: vec![format!("app-{hostile}")],
                journal: JournalHandle::default(),
            }),
            telemetry_path: format!("/m{hostile}").into(),
            users: None,
            headers: Arc::new(Vec::new()),
            journal: JournalHandle::default(),
            started_ms: 0,
        };
        let page = landing(&ctx, 1_000, "");
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("alert('x')"), "{page}");
        assert_eq!(
            page.matches("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;")
                .count(),
            8,
            "problem (now and last), spool, state, API, apps and the metrics link (twice): {page}"
        );
    }
}
