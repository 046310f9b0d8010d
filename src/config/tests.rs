//! Unit tests of loading: defaults, every error class, secrets.

use std::path::Path;
use std::time::Duration;

use super::*;

const MINIMAL: &str = "api:\n  api_key: k\n  api_secret: s\napps:\n  - id: ad454212\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, Path::new("test.yml"), &|name| {
        (name == "ITNIO_API_SECRET").then(|| "from-env".to_string())
    })
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.listen, "0.0.0.0:8467".parse().unwrap());
    assert_eq!(c.api.base_url, "https://api.itniotech.com/otp");
    assert_eq!(c.api.timeout, Duration::from_secs(10));
    assert_eq!(c.api.max_in_flight, 32);
    assert_eq!(c.api.max_requests_per_second, 50);
    assert_eq!(c.default_app.as_deref(), Some("ad454212"));
    assert_eq!(c.spool.rescan_interval, Duration::from_secs(30));
    assert_eq!(c.spool.max_file_bytes, 16 << 20);
    assert_eq!(c.tracking.verification_window, Duration::from_secs(300));
    assert_eq!(c.tracking.settle_timeout, Duration::from_secs(120));
    assert_eq!(c.tracking.not_found_grace, Duration::from_secs(120));
    assert_eq!(c.tracking.max_age, Duration::from_secs(1800));
    assert_eq!(c.polling.first_delay, Duration::from_secs(5));
    assert_eq!(c.polling.max_interval, Duration::from_secs(60));
    assert_eq!(c.api.timezone.local_minus_utc(), 8 * 3600);
    assert_eq!(c.secret(), "s");
}

#[test]
fn the_documented_example_parses() {
    let text = r#"
listen: "0.0.0.0:8467"
state_dir: /var/lib/itnio-otp-exporter
api:
  base_url: https://api.itniotech.com/otp
  api_key: "bDqJFiq9"
  api_secret: "${ITNIO_API_SECRET}"
  timeout: 10s
  max_in_flight: 32
  max_requests_per_second: 50
default_app: ad454212
apps:
  - id: ad454212
  - id: other
    verification_window: 10m
spool:
  dir: /var/spool/itnio-otp
  rescan_interval: 30s
tracking:
  verification_window: 5m
  settle_timeout: 2m
  not_found_grace: 2m
  max_age: 30m
polling:
  first_delay: 5s
  max_interval: 60s
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.secret(), "from-env");
    assert_eq!(c.window_of("other"), Duration::from_secs(600));
    assert_eq!(c.window_of("ad454212"), Duration::from_secs(300));
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = error("api:\n  api_key: k\n  api_secret: s\n  timeuot: 5s\napps:\n  - id: a\n");
    assert!(e.contains("timeuot"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("test.yml"), "{e}");
}

#[test]
fn bad_duration_names_key_and_line() {
    let e = error(&format!("{MINIMAL}tracking:\n  settle_timeout: soon\n"));
    assert!(e.contains("tracking.settle_timeout"), "{e}");
    assert!(e.contains("line 7"), "{e}");
    assert!(e.contains("soon"), "{e}");
}

