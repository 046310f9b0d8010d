//! A small W3C WebDriver client for the browser tests: Debian's `chromedriver` driving
//! Debian's `chromium`, headless. It speaks the protocol's JSON over HTTP with the
//! blocking reqwest client the other tests use, so it adds no crate to the build.
//! Every failure panics with the driver's message (these are tests); the session and
//! the driver (with its browser) end on drop, also when the test fails.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// The key under which W3C WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The browser's arguments: headless Chromium as root (no sandbox) at a fixed size,
/// so screenshots are comparable from run to run.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--window-size=1280,900",
];

/// A WebDriver error: the protocol's error code and message, or a transport failure.
#[derive(Debug)]
pub struct DriverError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// A running `chromedriver` with one headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: Client,
    /// The driver's log and the browser profile: removed with the browser.
    dir: tempfile::TempDir,
}

/// An element of the current page (valid until the page changes).
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
    /// The selector it was found with, for messages.
    css: String,
}

/// A program on PATH, as the shell would find it.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

impl Browser {
    /// Starts `chromedriver` on a free loopback port and opens a headless session.
    pub fn start() -> Browser {
        let chromium = on_path("chromium")
            .expect("chromium is installed (Debian package chromium; scripts/test.sh installs it)");
        let chromedriver = on_path("chromedriver").expect(
            "chromedriver is installed (Debian package chromium-driver; scripts/test.sh installs it)",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = super::free_addr().port();
        let log = File::create(dir.path().join("chromedriver.log")).expect("driver log");
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("driver log"))
            .stderr(log);
        // Its own process group: the browser's processes join it, so that drop can end
        // all of them even when the driver cannot close the session.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().expect("start chromedriver");
        let client = Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("reqwest client");
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            client,
            dir,
        };
        let ready = super::wait_for(Duration::from_secs(20), || {
            browser
                .call("GET", "/status", None)
                .ok()
                .filter(|v| v["ready"] == json!(true))
        });
        if ready.is_none() {
            panic!("chromedriver not ready:\n{}", browser.driver_log());
        }
        let profile = browser.dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let session = browser
            .call("POST", "/session", Some(caps))
            .unwrap_or_else(|e| panic!("new session: {e}\n{}", browser.driver_log()));
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {session}"))
            .to_string();
        browser
    }

    /// The driver's process id, also its process group's (the browser's processes are in it).
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    /// The driver's own log (start-up problems, browser crashes).
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// One WebDriver command; returns its `value` or the protocol's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, DriverError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let transport = |e: reqwest::Error| DriverError {
            error: "transport".into(),
            message: e.to_string(),
        };
        let response = req.send().map_err(transport)?;
        let ok = response.status().is_success();
        let text = response.text().map_err(transport)?;
        let mut answer: Value = serde_json::from_str(&text).map_err(|e| DriverError {
            error: "not JSON".into(),
            message: format!("{e}: {text}"),
        })?;
        let value = answer["value"].take();
        if ok {
            Ok(value)
        } else {
            Err(DriverError {
                error: value["error"].as_str().unwrap_or("unknown error").into(),
                message: value["message"].as_str().unwrap_or_default().into(),
            })
        }
    }

    /// A command of this session; panics with the driver's message.
    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_session_call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn try_session_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, DriverError> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The address of the page shown.
    pub fn url(&self) -> String {
        let v = self.session_call("GET", "/url", None);
        v.as_str().unwrap_or_default().to_string()
    }

    pub fn title(&self) -> String {
        let v = self.session_call("GET", "/title", None);
        v.as_str().unwrap_or_default().to_string()
    }

    /// The page's HTML as the browser serializes its DOM.
    pub fn source(&self) -> String {
        let v = self.session_call("GET", "/source", None);
        v.as_str().unwrap_or_default().to_string()
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub fn execute(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Waits until the shown page's address satisfies `pred`; returns it.
    pub fn wait_for_url(&self, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let url = self.url();
            if pred(&url) {
                return url;
            }
            if Instant::now() >= deadline {
                panic!("the browser stayed at {url}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first element matching `css`, or None.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        self.find_from("", css)
    }

    /// The first element matching `css`; panics naming the selector and the page.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no element {css:?} on {}", self.url()))
    }

    /// Every element matching `css`, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.find_all_from("", css)
    }

    fn find_from(&self, scope: &str, css: &str) -> Option<Element<'_>> {
        let body = json!({"using": "css selector", "value": css});
        match self.try_session_call("POST", &format!("{scope}/element"), Some(body)) {
            Ok(v) => Some(self.element(&v, css)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find {css:?}: {e}"),
        }
    }

    fn find_all_from(&self, scope: &str, css: &str) -> Vec<Element<'_>> {
        let body = json!({"using": "css selector", "value": css});
        let v = self.session_call("POST", &format!("{scope}/elements"), Some(body));
        v.as_array()
            .map(|a| a.iter().map(|v| self.element(v, css)).collect())
            .unwrap_or_default()
    }

    fn element(&self, v: &Value, css: &str) -> Element<'_> {
        Element {
            browser: self,
            id: v[ELEMENT_KEY]
                .as_str()
                .unwrap_or_else(|| panic!("no element reference in {v}"))
                .to_string(),
            css: css.to_string(),
        }
    }

    /// A PNG of the viewport, written to `path`; returns its bytes.
    pub fn screenshot(&self, path: &Path) -> Vec<u8> {
        let v = self.session_call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("screenshot is not base64: {e}"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "the screenshot is not a PNG"
        );
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("screenshot dir");
        }
        std::fs::write(path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        png
    }

    /// A PNG of the whole page (up to `max_height` pixels): the window is made tall
    /// enough for the document for the shot, then set back.
    pub fn screenshot_page(&self, path: &Path, max_height: u64) -> Vec<u8> {
        let sizes = self.execute(
            "return [Math.ceil(document.documentElement.scrollHeight), \
             window.outerHeight - window.innerHeight];",
        );
        let document = sizes[0].as_u64().unwrap_or(900).clamp(300, max_height);
        // The window's height counts the (headless, invisible) browser frame too.
        let frame = sizes[1].as_u64().unwrap_or(0);
        let before = self.session_call("GET", "/window/rect", None);
        self.session_call(
            "POST",
            "/window/rect",
            Some(json!({"width": before["width"], "height": document + frame})),
        );
        let png = self.screenshot(path);
        self.session_call(
            "POST",
            "/window/rect",
            Some(json!({"width": before["width"], "height": before["height"]})),
        );
        png
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session ends the browser; then the driver. Killing the process
        // group ends whatever a failed close left behind.
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
        if std::thread::panicking() {
            eprintln!("----- chromedriver log -----\n{}", self.driver_log());
        }
    }
}

