//! HTTP basic authentication against bcrypt hashes (`basic_auth_users` of the web
//! configuration file), as exporter-toolkit does it: an unknown user costs the same
//! bcrypt as a known one, and a verified (user, password) pair is remembered so
//! that a scraper pays bcrypt once, not on every scrape.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

/// Verified pairs kept at most; the set starts over when full (a few scrapers use it).
const VERIFIED_CAPACITY: usize = 64;

pub struct BasicAuth {
    /// User → bcrypt hash.
    users: HashMap<String, String>,
    /// A configured hash, checked for unknown users so that timing does not tell
    /// which users exist (the answer is "no" whatever bcrypt says).
    decoy: String,
    /// (user, password) pairs that matched their hash.
    verified: Mutex<HashSet<(String, Vec<u8>)>>,
    /// One bcrypt at a time: it is CPU-bound, and wrong passwords must not take
    /// every core from the daemon.
    lane: Semaphore,
}

impl BasicAuth {
    /// Fails with the name of the first user whose hash is not a bcrypt hash.
    pub fn new(users: Vec<(String, String)>) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut decoy = None;
        for (user, hash) in users {
            if bcrypt::HashParts::from_str(&hash).is_err() {
                return Err(user);
            }
            decoy.get_or_insert_with(|| hash.clone());
            map.insert(user, hash);
        }
        Ok(BasicAuth {
            users: map,
            decoy: decoy.unwrap_or_default(),
            verified: Mutex::new(HashSet::new()),
            lane: Semaphore::new(1),
        })
    }

    pub fn count(&self) -> usize {
        self.users.len()
    }

    /// Whether the request's `Authorization` header names a user with the right password.
    pub async fn allows(self: &Arc<Self>, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let pair = (user, password);
        if self.verified.lock().is_ok_and(|v| v.contains(&pair)) {
            return true;
        }
        let Ok(_lane) = self.lane.acquire().await else {
            return false;
        };
        let known = self.users.get(&pair.0).cloned();
        let hash = known.clone().unwrap_or_else(|| self.decoy.clone());
        let password = pair.1.clone();
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|verified| verified.unwrap_or(false));
        let allowed = matched && known.is_some();
        if allowed {
            if let Ok(mut verified) = self.verified.lock() {
                if verified.len() >= VERIFIED_CAPACITY {
                    verified.clear();
                }
                verified.insert(pair);
            }
        }
        allowed
    }
}

/// The user and password of a `Basic` authorization header.
fn credentials(header: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let text = header.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[tokio::test]
    async fn accepts_the_right_password_only() {
        let hash = bcrypt::hash("s3cret:with colon", 4).unwrap();
        let auth = Arc::new(BasicAuth::new(vec![("prom".into(), hash)]).unwrap());
        assert!(
            auth.allows(Some(&header("prom", "s3cret:with colon")))
                .await
        );
        // Again, from the verified set.
        assert!(
            auth.allows(Some(&header("prom", "s3cret:with colon")))
                .await
        );
        assert!(!auth.allows(Some(&header("prom", "wrong"))).await);
        assert!(
            !auth
                .allows(Some(&header("nobody", "s3cret:with colon")))
                .await
        );
        assert!(!auth.allows(None).await);
        let bearer = HeaderValue::from_static("Bearer abc");
        assert!(!auth.allows(Some(&bearer)).await);
    }

    #[test]
    fn refuses_a_hash_that_is_not_bcrypt() {
        let err = BasicAuth::new(vec![("prom".into(), "plaintext".into())]).err();
        assert_eq!(err.as_deref(), Some("prom"));
    }
}