#[test]
fn bad_values_are_named() {
    assert!(error(&format!("{MINIMAL}listen: nowhere\n")).contains("listen"));
    assert!(
        error("api:\n  api_key: k\n  api_secret: s\n  max_in_flight: 0\napps:\n  - id: a\n")
            .contains("`api.max_in_flight` (line 4)")
    );
    assert!(
        error("api:\n  api_key: k\n  api_secret: s\n  max_in_flight: -3\napps:\n  - id: a\n")
            .contains("api.max_in_flight")
    );
    assert!(
        error("api:\n  api_key: k\n  api_secret: s\n  base_url: ftp://x\napps:\n  - id: a\n")
            .contains("api.base_url")
    );
    for (key, line) in [
        ("tracking.max_age", "tracking:\n  max_age: 100000000y\n"),
        ("polling.max_interval", "polling:\n  max_interval: 8days\n"),
        ("api.max_in_flight", ""),
    ] {
        let text = if line.is_empty() {
            MINIMAL.replace("api_key: k", "api_key: k\n  max_in_flight: 5000")
        } else {
            format!("{MINIMAL}{line}")
        };
        let e = error(&text);
        assert!(e.contains(key), "{key}: {e}");
    }
    assert!(
        error(&MINIMAL.replace("api_key: k", "api_key: k\n  timeout: 1h")).contains("api.timeout")
    );
    let leaky = error(&MINIMAL.replace(
        "api_key: k",
        "api_key: k\n  base_url: https://bob:pa55word@api.example.com/otp",
    ));
    assert!(
        leaky.contains("api.base_url") && leaky.contains("user name or password"),
        "{leaky}"
    );
    assert!(!leaky.contains("pa55word"), "{leaky}");
    for bad in ["https://", "https://x/otp?a=1", "not a url"] {
        let e =
            error(&MINIMAL.replace("api_key: k", &format!("api_key: k\n  base_url: \"{bad}\"")));
        assert!(e.contains("api.base_url"), "{bad}: {e}");
    }
    assert_eq!(
        parse(&MINIMAL.replace(
            "api_key: k",
            "api_key: k\n  base_url: http://127.0.0.1:8468/otp/"
        ))
        .unwrap()
        .api
        .base_url,
        "http://127.0.0.1:8468/otp"
    );
    assert!(
        error("api:\n  api_key: k\n  api_secret: s\n  timezone: Mars\napps:\n  - id: a\n")
            .contains("api.timezone")
    );
    assert!(error("api:\n  api_key: k\n  api_secret: s\n").contains("apps"));
    let only_default = parse("api:\n  api_key: k\n  api_secret: s\ndefault_app: solo\n").unwrap();
    assert_eq!(only_default.app_ids(), vec!["solo".to_string()]);
    assert_eq!(only_default.default_app.as_deref(), Some("solo"));
    assert!(
        error("api:\n  api_key: k\n  api_secret: s\ndefault_app: \"a b\"\n").contains("app id")
    );
    assert!(error(&format!("{MINIMAL}default_app: nope\n")).contains("default_app"));
    assert!(error(&format!("{MINIMAL}tracking:\n  max_age: 1m\n")).contains("tracking.max_age"));
    assert!(error(&format!(
        "{MINIMAL}polling:\n  first_delay: 2m\n  max_interval: 1m\n"
    ))
    .contains("polling.max_interval"));
    assert!(error("api:\n  api_key: k\napps:\n  - id: a\n").contains("api_secret"));
    assert!(error("api:\n  api_secret: s\napps:\n  - id: a\n").contains("api_key"));
    assert!(error("api: [1, 2\n").contains("test.yml"));
    assert!(error(&format!("{MINIMAL}apps:\n  - id: a\n")).contains("apps"));
}

#[test]
fn missing_env_var_is_named_and_secret_is_not_printed() {
    let e = error("api:\n  api_key: k\n  api_secret: \"${NOPE_VAR}\"\napps:\n  - id: a\n");
    assert!(e.contains("NOPE_VAR"), "{e}");
    let c = parse("api:\n  api_key: k\n  api_secret: hunter2-secret\napps:\n  - id: a\n").unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2-secret"), "{debug}");
    assert!(debug.contains("Secret(***)"));
}

#[test]
fn secret_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "file-secret\n").unwrap();
    let text = format!(
        "api:\n  api_key: k\n  api_secret_file: {}\napps:\n  - id: a\n",
        file.display()
    );
    assert_eq!(parse(&text).unwrap().secret(), "file-secret");
    let missing = "api:\n  api_key: k\n  api_secret_file: /nonexistent/x\napps:\n  - id: a\n";
    assert!(error(missing).contains("`api.api_secret_file` (line 3)"));
}

