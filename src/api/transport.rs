//! How a signed record query travels, and its answer read whole (up to the body limit).
//!
//! Directly, hyper's HTTP/1 connections lent from a stack of idle ones
//! ([`Connections`]; TLS by rustls with the webpki roots, as reqwest's `rustls-tls`
//! does): the footprint bench measured reqwest alone at about 0.54 of a raw hyper
//! client's rate against the same server, hyper-util's pooled client at 0.76, and the
//! HTTP stack was most of the daemon's CPU per poll. Through reqwest
//! when the environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, either
//! case): reqwest honours those and `NO_PROXY`, the direct client does not.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, DATE, HOST, RETRY_AFTER, USER_AGENT};
use hyper::{Method, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;

use super::connections::Connections;
use super::ApiError;
use crate::config::ApiSettings;

const AGENT: &str = concat!("itnio-otp-exporter/", env!("CARGO_PKG_VERSION"));

/// An HTTP answer, its body read whole.
pub(super) struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<HeaderValue>,
    pub date: Option<HeaderValue>,
    pub body: Vec<u8>,
}

/// Why no whole answer came back.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// Connecting, sending, or reading the head failed (`connect_error`).
    #[error("connect_error: {0}")]
    Connect(String),
    /// The body broke off (`invalid_response`).
    #[error("invalid_response: cannot read the response body: {0}")]
    Body(String),
    /// `invalid_response`.
    #[error("response body larger than api.max_response_bytes ({limit} bytes); not read further")]
    TooLarge { limit: u64 },
}

#[derive(Debug)]
pub(super) enum Transport {
    Direct { connections: Connections },
    Proxied { client: reqwest::Client },
}

/// An endpoint's URL, parsed once for the transport that sends to it.
#[derive(Debug, Clone)]
pub(super) enum Target {
    Direct(DirectTarget),
    Proxied(reqwest::Url),
}

/// An endpoint as the direct transport sends to it: where to connect, and the
/// request's origin-form URI and `Host` header.
#[derive(Debug, Clone)]
pub(super) struct DirectTarget {
    uri: hyper::Uri,
    /// `scheme://authority`: which idle connections can carry its requests.
    origin: std::sync::Arc<str>,
    path: hyper::Uri,
    host: HeaderValue,
}

impl DirectTarget {
    fn new(uri: hyper::Uri) -> Result<DirectTarget, String> {
        let host = uri.host().ok_or("no host")?;
        let default_port = match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        };
        // The port only when it is not the scheme's own, as browsers and curl send it.
        let host = match uri.port_u16() {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_string(),
        };
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<hyper::Uri>()
            .map_err(|e| e.to_string())?;
        Ok(DirectTarget {
            host: HeaderValue::from_str(&host).map_err(|e| e.to_string())?,
            origin: super::connections::origin(&uri),
            uri,
            path,
        })
    }
}

impl Target {
    pub fn url(&self) -> String {
        match self {
            Target::Direct(target) => target.uri.to_string(),
            Target::Proxied(url) => url.to_string(),
        }
    }
}

