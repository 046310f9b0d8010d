//! What is wrong with a configuration: every problem found, each naming its key and,
//! where the text is known, its line; all of them are reported at once.

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::line_of_key;

/// Errors found while loading a configuration file. Each names the file, and where
/// it is known, the key and the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem of the file, in the order of its lines.
    #[error("{path}: {problems}")]
    Invalid {
        path: PathBuf,
        problems: ProblemList,
    },
}

/// One thing wrong in a configuration.
#[derive(Debug)]
pub struct Problem {
    /// The dotted key (`api.timeout`, `apps[1].id`); `None` for YAML syntax errors.
    pub key: Option<String>,
    pub line: Option<usize>,
    /// What is wrong, in the operator's words (never the secret).
    pub message: String,
    /// The underlying error (an unreadable secret file, a bad URL, the YAML parser's).
    pub cause: Option<Box<dyn Error + Send + Sync>>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.key, self.line) {
            (Some(key), Some(line)) => write!(f, "key `{key}` (line {line}): {}", self.message),
            (Some(key), None) => write!(f, "key `{key}`: {}", self.message),
            (None, Some(line)) => write!(f, "line {line}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl Error for Problem {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// The problems of one file: one is printed on the same line as the file name, several
/// as a list.
#[derive(Debug)]
pub struct ProblemList(pub Vec<Problem>);

impl fmt::Display for ProblemList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            all => {
                write!(f, "{} problems:", all.len())?;
                for problem in all {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// Collects problems while a file is read and validated. Knows the text (when there is
/// one) to put line numbers on keys, and records every key the reader asked for: that
/// record is the list of keys the program understands.
pub(super) struct Problems<'t> {
    text: Option<&'t str>,
    found: Vec<Problem>,
    keys_read: Vec<String>,
}

impl<'t> Problems<'t> {
    pub fn new(text: Option<&'t str>) -> Self {
        Problems {
            text,
            found: Vec::new(),
            keys_read: Vec::new(),
        }
    }

    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        self.push(key, message.into(), None);
    }

    pub fn add_caused(
        &mut self,
        key: &str,
        message: impl Into<String>,
        cause: impl Error + Send + Sync + 'static,
    ) {
        self.push(key, message.into(), Some(Box::new(cause)));
    }

    /// A problem the YAML parser found: it knows the line, there is no key.
    pub fn add_syntax(&mut self, error: serde_yaml::Error) {
        let mut message = error.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        self.found.push(Problem {
            key: None,
            line: error.location().map(|l| l.line()),
            message,
            cause: Some(Box::new(error)),
        });
    }

    fn push(&mut self, key: &str, message: String, cause: Option<Box<dyn Error + Send + Sync>>) {
        let line = self.text.and_then(|text| line_of_key(text, key));
        self.found.push(Problem {
            key: Some(key.to_string()),
            line,
            message,
            cause,
        });
    }

    /// Is something already reported about this key? Then "missing" or a cross-check
    /// against its default would only add noise.
    pub fn about(&self, key: &str) -> bool {
        self.found.iter().any(|p| p.key.as_deref() == Some(key))
    }

    pub fn note_key_read(&mut self, key: String) {
        self.keys_read.push(key);
    }

    pub fn keys_read(&self) -> &[String] {
        &self.keys_read
    }

    /// The value when nothing was found wrong, else every problem in line order.
    pub fn finish<T>(mut self, path: &Path, value: Option<T>) -> Result<T, ConfigError> {
        match value {
            Some(value) if self.found.is_empty() => return Ok(value),
            // Every `None` comes with a problem; this keeps a slip from passing silently.
            None if self.found.is_empty() => self.found.push(Problem {
                key: None,
                line: None,
                message: "the configuration is incomplete".into(),
                cause: None,
            }),
            _ => {}
        }
        // Keys without a line (missing ones) go last; otherwise the file's order.
        self.found.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems: ProblemList(self.found),
        })
    }
}
