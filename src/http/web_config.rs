//! The web configuration file (`--web.config.file`) in Prometheus exporter-toolkit's
//! format, so that an operator's existing file and tooling (`promtool check
//! web-config`) apply: `tls_server_config`, `http_server_config.headers`,
//! `basic_auth_users`.
//!
//! The subset that secures the endpoint is implemented; the toolkit's other keys
//! are refused by name rather than ignored, so that nobody believes a setting is in
//! force when it is not. The file is read once at start (the toolkit re-reads it on
//! every connection): a restart applies a change, and a broken edit cannot take a
//! running exporter's endpoint down.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_yaml::{Mapping, Value};

use super::auth::BasicAuth;

/// Prefix of the TLS keys in messages.
const TLS: &str = "tls_server_config.";

/// What the web configuration file asks of the server.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// Serve HTTPS with this; plain HTTP when None.
    pub tls: Option<Arc<ServerConfig>>,
    /// Require one of these users (basic auth) on every page but the probes.
    pub users: Option<Arc<BasicAuth>>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.as_ref().map(|u| u.count()))
            .field("headers", &self.headers)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read the web configuration file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("web configuration file {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error("web configuration file {path}: cannot read `{key}` ({file})")]
    ReadReferenced {
        path: PathBuf,
        key: &'static str,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("web configuration file {path}: `{key}` is not valid PEM")]
    Pem {
        path: PathBuf,
        key: &'static str,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("web configuration file {path}: the TLS settings are not usable")]
    Tls {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("web configuration file {path}: the client CA cannot verify client certificates")]
    ClientVerifier {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

/// Top-level keys of the toolkit's format: supported, or known and refused with why.
const TOP_KEYS: &[(&str, Option<&str>)] = &[
    ("tls_server_config", None),
    ("http_server_config", None),
    ("basic_auth_users", None),
    (
        "rate_limit",
        Some("put a reverse proxy in front for rate limiting"),
    ),
];

const TLS_KEYS: &[(&str, Option<&str>)] = &[
    ("cert", None),
    ("key", None),
    ("client_ca", None),
    ("cert_file", None),
    ("key_file", None),
    ("client_auth_type", None),
    ("client_ca_file", None),
    ("min_version", None),
    ("max_version", None),
    ("prefer_server_cipher_suites", None),
    (
        "cipher_suites",
        Some("rustls offers only its own modern suites; remove the key"),
    ),
    (
        "curve_preferences",
        Some("rustls chooses among its own curves; remove the key"),
    ),
    (
        "client_allowed_sans",
        Some("restrict clients by the client CA instead"),
    ),
];

const HTTP_KEYS: &[(&str, Option<&str>)] = &[("headers", None), ("http2", None)];

/// The headers the toolkit lets an operator set, with the values it accepts (empty:
/// any value); kept identical so that a file valid for one is valid for the other.
const HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// One loading of the file: where it is, for errors and relative paths.
struct Loader<'a> {
    path: &'a Path,
}

impl WebConfig {
    /// Plain HTTP, no authentication, no extra headers: no `--web.config.file`.
    pub fn plain() -> Self {
        WebConfig::default()
    }

    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Loader { path }.parse(&text)
    }

    /// Parses the file's text; relative file names are taken from `path`'s directory,
    /// as the toolkit does.
    pub fn parse(path: &Path, text: &str) -> Result<Self, WebConfigError> {
        Loader { path }.parse(text)
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        format!(
            "{}, {}",
            if self.tls.is_some() {
                "TLS"
            } else {
                "plain HTTP"
            },
            match &self.users {
                Some(users) => format!("basic auth ({} user(s))", users.count()),
                None => "no authentication".to_string(),
            }
        )
    }
}

impl Loader<'_> {
    fn invalid(&self, problem: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            path: self.path.to_path_buf(),
            problem: problem.into(),
        }
    }

    fn parse(&self, text: &str) -> Result<WebConfig, WebConfigError> {
        let root: Value =
            serde_yaml::from_str(text).map_err(|e| self.invalid(format!("not valid YAML: {e}")))?;
        let root = match root {
            // An empty file is the toolkit's defaults: plain HTTP, no users.
            Value::Null => return Ok(WebConfig::plain()),
            Value::Mapping(m) => m,
            _ => return Err(self.invalid("expected a mapping of settings at the top")),
        };
        self.check_keys(&root, "", TOP_KEYS)?;
        let tls = match self.section(&root, "tls_server_config")? {
            Some(section) => {
                self.check_keys(section, "tls_server_config.", TLS_KEYS)?;
                self.tls(section)?
            }
            None => None,
        };
        let mut headers = Vec::new();
        if let Some(section) = self.section(&root, "http_server_config")? {
            self.check_keys(section, "http_server_config.", HTTP_KEYS)?;
            if let Some(http2) = section.get("http2") {
                if !matches!(http2, Value::Bool(_)) {
                    return Err(self.invalid("`http_server_config.http2` must be true or false"));
                }
            }
            if let Some(map) = self.section(section, "headers")? {
                headers = self.headers(map)?;
            }
        }
        let users = match self.section(&root, "basic_auth_users")? {
            Some(map) if !map.is_empty() => Some(Arc::new(self.users(map)?)),
            _ => None,
        };
        Ok(WebConfig {
            tls,
            users,
            headers,
        })
    }

    /// Refuses keys that are unknown, or known but not supported, naming each.
    fn check_keys(
        &self,
        map: &Mapping,
        prefix: &str,
        known: &[(&str, Option<&str>)],
    ) -> Result<(), WebConfigError> {
        for key in map.keys() {
            let Some(name) = key.as_str() else {
                return Err(self.invalid(format!("a key under `{prefix}` is not a string")));
            };
            match known.iter().find(|(k, _)| *k == name) {
                Some((_, None)) => {}
                Some((_, Some(why))) => {
                    return Err(self.invalid(format!(
                    "`{prefix}{name}` (exporter-toolkit) is not supported by this exporter: {why}"
                )))
                }
                None => {
                    let names: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
                    return Err(self.invalid(format!(
                        "unknown key `{prefix}{name}` (known here: {})",
                        names.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// A nested mapping; None when absent or null (YAML `key:` with nothing after).
    fn section<'m>(
        &self,
        map: &'m Mapping,
        key: &str,
    ) -> Result<Option<&'m Mapping>, WebConfigError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Mapping(m)) => Ok(Some(m)),
            Some(_) => Err(self.invalid(format!("`{key}` must be a mapping"))),
        }
    }

    /// A string value; None when absent or empty (the toolkit treats "" as unset).
    fn string<'m>(
        &self,
        map: &'m Mapping,
        prefix: &str,
        key: &str,
    ) -> Result<Option<&'m str>, WebConfigError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.invalid(format!("`{prefix}{key}` must be a string"))),
        }
    }

    /// PEM bytes given inline (`inline_key`) or by file (`file_key`), not both.
    fn pem_source(
        &self,
        section: &Mapping,
        inline_key: &'static str,
        file_key: &'static str,
    ) -> Result<Option<(Vec<u8>, &'static str)>, WebConfigError> {
        let p = "tls_server_config.";
        match (
            self.string(section, p, inline_key)?,
            self.string(section, p, file_key)?,
        ) {
            (Some(_), Some(_)) => Err(self.invalid(format!(
                "give `{p}{inline_key}` or `{p}{file_key}`, not both"
            ))),
            (Some(text), None) => Ok(Some((text.as_bytes().to_vec(), inline_key))),
            (None, Some(file)) => {
                // Relative to the web configuration file, as in the toolkit.
                let file = match self.path.parent() {
                    Some(dir) => dir.join(file),
                    None => PathBuf::from(file),
                };
                std::fs::read(&file)
                    .map(|bytes| Some((bytes, file_key)))
                    .map_err(|source| WebConfigError::ReadReferenced {
                        path: self.path.to_path_buf(),
                        key: file_key,
                        file,
                        source,
                    })
            }
            (None, None) => Ok(None),
        }
    }

    fn pem_error(
        &self,
        key: &'static str,
    ) -> impl Fn(rustls_pki_types::pem::Error) -> WebConfigError + '_ {
        move |source| WebConfigError::Pem {
            path: self.path.to_path_buf(),
            key,
            source,
        }
    }

    fn certificates(
        &self,
        (pem, key): (Vec<u8>, &'static str),
    ) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.pem_error(key))?;
        if certs.is_empty() {
            return Err(self.invalid(format!("`tls_server_config.{key}` holds no certificate")));
        }
        Ok(certs)
    }

    fn version(
        &self,
        section: &Mapping,
        key: &str,
    ) -> Result<Option<&'static SupportedProtocolVersion>, WebConfigError> {
        match self.string(section, "tls_server_config.", key)? {
            None => Ok(None),
            Some("TLS12") => Ok(Some(&rustls::version::TLS12)),
            Some("TLS13") => Ok(Some(&rustls::version::TLS13)),
            Some(old @ ("TLS10" | "TLS11")) => Err(self.invalid(format!(
                "`tls_server_config.{key}: {old}` is not supported: TLS 1.0 and 1.1 are not offered (use TLS12 or TLS13)"
            ))),
            Some(other) => Err(self.invalid(format!(
                "`tls_server_config.{key}`: unknown TLS version {other:?} (TLS12 or TLS13)"
            ))),
        }
    }

    fn tls(&self, section: &Mapping) -> Result<Option<Arc<ServerConfig>>, WebConfigError> {
        // The settings that need no file first, so that their mistakes are named
        // before a missing file hides them.
        let versions = self.protocol_versions(section)?;
        let client_auth = self.string(section, TLS, "client_auth_type")?;
        if !self.tls_requested(section, client_auth.is_some())? {
            return Ok(None);
        }
        let cert = self.pem_source(section, "cert", "cert_file")?;
        let key = self.pem_source(section, "key", "key_file")?;
        let client_ca = self.pem_source(section, "client_ca", "client_ca_file")?;
        let cert = cert
            .ok_or_else(|| self.invalid("TLS needs `tls_server_config.cert_file` (or `cert`)"))?;
        let (key_pem, key_name) =
            key.ok_or_else(|| self.invalid("TLS needs `tls_server_config.key_file` (or `key`)"))?;
        let chain = self.certificates(cert)?;
        let private_key =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(self.pem_error(key_name))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|source| self.tls_error(source))?;
        let roots = match client_ca {
            Some(ca) => Some(self.client_roots(ca)?),
            None => None,
        };
        let verifier = self.client_verifier(client_auth, roots, provider)?;
        let builder = match verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, private_key)
            .map_err(|source| self.tls_error(source))?;
        config.ignore_client_order = match section.get("prefer_server_cipher_suites") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(prefer)) => *prefer,
            Some(_) => {
                return Err(self.invalid(
                    "`tls_server_config.prefer_server_cipher_suites` must be true or false",
                ))
            }
        };
        // HTTP/1.1 only: the server speaks nothing else.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }

    /// The TLS versions between `min_version` (default TLS12) and `max_version`.
    fn protocol_versions(
        &self,
        section: &Mapping,
    ) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
        let min = self
            .version(section, "min_version")?
            .unwrap_or(&rustls::version::TLS12);
        let max = self
            .version(section, "max_version")?
            .unwrap_or(&rustls::version::TLS13);
        let order = |v: &SupportedProtocolVersion| u16::from(v.version);
        let versions: Vec<&'static SupportedProtocolVersion> =
            [&rustls::version::TLS12, &rustls::version::TLS13]
                .into_iter()
                .filter(|v| order(v) >= order(min) && order(v) <= order(max))
                .collect();
        if versions.is_empty() {
            return Err(self.invalid("`tls_server_config.min_version` is above `max_version`"));
        }
        Ok(versions)
    }

    /// Whether the section turns TLS on (the toolkit's rule: a certificate, a key, a
    /// client CA or a client auth type), and then that both certificate and key are given.
    fn tls_requested(
        &self,
        section: &Mapping,
        has_client_auth: bool,
    ) -> Result<bool, WebConfigError> {
        let p = TLS;
        for (inline, file) in [
            ("cert", "cert_file"),
            ("key", "key_file"),
            ("client_ca", "client_ca_file"),
        ] {
            if self.string(section, p, inline)?.is_some()
                && self.string(section, p, file)?.is_some()
            {
                return Err(self.invalid(format!("give `{p}{inline}` or `{p}{file}`, not both")));
            }
        }
        let given = |inline: &str, file: &str| -> Result<bool, WebConfigError> {
            Ok(self.string(section, p, inline)?.is_some()
                || self.string(section, p, file)?.is_some())
        };
        let (has_cert, has_key) = (given("cert", "cert_file")?, given("key", "key_file")?);
        if !has_cert && !has_key && !given("client_ca", "client_ca_file")? && !has_client_auth {
            return Ok(false);
        }
        if !has_cert || !has_key {
            return Err(self.invalid(
                "TLS needs both `tls_server_config.cert_file` (or `cert`) and `key_file` (or `key`)",
            ));
        }
        Ok(true)
    }

    fn client_roots(&self, ca: (Vec<u8>, &'static str)) -> Result<RootCertStore, WebConfigError> {
        let mut roots = RootCertStore::empty();
        for cert in self.certificates(ca)? {
            roots.add(cert).map_err(|source| self.tls_error(source))?;
        }
        Ok(roots)
    }

    /// The client certificate verifier `client_auth_type` asks for (`None`: no client
    /// authentication).
    fn client_verifier(
        &self,
        client_auth: Option<&str>,
        roots: Option<RootCertStore>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, WebConfigError> {
        let verify = |roots: RootCertStore, optional: bool| {
            let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let builder = if optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map(Some)
                .map_err(|source| WebConfigError::ClientVerifier {
                    path: self.path.to_path_buf(),
                    source,
                })
        };
        match (client_auth.unwrap_or("NoClientCert"), roots) {
            ("NoClientCert", None) => Ok(None),
            ("NoClientCert", Some(_)) => Err(self.invalid(
                "a client CA is set but `tls_server_config.client_auth_type` is NoClientCert: set it to RequireAndVerifyClientCert",
            )),
            ("RequireAndVerifyClientCert", Some(roots)) => verify(roots, false),
            ("VerifyClientCertIfGiven", Some(roots)) => verify(roots, true),
            (kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven"), None) => Err(self.invalid(format!(
                "`client_auth_type: {kind}` needs `tls_server_config.client_ca_file` (or `client_ca`)"
            ))),
            (kind @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert"), _) => Err(self.invalid(format!(
                "`client_auth_type: {kind}` (a client certificate that is not verified) is not supported: use RequireAndVerifyClientCert with a client CA"
            ))),
            (other, _) => Err(self.invalid(format!(
                "`tls_server_config.client_auth_type`: unknown value {other:?} (NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
            ))),
        }
    }

    fn tls_error(&self, source: rustls::Error) -> WebConfigError {
        WebConfigError::Tls {
            path: self.path.to_path_buf(),
            source,
        }
    }

    fn headers(&self, map: &Mapping) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
        let mut headers = Vec::new();
        for (name, value) in map {
            let name = name
                .as_str()
                .ok_or_else(|| self.invalid("a header name is not a string"))?;
            let Some((_, allowed)) = HEADERS.iter().find(|(h, _)| *h == name) else {
                let names: Vec<&str> = HEADERS.iter().map(|(h, _)| *h).collect();
                return Err(self.invalid(format!(
                    "HTTP header {name:?} can not be configured (known: {})",
                    names.join(", ")
                )));
            };
            let value = match value {
                Value::String(s) => s.as_str(),
                Value::Null => continue,
                _ => return Err(self.invalid(format!("header {name}: the value must be a string"))),
            };
            if value.is_empty() {
                continue;
            }
            if !allowed.is_empty() && !allowed.contains(&value) {
                return Err(self.invalid(format!(
                    "invalid value for {name}: expected one of {allowed:?}, got {value:?}"
                )));
            }
            let header_value = HeaderValue::from_str(value).map_err(|_| {
                self.invalid(format!(
                    "header {name}: the value is not a valid HTTP header value"
                ))
            })?;
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| self.invalid(format!("{name:?} is not a valid HTTP header name")))?;
            headers.push((header_name, header_value));
        }
        Ok(headers)
    }

    fn users(&self, map: &Mapping) -> Result<BasicAuth, WebConfigError> {
        let mut users = Vec::new();
        for (user, hash) in map {
            let user = user.as_str().ok_or_else(|| {
                self.invalid("a user name under `basic_auth_users` is not a string")
            })?;
            let hash = hash.as_str().ok_or_else(|| {
                self.invalid(format!(
                    "`basic_auth_users.{user}` must be a bcrypt hash (a string)"
                ))
            })?;
            users.push((user.to_string(), hash.to_string()));
        }
        // The hash itself is not printed: it is the password's stand-in.
        BasicAuth::new(users).map_err(|user| {
            self.invalid(format!(
                "`basic_auth_users.{user}` is not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(Path::new("/etc/x/web.yml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_file_is_plain_http() {
        for text in [
            "",
            "# nothing\n",
            "basic_auth_users:\n",
            "http_server_config:\n  http2: false\n",
        ] {
            let config = parse(text).unwrap();
            assert!(
                config.tls.is_none() && config.users.is_none() && config.headers.is_empty(),
                "{text}"
            );
        }
    }

    #[test]
    fn problems_name_the_key() {
        let cases = [
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n", "above `max_version`"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n", "TLS 1.0 and 1.1 are not offered"),
            ("tls_server_config:\n  key_file: b\n", "needs both `tls_server_config.cert_file`"),
            ("tls_server_config:\n  cert: x\n  cert_file: a\n  key_file: b\n", "not both"),
            ("tls_server_config:\n  cert_file: a\n  bogus: 1\n", "unknown key `tls_server_config.bogus`"),
            ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "invalid value for X-Frame-Options"),
            ("http_server_config:\n  http2: maybe\n", "`http_server_config.http2` must be true or false"),
            ("- a list\n", "expected a mapping"),
        ];
        for (text, wanted) in cases {
            let error = parse(text).err().unwrap_or_default();
            assert!(error.contains(wanted), "{text}: {error}");
            assert!(error.contains("/etc/x/web.yml"), "{error}");
        }
    }

    #[test]
    fn headers_and_users_are_read() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let config = parse(&format!(
            "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: \"\"\nbasic_auth_users:\n  a: {hash}\n  b: {hash}\n"
        ))
        .unwrap();
        assert_eq!(
            config.headers.len(),
            1,
            "an empty value is unset, as in the toolkit"
        );
        assert_eq!(config.headers[0].0, "strict-transport-security");
        assert_eq!(config.users.map(|u| u.count()), Some(2));
    }
}