#[test]
fn offsets_parse() {
    assert_eq!(parse_offset("+08:00").unwrap().local_minus_utc(), 28800);
    assert_eq!(parse_offset("-0530").unwrap().local_minus_utc(), -19800);
    assert_eq!(parse_offset("Z").unwrap().local_minus_utc(), 0);
    assert!(parse_offset("8").is_none());
    assert!(parse_offset("+99:00").is_none());
}

// ---- Checks added with the split into sections (issue 7 §4) ----

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(ConfigError::Invalid { problems, .. }) => problems.0,
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn listen_accepts_what_operators_type() {
    let listen = |value: &str| parse(&format!("{MINIMAL}listen: \"{value}\"\n")).map(|c| c.listen);
    let all = listen(":8467").unwrap();
    assert_eq!(all, "0.0.0.0:8467".parse().unwrap());
    assert!(all.ip().is_unspecified());
    let local = listen("localhost:8467").unwrap();
    assert!(local.ip().is_loopback(), "{local}");
    assert_eq!(local.port(), 8467);
    assert_eq!(listen("[::1]:9000").unwrap(), "[::1]:9000".parse().unwrap());
    assert_eq!(
        listen("127.0.0.1:1").unwrap(),
        "127.0.0.1:1".parse().unwrap()
    );
    for bad in ["localhost:99999", ":", ":http", "example.com:80", "0.0.0.0"] {
        let e = listen(bad).unwrap_err().to_string();
        assert!(
            e.contains("key `listen` (line 6)") && e.contains("invalid address"),
            "{bad}: {e}"
        );
    }
    let e = error(&format!("{MINIMAL}listen: 8467\n"));
    assert!(
        e.contains("key `listen` (line 6): expected an address"),
        "{e}"
    );
}

#[test]
fn several_problems_are_all_reported_with_key_and_line() {
    let text = "api:\n  api_key: k\n  api_secret: s\n  max_in_flight: 0\napps:\n  - id: a\ntracking:\n  settle_timeout: soon\npolling:\n  first_delay: -1s\n";
    let found = problems(text);
    let said: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 3, "{said:#?}");
    assert!(
        said[0].starts_with("key `api.max_in_flight` (line 4): "),
        "{said:#?}"
    );
    assert!(
        said[1].starts_with("key `tracking.settle_timeout` (line 8): "),
        "{said:#?}"
    );
    assert!(
        said[2].starts_with("key `polling.first_delay` (line 10): "),
        "{said:#?}"
    );
    let e = error(text);
    assert!(
        e.starts_with("test.yml: 3 problems:\n  - key `api.max_in_flight`"),
        "{e}"
    );
}

#[test]
fn type_errors_are_said_in_the_operators_words() {
    let with = |line: &str| error(&MINIMAL.replace("api_key: k", &format!("api_key: k\n  {line}")));
    for (line, words) in [
        (
            "max_in_flight: ten",
            "expected a whole number, got the text \"ten\"",
        ),
        ("max_in_flight: 1.5", "expected a whole number, got 1.5"),
        ("max_in_flight: -3", "cannot be negative"),
        ("max_requests_per_second: 99999999999", "is too large"),
        ("timeout: -5s", "durations cannot be negative"),
        ("timeout: -5", "durations cannot be negative"),
        (
            "timeout: 10",
            "expected a duration with a unit, like 30s, 5m or 1h",
        ),
        (
            "timeout: [1]",
            "expected a duration like 30s, 5m or 1h, got a list",
        ),
        ("base_url: 5", "expected text, got the number 5"),
        ("timezone: 800", "expected a fixed offset like \"+08:00\""),
    ] {
        let e = with(line);
        let key = line.split(':').next().unwrap();
        assert!(
            e.contains(&format!("key `api.{key}` (line 3): ")),
            "{line}: {e}"
        );
        assert!(e.contains(words), "{line}: {e}");
        assert!(!e.contains("u32") && !e.contains("u64"), "{line}: {e}");
    }
}

