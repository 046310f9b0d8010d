//! The direct transport's connections to the provider: HTTP/1.1 keep-alive connections,
//! each driven by a task of its own and lent to one request at a time.
//!
//! Why not hyper-util's pooled client: its per-request work (the pool's map and locks,
//! the request's URI rewritten, extensions, a pooled wrapper) cost the footprint bench
//! about a quarter of the raw hyper connection's rate. One or two provider hosts (the
//! record endpoint's, `account.balance_url`'s) and at most `api.max_in_flight`
//! connections need only a stack of idle senders, each marked with its origin.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service as _;

use super::transport::Failure;

type Sender = SendRequest<Full<Bytes>>;

/// Idle connections to the provider, most recently used on top.
#[derive(Debug)]
pub(super) struct Connections {
    connector: HttpsConnector<HttpConnector>,
    idle: Mutex<Vec<Idle>>,
    /// Idle connections kept beyond this many are closed.
    max_idle: usize,
    /// An idle connection older than this is closed rather than reused: a provider's
    /// load balancer may drop it silently.
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    /// Where it goes: `scheme://host:port` ([`origin`]).
    origin: Arc<str>,
    since: Instant,
}

/// A URL's origin (`scheme://authority`): a connection serves requests to its own only.
pub(super) fn origin(uri: &Uri) -> Arc<str> {
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = uri.authority().map_or("", |a| a.as_str());
    Arc::from(format!("{scheme}://{authority}"))
}

/// A connection lent to one request; [`Connections::give_back`] returns it once its
/// answer was read whole, otherwise it closes when dropped.
pub(super) struct Lent {
    sender: Sender,
    origin: Arc<str>,
    /// Taken from the idle stack (it may have closed meanwhile), not new.
    reused: bool,
}

impl Connections {
    pub(super) fn new(
        connector: HttpsConnector<HttpConnector>,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Connections {
        Connections {
            connector,
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// Sends `request` (origin-form, with its `Host`) to `uri`'s host on an idle
    /// connection or a new one. A request that never went out because a reused
    /// connection had closed meanwhile (the server's keep-alive ended) is sent again
    /// once, on a new connection.
    pub(super) async fn send(
        &self,
        uri: &Uri,
        origin: &Arc<str>,
        request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lent), Failure> {
        let mut lent = self.take(uri, origin).await?;
        let mut request = request;
        loop {
            match lent.sender.ready().await {
                Ok(()) => match lent.sender.try_send_request(request).await {
                    Ok(response) => return Ok((response, lent)),
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if lent.reused => request = unsent,
                        _ => return Err(Failure::Connect(super::error_chain(e.error()))),
                    },
                },
                // Closed while idle: nothing was sent.
                Err(_) if lent.reused => {}
                Err(e) => return Err(Failure::Connect(super::error_chain(&e))),
            }
            lent = self.fresh(uri, origin).await?;
        }
    }

    /// Keeps a connection whose answer was read whole for the next request.
    pub(super) fn give_back(&self, lent: Lent) {
        if lent.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(Idle {
                sender: lent.sender,
                origin: lent.origin,
                since: Instant::now(),
            });
        }
    }

    /// The most recently used idle connection to `origin` still open and not too old,
    /// or a new one.
    async fn take(&self, uri: &Uri, origin: &Arc<str>) -> Result<Lent, Failure> {
        let now = Instant::now();
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // The oldest are at the bottom: those past the idle timeout go first.
            let expired = idle
                .iter()
                .take_while(|c| now.duration_since(c.since) > self.idle_timeout)
                .count();
            idle.drain(..expired);
            // The top one nearly always (one origin, or the record endpoint's).
            while let Some(at) = idle.iter().rposition(|c| c.origin == *origin) {
                let c = idle.remove(at);
                if !c.sender.is_closed() {
                    return Ok(Lent {
                        sender: c.sender,
                        origin: c.origin,
                        reused: true,
                    });
                }
            }
        }
        self.fresh(uri, origin).await
    }

    /// A new connection, lent.
    async fn fresh(&self, uri: &Uri, origin: &Arc<str>) -> Result<Lent, Failure> {
        Ok(Lent {
            // Boxed: opening a connection (TCP, then TLS) is a large future and a rare
            // one; inline, it made every query's task 4 KiB instead of 1.7 KiB, copied
            // whole at each spawn.
            sender: Box::pin(self.connect(uri)).await?,
            origin: origin.clone(),
            reused: false,
        })
    }