/// A proxy named in the environment, as reqwest reads it.
fn proxy_in_environment() -> bool {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

impl Transport {
    pub fn new(api: &ApiSettings) -> Result<Transport, ApiError> {
        let connect_timeout = api.timeout.min(Duration::from_secs(5));
        let idle = Duration::from_secs(90);
        let keepalive = Duration::from_secs(60);
        if proxy_in_environment() {
            let client = reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .pool_idle_timeout(idle)
                .pool_max_idle_per_host(api.max_in_flight as usize)
                .tcp_keepalive(keepalive)
                // A redirect would replay the signed headers to another host.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(AGENT)
                .build()
                .map_err(ApiError::Client)?;
            return Ok(Transport::Proxied { client });
        }
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_keepalive(Some(keepalive));
        http.set_nodelay(true);
        http.enforce_http(false);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ApiError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // No redirects are followed: a 3xx is an answer like any other.
        let connections = Connections::new(https, api.max_in_flight as usize, idle);
        Ok(Transport::Direct { connections })
    }

    /// `url` parsed for this transport: an http(s) URL with a host.
    pub fn target(&self, url: &str) -> Result<Target, ApiError> {
        let bad_url = |detail: String| ApiError::Url {
            url: url.to_string(),
            detail,
        };
        match self {
            Transport::Proxied { .. } => reqwest::Url::parse(url)
                .map(Target::Proxied)
                .map_err(|e| bad_url(e.to_string())),
            Transport::Direct { .. } => {
                let uri: hyper::Uri = url.parse().map_err(|e| bad_url(format!("{e}")))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(bad_url("not an http:// or https:// URL with a host".into()));
                }
                DirectTarget::new(uri).map(Target::Direct).map_err(bad_url)
            }
        }
    }

    /// Sends `method` to `target` with `headers` (and `body`, if any) and reads the
    /// answer, its body up to `limit` bytes.
    pub async fn send(
        &self,
        method: Method,
        target: &Target,
        headers: HeaderMap,
        body: Vec<u8>,
        limit: u64,
    ) -> Result<Answer, Failure> {
        match (self, target) {
            (Transport::Direct { connections }, Target::Direct(target)) => {
                // Set in place: the builder moves its parts through every call.
                let mut request = hyper::Request::new(Full::new(Bytes::from(body)));
                *request.method_mut() = method;
                *request.uri_mut() = target.path.clone();
                *request.headers_mut() = headers;
                let sent = request.headers_mut();
                sent.insert(HOST, target.host.clone());
                sent.insert(USER_AGENT, HeaderValue::from_static(AGENT));
                let (response, lent) = connections
                    .send(&target.uri, &target.origin, request)
                    .await?;
                let (head, mut incoming) = response.into_parts();
                // A body left unread closes its connection (dropped with `lent`).
                refuse_declared_length(&head.headers, limit)?;
                let mut bytes = Vec::new();
                while let Some(frame) = incoming.frame().await {
                    let frame = frame.map_err(|e| Failure::Body(super::error_chain(&e)))?;
                    if let Ok(data) = frame.into_data() {
                        append(&mut bytes, &data, limit)?;
                    }
                }
                connections.give_back(lent);
                Ok(answer(head.status, &head.headers, bytes))
            }
            (Transport::Proxied { client }, Target::Proxied(url)) => {
                let mut request = client.request(method, url.clone()).headers(headers);
                if !body.is_empty() {
                    request = request.body(body);
                }
                let mut response = request
                    .send()
                    .await
                    .map_err(|e| Failure::Connect(super::error_chain(&e)))?;
                refuse_declared_length(response.headers(), limit)?;
                let mut bytes = Vec::new();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|e| Failure::Body(super::error_chain(&e)))?
                {
                    append(&mut bytes, &chunk, limit)?;
                }
                let status = StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                Ok(answer(status, response.headers(), bytes))
            }
            // Targets are made by `target` of the same transport.
            _ => Err(Failure::Connect(
                "the target was parsed for another transport".into(),
            )),
        }
    }
}

fn answer(status: StatusCode, headers: &HeaderMap, body: Vec<u8>) -> Answer {
    Answer {
        status,
        retry_after: headers.get(RETRY_AFTER).cloned(),
        date: headers.get(DATE).cloned(),
        body,
    }
}

/// A declared length above the limit is refused unread.
fn refuse_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), Failure> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit => Err(Failure::TooLarge { limit }),
        _ => Ok(()),
    }
}

/// An undeclared length is read chunk by chunk and dropped once past the limit.
fn append(body: &mut Vec<u8>, chunk: &[u8], limit: u64) -> Result<(), Failure> {
    if (body.len() + chunk.len()) as u64 > limit {
        return Err(Failure::TooLarge { limit });
    }
    body.extend_from_slice(chunk);
    Ok(())
}
