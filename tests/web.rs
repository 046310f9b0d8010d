//! The web configuration file (`--web.config.file`, Prometheus exporter-toolkit's
//! format) on the real binary (issue 8, defect 12): real TLS handshakes with
//! certificates generated here (rcgen), real bcrypt hashes, `promtool check
//! web-config` agreeing that the file is in the toolkit's format, and Debian's real
//! Prometheus scraping through `tls_config` + `basic_auth`. Also the `--web.*` flags.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use reqwest::blocking::Client;

use common::prometheus::Prometheus;
use common::*;

const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse: battery staple";

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate.
struct Pki {
    ca_pem: String,
    client_pem: String,
    client_key_pem: String,
}

impl Pki {
    /// Writes ca.pem, server.pem, server.key (and client files) into `dir`.
    fn create(dir: &Path) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "itnio test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params.signed_by(&server_key, &ca).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["scraper".to_string()]).unwrap();
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &ca).unwrap();

        let pki = Pki {
            ca_pem: ca.pem(),
            client_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        };
        std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("client.pem"), &pki.client_pem).unwrap();
        std::fs::write(dir.join("client.key"), &pki.client_key_pem).unwrap();
        pki
    }

    /// A client that trusts the test CA (and nothing else), optionally with the
    /// client certificate, optionally limited to TLS 1.2.
    fn client(&self, with_identity: bool, tls12_only: bool) -> Client {
        let mut builder = Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            .no_proxy();
        if with_identity {
            let pem = format!("{}{}", self.client_pem, self.client_key_pem);
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        if tls12_only {
            builder = builder.max_tls_version(reqwest::tls::Version::TLS_1_2);
        }
        builder.build().unwrap()
    }
}

/// A bcrypt hash in htpasswd's `$2y$` form (what the toolkit's docs tell operators to
/// make), at the lowest cost so that the debug build verifies it quickly.
fn htpasswd_hash(password: &str) -> String {
    bcrypt::hash_with_result(password, 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY)
}

/// `promtool check web-config`: the Prometheus ecosystem's own validator.
fn promtool_accepts(web_config: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(["check", "web-config"])
        .arg(web_config)
        .output()
        .expect("promtool is installed (Debian package prometheus)");
    (out.status.success(), output_text(&out))
}

/// Starts `run` with extra flags; does not wait (the caller knows how to reach it).
fn start_exporter(dir: &Path, config: &Path, flags: &[&str]) -> Proc {
    let config_arg = config.display().to_string();
    let mut args = vec!["--log-level", "info", "run", "--config", &config_arg];
    args.extend_from_slice(flags);
    let proc = Proc::spawn("exporter", &args, &[("TEST_ITNIO_SECRET", API_SECRET)]);
    let _ = dir;
    proc
}

fn send(
    client: &Client,
    url: &str,
    auth: Option<(&str, &str)>,
) -> Result<reqwest::blocking::Response, reqwest::Error> {
    let mut request = client.get(url);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    request.send()
}

fn wait_https_ready(client: &Client, base: &str, proc: &Proc) {
    let ready = wait_for(Duration::from_secs(20), || {
        send(client, &format!("{base}/readyz"), None)
            .ok()
            .filter(|r| r.status() == 200)
    });
    assert!(
        ready.is_some(),
        "exporter not ready over TLS:\n{}",
        proc.log()
    );
}