    /// A new connection (TCP, then TLS for https), its task spawned on the caller's
    /// runtime.
    async fn connect(&self, uri: &Uri) -> Result<Sender, Failure> {
        let io = self
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(|e| Failure::Connect(super::error_chain(&*e)))?;
        let (sender, connection) = http1::handshake(io)
            .await
            .map_err(|e| Failure::Connect(super::error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %super::error_chain(&e), "provider connection closed");
            }
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

    use super::super::transport::{Target, Transport};
    use crate::config::{ApiSettings, Secret};

    /// What the test server saw: connections accepted, and each request's `Host` and
    /// request line.
    #[derive(Default)]
    struct Seen {
        connections: AtomicUsize,
        requests: Mutex<Vec<(String, String)>>,
    }

    /// How the test server answers each request on a connection.
    #[derive(Clone, Copy)]
    enum Serve {
        /// Keep-alive: answers every request on the connection.
        KeepAlive,
        /// Closes the connection after each answer (without saying so), as a
        /// server whose keep-alive timeout is shorter than the client's does.
        CloseAfterEach,
        /// Declares a body longer than the client's limit.
        TooLong,
    }

    /// Reads one request (head and `content-length` body); `None` at end of stream.
    async fn read_request(socket: &mut (impl AsyncRead + Unpin)) -> Option<String> {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while data.len() < end + 4 + length {
                    let n = socket.read(&mut buf).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    data.extend_from_slice(&buf[..n]);
                }
                return Some(head);
            }
            let n = socket.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            data.extend_from_slice(&buf[..n]);
        }
    }

    async fn server(serve: Serve) -> (String, Arc<Seen>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let stats = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                stats.connections.fetch_add(1, Ordering::SeqCst);
                let stats = stats.clone();
                tokio::spawn(async move {
                    while let Some(head) = read_request(&mut socket).await {
                        let line = head.lines().next().unwrap_or_default().to_string();
                        let host = head
                            .lines()
                            .find_map(|l| l.strip_prefix("host: "))
                            .unwrap_or_default()
                            .to_string();
                        stats.requests.lock().unwrap().push((host, line));
                        let response: &[u8] = match serve {
                            Serve::TooLong => {
                                b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n{}"
                            }
                            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
                        };
                        if socket.write_all(response).await.is_err() {
                            return;
                        }
                        if !matches!(serve, Serve::KeepAlive) {
                            let _ = socket.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        (
            format!("http://{addr}/otp/verification/orderId/record?x=1"),
            seen,
        )
    }

    fn settings() -> ApiSettings {
        ApiSettings {
            base_url: "http://127.0.0.1:9".into(),
            api_key: "key".into(),
            secret: Secret::new("secret"),
            timeout: std::time::Duration::from_secs(5),
            max_in_flight: 4,
            max_requests_per_second: 10,
            timezone: chrono::FixedOffset::east_opt(0).unwrap(),
            max_response_bytes: 4096,
        }
    }

    fn transport() -> Transport {
        Transport::new(&settings()).unwrap()
    }

    async fn send(transport: &Transport, target: &Target) -> Result<Vec<u8>, String> {
        transport
            .send(
                hyper::Method::POST,
                target,
                hyper::HeaderMap::new(),
                b"{}".to_vec(),
                4096,
            )
            .await
            .map(|a| a.body)
            .map_err(|e| e.to_string())
    }

    /// Every query is a task of its own, its future copied whole when it is spawned:
    /// opening a connection (TCP, TLS), large and rare, stays boxed out of it.
    #[test]
    fn a_query_future_stays_small() {
        let client = crate::api::ApiClient::new(&settings()).unwrap();
        let query = client.query("app", "order-1");
        let bytes = std::mem::size_of_val(&query);
        assert!(bytes <= 2048, "a query's future is {bytes} bytes");
    }

    #[tokio::test]
    async fn one_connection_serves_queries_in_turn_with_the_urls_host_and_path() {
        let (url, seen) = server(Serve::KeepAlive).await;
        let transport = transport();
        let target = transport.target(&url).unwrap();
        for _ in 0..5 {
            assert_eq!(send(&transport, &target).await.unwrap(), b"{}");
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
        let requests = seen.requests.lock().unwrap().clone();
        let port = url
            .split(':')
            .nth(2)
            .and_then(|p| p.split('/').next())
            .unwrap();
        assert_eq!(requests.len(), 5);
        assert!(
            requests
                .iter()
                .all(|(host, line)| host == &format!("127.0.0.1:{port}")
                    && line == "POST /otp/verification/orderId/record?x=1 HTTP/1.1"),
            "{requests:?}"
        );
    }

    #[tokio::test]
    async fn queries_in_flight_together_each_get_a_connection_and_keep_it() {
        let (url, seen) = server(Serve::KeepAlive).await;
        let transport = Arc::new(transport());
        let target = Arc::new(transport.target(&url).unwrap());
        for _ in 0..3 {
            let mut together = tokio::task::JoinSet::new();
            for _ in 0..4 {
                let (transport, target) = (transport.clone(), target.clone());
                together.spawn(async move { send(&transport, &target).await });
            }
            while let Some(sent) = together.join_next().await {
                assert_eq!(sent.unwrap().unwrap(), b"{}");
            }
        }
        // Four at a time: at most four connections (`max_in_flight` idle kept), reused.
        let connections = seen.connections.load(Ordering::SeqCst);
        assert!((1..=4).contains(&connections), "{connections}");
        assert_eq!(seen.requests.lock().unwrap().len(), 12);
    }

    /// https: the connector's TLS (rustls, the server's certificate checked against the
    /// roots it is given), then requests in turn over the one TLS connection.
    #[tokio::test]
    async fn https_connections_are_kept_alive_too() {
        let (cert, acceptor) = super::super::self_signed_tls();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let stats = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                stats.connections.fetch_add(1, Ordering::SeqCst);
                let (acceptor, stats) = (acceptor.clone(), stats.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    while let Some(head) = read_request(&mut tls).await {
                        stats.requests.lock().unwrap().push((String::new(), head));
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                        if tls.write_all(answer).await.is_err() || tls.flush().await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client_tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let connections = super::Connections::new(https, 4, std::time::Duration::from_secs(90));
        let uri: hyper::Uri = format!("https://localhost:{port}/otp").parse().unwrap();
        let origin = super::origin(&uri);
        for _ in 0..3 {
            let mut request =
                hyper::Request::new(http_body_util::Full::new(hyper::body::Bytes::new()));
            *request.uri_mut() = "/otp".parse().unwrap();
            request.headers_mut().insert(
                hyper::header::HOST,
                format!("localhost:{port}").parse().unwrap(),
            );
            let (response, lent) = connections.send(&uri, &origin, request).await.unwrap();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(&body[..], b"{}");
            connections.give_back(lent);
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
        assert_eq!(seen.requests.lock().unwrap().len(), 3);
    }

    /// `account.balance_url` may name another host than the record endpoint: each
    /// request goes over a connection to its own.
    #[tokio::test]
    async fn a_connection_serves_its_own_origin_only() {
        let (first_url, first) = server(Serve::KeepAlive).await;
        let (second_url, second) = server(Serve::KeepAlive).await;
        let transport = transport();
        let targets = [
            transport.target(&first_url).unwrap(),
            transport.target(&second_url).unwrap(),
        ];
        for _ in 0..3 {
            for target in &targets {
                assert_eq!(send(&transport, target).await.unwrap(), b"{}");
            }
        }
        for seen in [first, second] {
            assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
            assert_eq!(seen.requests.lock().unwrap().len(), 3);
        }
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_not_reused() {
        let (url, seen) = server(Serve::CloseAfterEach).await;
        let transport = transport();
        let target = transport.target(&url).unwrap();
        for _ in 0..3 {
            assert_eq!(send(&transport, &target).await.unwrap(), b"{}");
            // The connection's task notices the close.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_connection_whose_answer_was_not_read_whole_is_closed() {
        let (url, seen) = server(Serve::TooLong).await;
        let transport = transport();
        let target = transport.target(&url).unwrap();
        for _ in 0..2 {
            let failed = send(&transport, &target).await.unwrap_err();
            assert!(
                failed.contains("larger than api.max_response_bytes"),
                "{failed}"
            );
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_idle_connection_past_its_timeout_is_replaced() {
        let (url, seen) = server(Serve::KeepAlive).await;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let connections = super::Connections::new(https, 4, std::time::Duration::from_millis(100));
        let uri: hyper::Uri = url.parse().unwrap();
        let origin = super::origin(&uri);
        let request = || {
            let mut r = hyper::Request::new(http_body_util::Full::new(hyper::body::Bytes::new()));
            *r.uri_mut() = "/".parse().unwrap();
            r.headers_mut()
                .insert(hyper::header::HOST, "x".parse().unwrap());
            r
        };
        for pause_ms in [0, 10, 300] {
            tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
            let (response, lent) = connections.send(&uri, &origin, request()).await.unwrap();
            let _ = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap();
            connections.give_back(lent);
        }
        // Reused after 10 ms, replaced after 300 ms (timeout 100 ms).
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    }
}
