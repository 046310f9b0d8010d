//! The API secret: held in one type that never prints itself, resolved once at load
//! time from the file's `api_secret` (`${VAR}` expanded) or `api_secret_file`.

use std::fmt;
use std::path::Path;

use super::problems::Problems;

/// A secret string that never prints itself: `Debug` and `Display` show a fixed
/// redaction, and [`Secret::expose`] is the only way to read it (for signing).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call it only where the value is used (the request
    /// signature), never to print or log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Compares without revealing: lets checks and tests say `secret == "expected"`.
impl PartialEq<str> for Secret {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// Resolves `api_secret` / `api_secret_file` into the one secret the client signs with.
/// Problems name the key and never the secret or the file's content.
pub(super) fn resolve(
    value: Option<Secret>,
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<Secret> {
    let (key, secret) = match (value, file) {
        (Some(_), Some(_)) => {
            problems.add(
                "api.api_secret_file",
                "set either api_secret or api_secret_file, not both",
            );
            return None;
        }
        (None, None) => {
            // A secret of the wrong type was already reported; "missing" would mislead.
            if !problems.about("api.api_secret") && !problems.about("api.api_secret_file") {
                problems.add(
                    "api.api_secret",
                    "missing: set api.api_secret (\"${VAR}\" reads the environment) or api.api_secret_file",
                );
            }
            return None;
        }
        (Some(raw), None) => match expand_env(raw.expose(), env) {
            Ok(secret) => ("api.api_secret", secret),
            Err(var) => {
                problems.add(
                    "api.api_secret",
                    format!("environment variable {var} is not set"),
                );
                return None;
            }
        },
        (None, Some(path)) => match std::fs::read_to_string(path) {
            // A trailing newline is how editors and `echo` end files; it is not part of it.
            Ok(text) => (
                "api.api_secret_file",
                Secret::new(text.trim_end_matches(['\r', '\n'])),
            ),
            Err(source) => {
                let message = format!("cannot read {}: {source}", path.display());
                problems.add_caused("api.api_secret_file", message, source);
                return None;
            }
        },
    };
    if secret.is_empty() {
        problems.add(key, "the secret is empty");
        return None;
    }
    Some(secret)
}

/// Expands `${VAR}` references; returns the missing variable's name on failure.
fn expand_env(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                out.push_str(&env(name).ok_or_else(|| name.to_string())?);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Ok(Secret(out))
}
