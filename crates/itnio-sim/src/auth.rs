//! The provider's request signature: `Sign = md5_hex(apiKey + apiSecret + Timestamp)`.

use hyper::HeaderMap;
use md5::{Digest, Md5};

/// The largest accepted distance between `Timestamp` and the provider's clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// Lowercase hex md5 of `api_key + api_secret + timestamp`.
pub fn sign(api_key: &str, api_secret: &str, timestamp: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(api_key.as_bytes());
    hasher.update(api_secret.as_bytes());
    hasher.update(timestamp.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    MissingHeader(&'static str),
    WrongKey,
    WrongSign,
    BadTimestamp,
    Expired { skew_secs: i64 },
}

impl AuthFailure {
    /// The provider status: `-16` for a stale timestamp, `-1` for everything else.
    pub fn status(&self) -> &'static str {
        match self {
            AuthFailure::Expired { .. } => "-16",
            _ => "-1",
        }
    }

    /// The `reason` text; never contains the secret or a signature.
    pub fn reason(&self) -> String {
        match self {
            AuthFailure::MissingHeader(h) => format!("account authentication error: missing {h} header"),
            AuthFailure::WrongKey => "account authentication error: unknown Api-Key".into(),
            AuthFailure::WrongSign => "account authentication error: Sign does not match".into(),
            AuthFailure::BadTimestamp => {
                "account authentication error: Timestamp is not Unix seconds".into()
            }
            AuthFailure::Expired { skew_secs } => format!(
                "timestamp expired: {skew_secs} s away from the server clock (at most {MAX_SKEW_SECS} s)"
            ),
        }
    }
}

/// Checks `Api-Key`, `Sign` and `Timestamp` against the account and the server clock
/// (`now_secs`, Unix seconds).
pub fn check(
    headers: &HeaderMap,
    api_key: &str,
    api_secret: &str,
    now_secs: i64,
) -> Result<(), AuthFailure> {
    let header = |name: &'static str| -> Result<&str, AuthFailure> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(AuthFailure::MissingHeader(name))
    };
    let key = header("Api-Key")?;
    let timestamp = header("Timestamp")?;
    let signature = header("Sign")?;
    if key != api_key {
        return Err(AuthFailure::WrongKey);
    }
    if !signature.eq_ignore_ascii_case(&sign(api_key, api_secret, timestamp)) {
        return Err(AuthFailure::WrongSign);
    }
    let ts: i64 = timestamp.parse().map_err(|_| AuthFailure::BadTimestamp)?;
    let skew_secs = now_secs.saturating_sub(ts).saturating_abs();
    if skew_secs > MAX_SKEW_SECS {
        return Err(AuthFailure::Expired { skew_secs });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(key: &str, ts: &str, sign: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [("Api-Key", key), ("Timestamp", ts), ("Sign", sign)] {
            h.insert(name, HeaderValue::from_str(value).expect("header value"));
        }
        h
    }

    /// The provider's sample: apiKey "bDqJFiq9", Timestamp 1630468800. Its secret is
    /// not published, so the sample's request is signed here with a made-up secret.
    #[test]
    fn signature_of_the_provider_sample() {
        // `printf '%s' bDqJFiq9secret1630468800 | md5sum`
        let ours = sign("bDqJFiq9", "secret", "1630468800");
        assert_eq!(ours, "5e05d651d20b87515084ccf02b24c04f");
        // RFC 1321 test vector: md5("abc") split across the three parts.
        assert_eq!(sign("a", "b", "c"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(sign("", "", ""), "d41d8cd98f00b204e9800998ecf8427e");

        let now = 1_630_468_800;
        let ok = headers("bDqJFiq9", "1630468800", &ours);
        assert_eq!(check(&ok, "bDqJFiq9", "secret", now), Ok(()));
        let upper = headers("bDqJFiq9", "1630468800", &ours.to_uppercase());
        assert_eq!(check(&upper, "bDqJFiq9", "secret", now), Ok(()));
        // The sample's own Sign belongs to the provider's secret, not ours.
        let sample = headers("bDqJFiq9", "1630468800", "05d7a50893e22a5c4bb3216ae3396c7c");
        assert_eq!(
            check(&sample, "bDqJFiq9", "secret", now),
            Err(AuthFailure::WrongSign)
        );
    }

    #[test]
    fn refusals() {
        let now = 1_700_000_000;
        let ts = now.to_string();
        let good = sign("k", "s", &ts);
        assert_eq!(
            check(&headers("x", &ts, &good), "k", "s", now),
            Err(AuthFailure::WrongKey)
        );
        assert_eq!(
            check(&HeaderMap::new(), "k", "s", now),
            Err(AuthFailure::MissingHeader("Api-Key"))
        );
        let stale = (now - 301).to_string();
        let r = check(
            &headers("k", &stale, &sign("k", "s", &stale)),
            "k",
            "s",
            now,
        );
        assert_eq!(r, Err(AuthFailure::Expired { skew_secs: 301 }));
        assert_eq!(r.expect_err("stale").status(), "-16");
        let edge = (now + 300).to_string();
        assert_eq!(
            check(&headers("k", &edge, &sign("k", "s", &edge)), "k", "s", now),
            Ok(())
        );
        let junk = "soon";
        assert_eq!(
            check(&headers("k", junk, &sign("k", "s", junk)), "k", "s", now),
            Err(AuthFailure::BadTimestamp)
        );
    }
}
