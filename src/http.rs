//! The HTTP server: `/metrics`, a landing page, `/healthz` and `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::{self, Metrics};
use crate::status::Status;

/// What the landing page shows besides live status.
#[derive(Debug, Clone)]
pub struct PageInfo {
    pub spool_dir: String,
    pub state_dir: String,
    pub api_url: String,
    pub apps: Vec<String>,
}

#[derive(Clone)]
struct Ctx {
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    page: Arc<PageInfo>,
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
    mut shutdown: watch::Receiver<bool>,
) {
    let ctx = Ctx {
        metrics,
        status,
        page: Arc::new(page),
    };
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept HTTP connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(route(&ctx, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
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

fn route(ctx: &Ctx, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n",
        );
    }
    const TEXT: &str = "text/plain; charset=utf-8";
    match req.uri().path() {
        "/metrics" => response(StatusCode::OK, metrics::CONTENT_TYPE, ctx.metrics.render()),
        "/healthz" => {
            if ctx.status.scheduler_stalled(crate::clock::unix_now_ms()) {
                response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    "the scheduler has stopped ticking\n",
                )
            } else {
                response(StatusCode::OK, TEXT, "ok\n")
            }
        }
        "/readyz" => match ctx.status.not_ready_reason() {
            None => response(StatusCode::OK, TEXT, "ready\n"),
            Some(reason) => response(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{reason}\n")),
        },
        "/" => response(StatusCode::OK, "text/html; charset=utf-8", landing(ctx)),
        _ => response(StatusCode::NOT_FOUND, TEXT, "not found: try /metrics\n"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn landing(ctx: &Ctx) -> String {
    let s = &ctx.status;
    let api_up = s.api_up.load(Ordering::Relaxed);
    let problem = s.api_problem();
    let api_state = if api_up {
        "up".to_string()
    } else {
        format!("<b>down</b>: {}", escape(&problem))
    };
    let offset = s.clock_offset_secs.load(Ordering::Relaxed);
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ITNIO OTP exporter</title>
<style>body{{font-family:sans-serif;max-width:50em;margin:2em auto}}td{{padding:.2em 1em .2em 0}}</style></head>
<body><h1>ITNIO OTP exporter</h1>
<p>Version {version}. Prometheus metrics of OTP delivery health.</p>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/healthz">/healthz</a></li><li><a href="/readyz">/readyz</a></li></ul>
<table>
<tr><td>Ready</td><td>{ready}</td></tr>
<tr><td>Pending orders</td><td>{pending}</td></tr>
<tr><td>Apps</td><td>{apps}</td></tr>
<tr><td>Spool</td><td>{spool}</td></tr>
<tr><td>State</td><td>{state}</td></tr>
<tr><td>API</td><td>{api_url}</td></tr>
<tr><td>API state</td><td>{api_state}</td></tr>
<tr><td>Clock correction</td><td>{offset} s</td></tr>
</table></body></html>
"#,
        version = env!("CARGO_PKG_VERSION"),
        ready = s.ready(),
        pending = s.pending.load(Ordering::Relaxed),
        apps = escape(&ctx.page.apps.join(", ")),
        spool = escape(&ctx.page.spool_dir),
        state = escape(&ctx.page.state_dir),
        api_url = escape(&ctx.page.api_url),
    )
}