fn write_web_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("web.yml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn tls_and_basic_auth_guard_every_page_but_the_probes() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(tmp.path());
    let sim = Sim::start(&["--time-scale", TIME_SCALE]);
    // `listen` in the file is overridden by --web.listen-address.
    let unused = free_addr();
    let addr = free_addr();
    let config = exporter_config(tmp.path(), unused, &sim.base_url(), "");
    // Relative file names are taken from the web config's directory, as in the toolkit.
    let web = write_web_config(
        tmp.path(),
        &format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  {USER}: {hash}\n",
            hash = htpasswd_hash(PASSWORD)
        ),
    );
    let (valid, said) = promtool_accepts(&web);
    assert!(valid, "promtool rejects the web config: {said}");

    let web_arg = web.display().to_string();
    let listen_arg = addr.to_string();
    let exporter = start_exporter(
        tmp.path(),
        &config,
        &[
            "--web.config.file",
            &web_arg,
            "--web.listen-address",
            &listen_arg,
            "--web.telemetry-path",
            "/otp-metrics",
        ],
    );
    let client = pki.client(false, false);
    let base = format!("https://{addr}");
    wait_https_ready(&client, &base, &exporter);
    assert!(
        std::net::TcpStream::connect_timeout(&unused, Duration::from_millis(300)).is_err(),
        "the configuration's `listen` was used although --web.listen-address was given"
    );

    // The right password: metrics, with the configured headers.
    let metrics_url = format!("{base}/otp-metrics");
    let ok = send(&client, &metrics_url, Some((USER, PASSWORD))).unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-frame-options"], "deny");
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    let text = ok.text().unwrap();
    assert!(text.contains("otp_exporter_spool_lines_total"), "{text}");
    // The default path is not served when another is chosen.
    let moved = send(&client, &format!("{base}/metrics"), Some((USER, PASSWORD))).unwrap();
    assert_eq!(moved.status(), 404);

    // Wrong password, unknown user, no credentials: 401 with a Basic challenge, on
    // the metrics and the landing page alike, and nothing of the metrics leaks.
    for (url, auth) in [
        (&metrics_url, Some((USER, "wrong password"))),
        (&metrics_url, Some(("nobody", PASSWORD))),
        (&metrics_url, None),
        (&format!("{base}/"), Some((USER, "wrong password"))),
        (&format!("{base}/"), None),
    ] {
        let denied = send(&client, url, auth).unwrap();
        assert_eq!(denied.status(), 401, "{url} {auth:?}");
        assert_eq!(denied.headers()["www-authenticate"], "Basic");
        assert_eq!(denied.headers()["x-frame-options"], "deny");
        let body = denied.text().unwrap();
        assert!(!body.contains("otp_"), "{body}");
    }
    let landing = send(&client, &format!("{base}/"), Some((USER, PASSWORD))).unwrap();
    assert_eq!(landing.status(), 200);
    assert!(landing.text().unwrap().contains("href=\"/otp-metrics\""));

    // The probes stay open (documented), still over TLS.
    for probe in ["/healthz", "/readyz"] {
        let answer = send(&client, &format!("{base}{probe}"), None).unwrap();
        assert_eq!(answer.status(), 200, "{probe}");
    }

    // Plain HTTP on the TLS port gets no page.
    assert!(
        get(addr, "/readyz").map(|(s, _)| s != 200).unwrap_or(true),
        "plain HTTP was answered on the TLS port"
    );
    // A client that does not trust the CA fails the handshake.
    let stranger = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .no_proxy()
        .build()
        .unwrap();
    let refused = send(&stranger, &metrics_url, Some((USER, PASSWORD)));
    assert!(
        refused.is_err(),
        "a certificate from an unknown CA was accepted"
    );
}

#[test]
fn client_certificates_and_min_version_are_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(tmp.path());
    let sim = Sim::start(&["--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let dir = tmp.path().display();
    let web = write_web_config(
        tmp.path(),
        &format!(
            "tls_server_config:\n  cert_file: {dir}/server.pem\n  key_file: {dir}/server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {dir}/ca.pem\n  min_version: TLS13\n"
        ),
    );
    let (valid, said) = promtool_accepts(&web);
    assert!(valid, "promtool rejects the web config: {said}");
    let web_arg = web.display().to_string();
    let exporter = start_exporter(tmp.path(), &config, &["--web.config.file", &web_arg]);
    let with_cert = pki.client(true, false);
    let base = format!("https://{addr}");
    wait_https_ready(&with_cert, &base, &exporter);

    let ok = send(&with_cert, &format!("{base}/metrics"), None).unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        send(&pki.client(false, false), &format!("{base}/metrics"), None).is_err(),
        "a client without a certificate got through RequireAndVerifyClientCert"
    );
    assert!(
        send(&pki.client(true, true), &format!("{base}/metrics"), None).is_err(),
        "a TLS 1.2 client got through min_version: TLS13"
    );
}

/// Runs `run` with a web config and returns its exit code (None if it kept running
/// for 20 s) and output.
fn run_with_web_config(text: &str) -> (Option<i32>, String) {
    let tmp = tempfile::tempdir().unwrap();
    Pki::create(tmp.path());
    let config = exporter_config(tmp.path(), free_addr(), "http://127.0.0.1:9/otp", "");
    let web = write_web_config(tmp.path(), text);
    let web_arg = web.display().to_string();
    let mut proc = start_exporter(tmp.path(), &config, &["--web.config.file", &web_arg]);
    let code = wait_for(Duration::from_secs(20), || {
        proc.child.try_wait().ok().flatten()
    })
    .and_then(|status| status.code());
    // The output threads finish with the process.
    std::thread::sleep(Duration::from_millis(200));
    proc.kill9();
    (code, proc.log())
}