impl Element<'_> {
    fn path(&self, what: &str) -> String {
        format!("/element/{}{what}", self.id)
    }

    /// Clicks it (the driver scrolls it into view and waits for a navigation it starts).
    pub fn click(&self) {
        self.browser
            .session_call("POST", &self.path("/click"), Some(json!({})));
    }

    /// Its rendered text (what a person reads).
    pub fn text(&self) -> String {
        let v = self.browser.session_call("GET", &self.path("/text"), None);
        v.as_str().unwrap_or_default().to_string()
    }

    /// An attribute (`href` as written, `data-*`), None when absent.
    pub fn attr(&self, name: &str) -> Option<String> {
        let v = self
            .browser
            .session_call("GET", &self.path(&format!("/attribute/{name}")), None);
        v.as_str().map(str::to_string)
    }

    /// A DOM property (`href` resolved to an absolute URL, `tagName`, ...).
    pub fn property(&self, name: &str) -> Value {
        self.browser
            .session_call("GET", &self.path(&format!("/property/{name}")), None)
    }

    pub fn find(&self, css: &str) -> Element<'_> {
        self.browser
            .find_from(&self.path(""), css)
            .unwrap_or_else(|| panic!("no {css:?} in {:?}", self.css))
    }

    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        self.browser.find_from(&self.path(""), css)
    }

    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.browser.find_all_from(&self.path(""), css)
    }
}
