//! Configuration: the YAML file operators write. Key names are a contract used by
//! outside tests; every key but the credentials has a default.
//!
//! Loading runs in two steps, each collecting every problem it finds:
//! - `file` + `yaml`: the text is read into [`ConfigFile`] (every key optional,
//!   types checked, errors in the operator's words);
//! - `validate`: each section's `validate()` applies defaults and bounds and resolves
//!   the secret once, giving the [`Config`] the daemon runs with (`settings`).
//!
//! Problems name the key and the line (`locate`); the secret is a [`Secret`] from
//! the moment it is read and never appears in an error or a debug print.

mod file;
mod locate;
mod problems;
mod secret;
mod settings;
mod validate;
mod yaml;

use std::path::Path;

pub use file::{
    AccountSection, ApiSection, AppEntry, ConfigFile, JournalSection, PollingSection, SpoolSection,
    TrackingSection,
};
pub use problems::{ConfigError, Problem, ProblemList};
pub use secret::Secret;
// Also the parser of `--web.listen-address`, so that the flag takes what the key takes.
pub use settings::{
    parse_offset, valid_app_id, AccountSettings, ApiSettings, AppSettings, Config, JournalSettings,
    PollingSettings, SpoolSettings, TrackingSettings,
};
pub use yaml::parse_listen;

use problems::Problems;

impl Config {
    /// Reads, expands and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses a configuration text; `env` resolves `${VAR}` in `api.api_secret`.
    /// Every problem of the text is reported, each with its key and line.
    pub fn from_yaml(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut problems = Problems::new(Some(text));
        let config = match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(root) => ConfigFile::read(root, &mut problems).check(env, &mut problems),
            Err(error) => {
                problems.add_syntax(error);
                None
            }
        };
        problems.finish(path, config)
    }
}

/// Every key the program reads, dotted (`api.timeout`, `apps[].id`), in the order of
/// the README's table, which a test checks against this list.
pub fn keys() -> Vec<String> {
    let mut problems = Problems::new(None);
    ConfigFile::read(serde_yaml::Value::Null, &mut problems);
    problems
        .keys_read()
        .iter()
        .map(|key| key.replace("[0]", "[]"))
        .collect()
}

#[cfg(test)]
mod tests;
