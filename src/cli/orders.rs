//! `orders` and `order ID`: the running daemon's order journal, asked through its JSON
//! API (`/api/v1/orders`, `/api/v1/orders/{id}`) and printed as aligned tables for
//! people or as the API's JSON for scripts.
//!
//! The client only formats what the API answers: filters are passed through as
//! written, so that the API's checks and error messages are the only ones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::CliError;
use crate::config::Config;

/// How long one question to the daemon may take: it answers from its store, so a slow
/// answer means something is wrong, and a person is waiting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the daemon is: `--url`, else the configuration file's `listen`.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonAddress {
    /// The exporter's base URL, e.g. `http://127.0.0.1:8467`; `https://` and
    /// `http://user:password@host:port` (basic auth) work too. Default: from the
    /// configuration's `listen`, over plain HTTP.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The configuration file whose `listen` says where the daemon serves.
    #[arg(
        long,
        short,
        value_name = "FILE",
        default_value = "/etc/itnio-otp-exporter/config.yml"
    )]
    pub config: PathBuf,
}

/// `orders`: the filters of `GET /api/v1/orders`, each passed as written.
#[derive(Debug, Clone, clap::Args)]
pub struct OrdersArgs {
    /// Only this app.
    #[arg(long, value_name = "APP")]
    pub app_id: Option<String>,
    /// Only this country (ISO code, e.g. IN).
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
    #[arg(long)]
    pub mcc: Option<String>,
    #[arg(long)]
    pub mnc: Option<String>,
    /// Operator name or label (`airtel`, `Vodafone Idea`).
    #[arg(long)]
    pub operator: Option<String>,
    /// sms, call or sna (the first attempt's channel).
    #[arg(long)]
    pub channel: Option<String>,
    /// verified, unverified, undelivered, ... (final orders only).
    #[arg(long)]
    pub outcome: Option<String>,
    /// pending or final.
    #[arg(long)]
    pub state: Option<String>,
    /// Issued at or after: RFC 3339, relative (`15m`, `2h`, `7d`) or Unix milliseconds.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Issued before: RFC 3339, relative or Unix milliseconds.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// At most this many orders (the API's default is 100, its maximum 1000).
    #[arg(long, value_name = "N")]
    pub limit: Option<String>,
    /// Continue a listing: the cursor the previous page printed.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub daemon: DaemonAddress,
}

impl OrdersArgs {
    /// The query parameters, named as the API names them.
    fn params(&self) -> Vec<(&'static str, &str)> {
        [
            ("app_id", &self.app_id),
            ("country", &self.country),
            ("mcc", &self.mcc),
            ("mnc", &self.mnc),
            ("operator", &self.operator),
            ("channel", &self.channel),
            ("outcome", &self.outcome),
            ("state", &self.state),
            ("since", &self.since),
            ("until", &self.until),
            ("limit", &self.limit),
            ("cursor", &self.cursor),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}

/// `order ID`.
#[derive(Debug, Clone, clap::Args)]
pub struct OrderArgs {
    /// The order id, as in the spool file.
    pub order_id: String,
    /// Print the API's JSON instead of the readable view.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub daemon: DaemonAddress,
}

/// Errors of talking to the daemon, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--url {url:?} is not a URL ({detail}); e.g. --url http://127.0.0.1:8467")]
    BadUrl { url: String, detail: String },
    #[error("cannot set up an HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach the exporter at {url}: is it running there? Point elsewhere with --url URL, or --config FILE (its listen)")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{message} (HTTP {status} from {url})")]
    Api {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the answer from {url} is not the journal API's JSON ({detail}); is --url the exporter's address?")]
    BadAnswer { url: String, detail: String },
}

/// The daemon's base URL (no trailing slash): `--url`, else `http://` + the
/// configuration's `listen`, with an all-interfaces address asked on the loopback.
fn base_url(daemon: &DaemonAddress) -> Result<reqwest::Url, CliError> {
    let text = match &daemon.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{}", connect_address(listen_of(&daemon.config)?)),
    };
    reqwest::Url::parse(&text).map_err(|e| {
        CliError::Client(ClientError::BadUrl {
            url: text.clone(),
            detail: e.to_string(),
        })
    })
}

/// The configuration's `listen`, validated as `run` validates it. The API secret is
/// not needed to ask the daemon, so `${VAR}` references resolve to a stand-in: the
/// command works without the daemon's environment.
fn listen_of(path: &Path) -> Result<std::net::SocketAddr, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        CliError::Config(crate::config::ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    })?;
    let config = Config::from_yaml(&text, path, &|_| Some("not-used-by-the-cli".into()))?;
    Ok(config.listen)
}

/// Where to connect for a listen address: `0.0.0.0` / `[::]` mean every interface,
/// which includes the loopback one.
pub fn connect_address(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, listen.port())
}

/// `url` without its password, for messages.
fn shown(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

/// GETs `url` and returns the JSON answer, or the API's error message.
async fn get_json(url: reqwest::Url) -> Result<Value, ClientError> {
    let shown_url = shown(&url);
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(ClientError::Client)?;
    // reqwest sends the URL's user:password as basic auth.
    let answer = client
        .get(url)
        .send()
        .await
        .map_err(|source| ClientError::Unreachable {
            url: shown_url.clone(),
            source,
        })?;
    let status = answer.status();
    let body = answer
        .bytes()
        .await
        .map_err(|source| ClientError::Unreachable {
            url: shown_url.clone(),
            source,
        })?;
    let json: Result<Value, _> = serde_json::from_slice(&body);
    if !status.is_success() {
        let message = json
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&body);
                let text = text.trim();
                if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    text.chars().take(200).collect()
                }
            });
        return Err(ClientError::Api {
            url: shown_url,
            status: status.as_u16(),
            message,
        });
    }
    json.map_err(|e| ClientError::BadAnswer {
        url: shown_url,
        detail: e.to_string(),
    })
}

fn print_json(value: &Value) {
    // Serialising a Value cannot fail (its keys are strings).
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

pub async fn orders(args: OrdersArgs) -> Result<(), CliError> {
    let mut url = base_url(&args.daemon)?;
    url.set_path("/api/v1/orders");
    let params = args.params();
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    let answer = get_json(url.clone()).await?;
    if args.json {
        print_json(&answer);
        return Ok(());
    }
    let Some(orders) = answer.get("orders").and_then(Value::as_array) else {
        return Err(ClientError::BadAnswer {
            url: shown(&url),
            detail: "no \"orders\" list".into(),
        }
        .into());
    };
    print!(
        "{}",
        format::orders_table(orders, answer.get("next_cursor"), today())
    );
    Ok(())
}

pub async fn order(args: OrderArgs) -> Result<(), CliError> {
    let mut url = base_url(&args.daemon)?;
    url.set_path("/api/v1/orders/");
    if let Ok(mut segments) = url.path_segments_mut() {
        // Percent-encodes what an order id may hold that a path may not.
        segments.pop_if_empty().push(&args.order_id);
    }
    let answer = get_json(url).await?;
    if args.json {
        print_json(&answer);
    } else {
        print!("{}", format::order_view(&answer, today()));
    }
    Ok(())
}

fn today() -> chrono::NaiveDate {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(crate::clock::unix_now_ms())
        .unwrap_or_default()
        .date_naive()
}

pub mod format;
