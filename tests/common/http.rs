//! HTTP for the tests, through reqwest's blocking client: the tests are plain threads
//! driving child processes, so they need no async runtime of their own.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::Method;

/// One client for the whole test process. Pooling is off: a test kills an exporter
/// and starts the next on the same port, and a kept connection to the dead one
/// must not be reused; every request opens its own connection, as curl would.
fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            // Everything is on loopback; an http_proxy in the environment must not apply.
            .no_proxy()
            .build()
            .expect("reqwest client")
    })
}

/// A request to `url`; returns (status, body). Transport failures are errors,
/// every HTTP status is an answer.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String), reqwest::Error> {
    let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let mut req = client().request(method, url).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = req.send()?;
    let status = response.status().as_u16();
    Ok((status, response.text()?))
}

/// A request to `path` on `addr`; returns (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    request(method, &format!("http://{addr}{path}"), headers, body).map_err(std::io::Error::other)
}

pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http(addr, "GET", path, &[], "")
}

pub fn get_url(url: &str) -> Result<(u16, String), reqwest::Error> {
    request("GET", url, &[], "")
}
