//! `api.max_in_flight` and `api.max_requests_per_second` hold under a backlog, measured
//! by a provider stand-in that records when each query arrives and how many overlap.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Answers every record query with "no record" after `latency`, on keep-alive connections.
struct CountingProvider {
    addr: std::net::SocketAddr,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    max_concurrent: Arc<AtomicUsize>,
}

const LATENCY: Duration = Duration::from_millis(150);

fn serve_connection(
    stream: std::net::TcpStream,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    current: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut content_length = 0usize;
        let mut line = String::new();
        // Request line and headers.
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        arrivals.lock().unwrap().push(Instant::now());
        std::thread::sleep(LATENCY);
        current.fetch_sub(1, Ordering::SeqCst);
        let answer = r#"{"status":"0","reason":"success","data":null}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

impl CountingProvider {
    fn start() -> CountingProvider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let max_concurrent = Arc::new(AtomicUsize::new(0));
        let current = Arc::new(AtomicUsize::new(0));
        let (a, m) = (arrivals.clone(), max_concurrent.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (a, c, m) = (a.clone(), current.clone(), m.clone());
                std::thread::spawn(move || serve_connection(stream, a, c, m));
            }
        });
        CountingProvider {
            addr,
            arrivals,
            max_concurrent,
        }
    }
}

/// Runs the exporter with a 300-order backlog against a fresh provider for `secs`.
fn run_backlog(max_in_flight: u32, max_rps: u32, secs: u64) -> (Vec<Instant>, usize) {
    let provider = CountingProvider::start();
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = exporter_config(
        tmp.path(),
        addr,
        &format!("http://{}/otp", provider.addr),
        "",
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "max_in_flight: 16",
            &format!("max_in_flight: {max_in_flight}"),
        )
        .replace(
            "max_requests_per_second: 400",
            &format!("max_requests_per_second: {max_rps}"),
        )
        .replace("not_found_grace: 2400ms", "not_found_grace: 60s")
        .replace("max_age: 15s", "max_age: 120s");
    std::fs::write(&config, text).unwrap();
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    let ids: Vec<String> = (0..300).map(|i| format!("limit-{i}")).collect();
    drop_spool_file(&exporter.spool(), "many", &ids.join("\n"));
    std::thread::sleep(Duration::from_secs(secs));
    drop(exporter);
    let arrivals = provider.arrivals.lock().unwrap().clone();
    (arrivals, provider.max_concurrent.load(Ordering::SeqCst))
}

/// The most queries that arrived within any one second.
fn busiest_second(arrivals: &[Instant]) -> usize {
    (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|t| t.duration_since(arrivals[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn queries_never_exceed_max_requests_per_second_even_at_a_spike() {
    // Eight connections could carry 53 queries a second: the rate limit is what binds,
    // including in the first second of a 300-order backlog.
    let (arrivals, _) = run_backlog(8, 20, 5);
    assert!(
        arrivals.len() >= 60,
        "a backlog kept the daemon busy: {}",
        arrivals.len()
    );
    let busiest = busiest_second(&arrivals);
    assert!(
        busiest <= 20,
        "{busiest} queries within one second (limit 20)"
    );
    assert!(busiest >= 15, "the limit is used, not undershot: {busiest}");
}

#[test]
fn queries_never_exceed_max_in_flight() {
    // A generous rate: the three connections are what binds.
    let (arrivals, concurrent) = run_backlog(3, 400, 4);
    assert!(arrivals.len() >= 30, "{}", arrivals.len());
    assert_eq!(
        concurrent, 3,
        "in flight at once (limit 3, and the backlog fills it)"
    );
}
