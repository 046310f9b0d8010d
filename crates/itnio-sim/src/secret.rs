//! The API secret the simulator accepts and its traffic generator signs with. It is
//! never printed: `Debug` and `Display` show `***`, and `expose()` is the one way
//! to read it (for signing and checking signatures).

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct ApiSecret(String);

impl ApiSecret {
    pub fn new(value: impl Into<String>) -> Self {
        ApiSecret(value.into())
    }

    /// The secret itself, for `sign` only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ApiSecret {
    fn from(value: &str) -> Self {
        ApiSecret::new(value)
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiSecret(***)")
    }
}

impl fmt::Display for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `value_parser` for `--api-secret`.
pub(crate) fn parse(text: &str) -> Result<ApiSecret, std::convert::Infallible> {
    Ok(ApiSecret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_never_printed() {
        let secret = ApiSecret::new("s3cr3t-value");
        assert_eq!(format!("{secret:?} {secret}"), "ApiSecret(***) ***");
        assert_eq!(secret.expose(), "s3cr3t-value");
    }
}
