//! Printing an error with its causes.
//!
//! Library errors keep their cause as `source()` and say only their own part in
//! `Display` ("cannot open state database /x/state.redb"); [`Chain`] joins the whole
//! chain ("…: Previous I/O error occurred") for `main` and for log lines.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its causes, separated by ": ".
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open state database /x/state.redb")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_printed_once_in_order() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(
            Chain(&e).to_string(),
            "cannot open state database /x/state.redb: disk on fire"
        );
        let plain = std::io::Error::other("alone");
        assert_eq!(Chain(&plain).to_string(), "alone");
    }
}