#[test]
fn a_secret_written_as_a_number_is_rejected_without_echoing_it() {
    let e = error("api:\n  api_key: k\n  api_secret: 98765432\napps:\n  - id: a\n");
    assert!(e.contains("key `api.api_secret` (line 3)"), "{e}");
    assert!(e.contains("quote it"), "{e}");
    assert!(!e.contains("98765432"), "{e}");
    // Quoted, it is text, read as written.
    let c = parse("api:\n  api_key: k\n  api_secret: \"0098765432\"\napps:\n  - id: a\n").unwrap();
    assert_eq!(c.secret(), "0098765432");
}

#[test]
fn no_secret_in_any_debug_print() {
    let text = "api:\n  api_key: k\n  api_secret: hunter2-secret\napps:\n  - id: a\n";
    let config = parse(text).unwrap();
    let client = crate::api::ApiClient::new(&config.api).unwrap();
    let secret = Secret::new("hunter2-secret");
    for printed in [
        format!("{config:?}"),
        format!("{config:#?}"),
        format!("{:?}", config.api),
        format!("{client:?}"),
        format!("{secret:?}"),
        format!("{secret}"),
    ] {
        assert!(!printed.contains("hunter2"), "{printed}");
    }
    assert!(format!("{client:?}").contains("Secret(***)"));
    assert_eq!(secret.expose(), "hunter2-secret");
}