#[test]
fn unknown_or_unsupported_keys_are_refused_by_name() {
    let hash = htpasswd_hash(PASSWORD);
    for (text, wanted) in [
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n".to_string(),
            "`tls_server_config.cipher_suites`",
        ),
        (
            format!("basic_auth_user:\n  {USER}: {hash}\n"),
            "unknown key `basic_auth_user`",
        ),
        (
            "http_server_config:\n  headers:\n    X-Powered-By: me\n".to_string(),
            "\"X-Powered-By\" can not be configured",
        ),
        (
            format!("basic_auth_users:\n  {USER}: \"{PASSWORD}\"\n"),
            "`basic_auth_users.prometheus` is not a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.pem\n".to_string(),
            "RequireAnyClientCert",
        ),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n".to_string(),
            "cannot read `cert_file`",
        ),
        (
            "rate_limit:\n  interval: 1s\n  burst: 5\n".to_string(),
            "`rate_limit`",
        ),
    ] {
        let (code, output) = run_with_web_config(&text);
        assert!(code.is_some_and(|c| c != 0), "{code:?} for\n{text}\n{output}");
        assert!(output.contains(wanted), "wanted {wanted:?} for\n{text}\ngot:\n{output}");
        assert!(output.contains("web.yml"), "the error names the file: {output}");
        assert!(!output.contains(PASSWORD), "a password was echoed: {output}");
    }
}

#[test]
fn a_real_prometheus_scrapes_through_tls_and_basic_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(tmp.path());
    let sim = Sim::start(&["--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let web = write_web_config(
        tmp.path(),
        &format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  {USER}: {}\n",
            htpasswd_hash(PASSWORD)
        ),
    );
    let web_arg = web.display().to_string();
    let exporter = start_exporter(tmp.path(), &config, &["--web.config.file", &web_arg]);
    wait_https_ready(
        &pki.client(false, false),
        &format!("https://{addr}"),
        &exporter,
    );

    // Two jobs: the right password and a wrong one; the second must be down.
    let password_file = tmp.path().join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let ca = tmp.path().join("ca.pem");
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: {USER}\n      {password}\n    static_configs:\n      - targets: ['{addr}']\n",
            ca = ca.display()
        )
    };
    let tsdb = tmp.path().join("tsdb");
    let prometheus = Prometheus::start(
        tmp.path(),
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
            job(
                "secured",
                &format!("password_file: {}", password_file.display())
            ),
            job("wrong-password", "password: not-the-password"),
        ),
        &tsdb,
    );
    let prom_addr = prometheus.addr;

    let targets = |prom: SocketAddr| -> Option<serde_json::Value> {
        let (status, body) = get(prom, "/api/v1/targets").ok()?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    };
    let health = |v: &serde_json::Value, job: &str| -> Option<(String, String)> {
        v["data"]["activeTargets"]
            .as_array()?
            .iter()
            .find(|t| t["labels"]["job"] == job)
            .map(|t| {
                (
                    t["health"].as_str().unwrap_or("").to_string(),
                    t["lastError"].as_str().unwrap_or("").to_string(),
                )
            })
    };
    let settled = wait_for(Duration::from_secs(60), || {
        let v = targets(prom_addr)?;
        let secured = health(&v, "secured")?;
        let wrong = health(&v, "wrong-password")?;
        (secured.0 == "up" && wrong.0 == "down").then_some((secured, wrong))
    });
    let Some((_, wrong)) = settled else {
        panic!(
            "targets did not settle: {:?}\nexporter:\n{}",
            targets(prom_addr),
            exporter.log()
        );
    };
    assert!(
        wrong.1.contains("401"),
        "the wrong password fails as 401: {}",
        wrong.1
    );

    // The secured job's samples are in Prometheus.
    let (status, body) = get(
        prom_addr,
        "/api/v1/query?query=otp_exporter_spool_lines_total%7Bjob%3D%22secured%22%7D",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "no samples scraped over TLS: {body}"
    );
}

#[test]
fn check_config_checks_the_web_config_file_too() {
    let tmp = tempfile::tempdir().unwrap();
    Pki::create(tmp.path());
    let config = exporter_config(tmp.path(), free_addr(), "http://127.0.0.1:9/otp", "");
    let check = |web_text: &str| {
        let web = write_web_config(tmp.path(), web_text);
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&config)
            .arg("--web.config.file")
            .arg(&web)
            .env("TEST_ITNIO_SECRET", API_SECRET)
            .output()
            .unwrap();
        (out.status.success(), output_text(&out))
    };
    let good = format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  {USER}: {}\n",
        htpasswd_hash(PASSWORD)
    );
    let (ok, said) = check(&good);
    assert!(ok, "{said}");
    assert!(
        said.contains("web.yml: valid (TLS, basic auth (1 user(s)))"),
        "{said}"
    );
    let (ok, said) = check("tls_server_config:\n  cert_file: server.pem\n");
    assert!(!ok, "{said}");
    assert!(said.contains("needs both"), "{said}");
}