#[test]
fn a_bad_secret_file_is_named_but_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let with_file = |content: &[u8]| {
        let file = dir.path().join("secret");
        std::fs::write(&file, content).unwrap();
        let text = format!(
            "api:\n  api_key: k\n  api_secret_file: {}\napps:\n  - id: a\n",
            file.display()
        );
        (error(&text), problems(&text))
    };
    let (e, found) = with_file(b"hunter2-in-a-file\xff\xfe\n");
    assert!(
        e.contains("`api.api_secret_file` (line 3): cannot read"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    // The cause is kept as a source, not only as text.
    let cause = std::error::Error::source(&found[0]).expect("a source");
    assert!(
        cause.downcast_ref::<std::io::Error>().is_some(),
        "{cause:?}"
    );
    let (e, _) = with_file(b"\n");
    assert!(
        e.contains("`api.api_secret_file` (line 3): the secret is empty"),
        "{e}"
    );
}

#[test]
fn every_known_key_is_read_where_it_is_written() {
    let keys = keys();
    assert_eq!(keys.len(), 33, "{keys:?}");
    for key in &keys {
        // A mapping is wrong for every leaf key: the problem must name the key itself.
        let (path, leaf) = key.rsplit_once('.').unwrap_or(("", key));
        let bad = "{wrong: 1}";
        let text = match path {
            "" => format!("{MINIMAL}{leaf}: {bad}\n"),
            "apps[]" => MINIMAL.replace(
                "- id: ad454212",
                &format!("- id: ad454212\n    {leaf}: {bad}"),
            ),
            "api" => MINIMAL.replace("api_key: k", &format!("api_key: k\n  {leaf}: {bad}")),
            section => format!("{MINIMAL}{section}:\n  {leaf}: {bad}\n"),
        };
        let text = text.replacen(&format!("  {leaf}: k\n"), "", 1);
        let text = text.replacen(&format!("  {leaf}: s\n"), "", 1);
        let text = text.replacen(&format!("- {leaf}: ad454212\n    "), "- ", 1);
        let shown = key.replace("[]", "[0]");
        let e = error(&text);
        assert!(
            e.contains(&format!("key `{shown}` (line ")),
            "{key}: {e}\n{text}"
        );
        assert!(!e.contains("unknown key"), "{key}: {e}\n{text}");
    }
}

#[test]
fn an_empty_section_means_its_defaults() {
    let c = parse(&format!(
        "{MINIMAL}spool:\ntracking:\n  # all commented out\n"
    ))
    .unwrap();
    assert_eq!(c.spool.rescan_interval, Duration::from_secs(30));
    assert_eq!(c.tracking.max_age, Duration::from_secs(1800));
}

#[test]
fn a_config_built_in_code_is_validated_like_a_file() {
    let built = ConfigFile {
        listen: Some("127.0.0.1:9999".parse().unwrap()),
        api: ApiSection {
            api_key: Some("k".into()),
            api_secret: Some(Secret::new("s")),
            ..ApiSection::default()
        },
        apps: vec![AppEntry::new("ad454212")],
        ..ConfigFile::default()
    };
    let from_code = built
        .clone()
        .validate(Path::new("<code>"), &|_| None)
        .unwrap();
    let from_text = parse(&format!("{MINIMAL}listen: 127.0.0.1:9999\n")).unwrap();
    assert_eq!(from_code, from_text);

    let mut wrong = built;
    wrong.api.max_in_flight = Some(0);
    wrong.polling.first_delay = Some(Duration::ZERO);
    let e = wrong
        .validate(Path::new("<code>"), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("<code>: 2 problems:"), "{e}");
    assert!(
        e.contains("key `api.max_in_flight`: must be at least 1"),
        "{e}"
    );
    assert!(
        e.contains("key `polling.first_delay`: must be more than 0"),
        "{e}"
    );
}

#[test]
fn a_section_written_as_text_is_not_echoed() {
    let e = error("api: hunter2-secret\napps:\n  - id: a\n");
    assert!(e.contains("key `api` (line 1): expected a mapping"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn the_bounds_of_hostile_answers_have_defaults_and_limits() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.api.max_response_bytes, 512 * 1024);
    assert_eq!(c.tracking.max_attempts_per_order, 64);
    assert_eq!(c.tracking.max_cost_per_attempt_usd, 10.0);
    let c = parse(&format!(
        "{MINIMAL}tracking:\n  max_attempts_per_order: 8\n  max_cost_per_attempt_usd: 0.5\n"
    ))
    .unwrap();
    assert_eq!(
        (
            c.tracking.max_attempts_per_order,
            c.tracking.max_cost_per_attempt_usd
        ),
        (8, 0.5)
    );
    let api = |line: &str| MINIMAL.replace("api_key: k", &format!("api_key: k\n  {line}"));
    for (text, key, says) in [
        (
            api("max_response_bytes: 100"),
            "`api.max_response_bytes` (line 3)",
            "between 1024 and 67108864",
        ),
        (
            api("max_response_bytes: 1000000000"),
            "api.max_response_bytes",
            "between",
        ),
        (
            format!("{MINIMAL}tracking:\n  max_attempts_per_order: 0\n"),
            "`tracking.max_attempts_per_order` (line 7)",
            "between 1 and 10000",
        ),
        (
            format!("{MINIMAL}tracking:\n  max_attempts_per_order: 100000\n"),
            "tracking.max_attempts_per_order",
            "between 1 and 10000",
        ),
        (
            format!("{MINIMAL}tracking:\n  max_cost_per_attempt_usd: 0\n"),
            "tracking.max_cost_per_attempt_usd",
            "more than 0",
        ),
        (
            format!("{MINIMAL}tracking:\n  max_cost_per_attempt_usd: 1e300\n"),
            "tracking.max_cost_per_attempt_usd",
            "at most",
        ),
        (
            format!("{MINIMAL}tracking:\n  max_cost_per_attempt_usd: .nan\n"),
            "tracking.max_cost_per_attempt_usd",
            "finite",
        ),
        (
            format!("{MINIMAL}tracking:\n  max_cost_per_attempt_usd: ten\n"),
            "tracking.max_cost_per_attempt_usd",
            "expected a number",
        ),
    ] {
        let e = error(&text);
        assert!(e.contains(key) && e.contains(says), "{text}\n{e}");
    }
}

#[test]
fn the_journal_section_takes_sizes_with_units_and_names_bad_values() {
    let c = parse(MINIMAL).unwrap();
    assert!(c.journal.enabled);
    assert_eq!(c.journal.retention, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(c.journal.max_bytes, 1 << 30);
    for (written, bytes) in [
        ("512MiB", 512u64 << 20),
        ("\"2 GiB\"", 2 << 30),
        ("500MB", 500_000_000),
        ("2097152", 2 << 20),
    ] {
        let c = parse(&format!(
            "{MINIMAL}journal:\n  enabled: false\n  retention: 2d\n  max_bytes: {written}\n"
        ))
        .unwrap();
        assert_eq!(c.journal.max_bytes, bytes, "{written}");
        assert!(!c.journal.enabled);
        assert_eq!(c.journal.retention, Duration::from_secs(2 * 24 * 3600));
    }
    for (line, said) in [
        ("max_bytes: 10 parsecs", "invalid size \"10 parsecs\""),
        ("max_bytes: 1KiB", "must be at least 1MiB"),
        ("max_bytes: -5", "sizes cannot be negative"),
        ("max_bytes: 99999999999TiB", "too large"),
        ("enabled: yes please", "expected true or false"),
        ("retention: 30d", "journal.retention"),
    ] {
        let e = error(&format!("{MINIMAL}journal:\n  {line}\n"));
        let key = format!("journal.{}", line.split(':').next().unwrap_or_default());
        assert!(e.contains(&key) && e.contains(said), "{line}: {e}");
        assert!(e.contains("line 7"), "{line}: {e}");
    }
}

#[test]
fn the_account_section_defaults_to_a_five_minute_poll_at_the_api_hosts_root() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.account.balance_interval, Some(Duration::from_secs(300)));
    assert_eq!(
        c.account.balance_url,
        "https://api.itniotech.com/sms/getBalance"
    );
    // The host's root, whatever the base path; the port is kept.
    let c = parse(
        &format!("{MINIMAL}account:\n  balance_interval: 30s\n").replace(
            "api_key: k",
            "api_key: k\n  base_url: http://127.0.0.1:9000/proxy/otp/",
        ),
    )
    .unwrap();
    assert_eq!(
        c.account.balance_url,
        "http://127.0.0.1:9000/sms/getBalance"
    );
    assert_eq!(c.account.balance_interval, Some(Duration::from_secs(30)));
    let c = parse(&format!(
        "{MINIMAL}account:\n  balance_url: https://balance.example/sms/getBalance\n"
    ))
    .unwrap();
    assert_eq!(
        c.account.balance_url,
        "https://balance.example/sms/getBalance"
    );
}

#[test]
fn the_balance_poller_is_off_with_enabled_false_or_a_zero_interval() {
    for section in [
        "enabled: false",
        "balance_interval: 0s",
        "balance_interval: 0",
    ] {
        let c = parse(&format!("{MINIMAL}account:\n  {section}\n"))
            .unwrap_or_else(|e| panic!("{section}: {e}"));
        assert_eq!(c.account.balance_interval, None, "{section}");
    }
}

#[test]
fn bad_account_values_are_named_with_their_key() {
    for (line, key, says) in [
        (
            "balance_interval: 500ms",
            "account.balance_interval",
            "at least 1s",
        ),
        (
            "balance_interval: 30d",
            "account.balance_interval",
            "7 days",
        ),
        ("balance_interval: soon", "account.balance_interval", "line"),
        ("enabled: maybe", "account.enabled", "line"),
        (
            "balance_url: ftp://host/x",
            "account.balance_url",
            "http(s) URL",
        ),
        ("balance_url: not a url", "account.balance_url", "not a URL"),
        (
            "balance_url: https://host/x?y=1",
            "account.balance_url",
            "query",
        ),
    ] {
        let e = error(&format!("{MINIMAL}account:\n  {line}\n"));
        assert!(e.contains(&format!("`{key}`")), "{line}: {e}");
        assert!(e.contains(says), "{line}: {e}");
    }
    // Credentials in the URL are refused without being repeated.
    let e = error(&format!(
        "{MINIMAL}account:\n  balance_url: https://user:hunter2@host/sms/getBalance\n"
    ));
    assert!(e.contains("`account.balance_url`"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}
