//! Seeds derived from the simulator's seed, so that every random draw about an order
//! depends on its id alone (not on send order, timing or other orders).

use md5::{Digest, Md5};

/// A stable 64-bit seed for `(seed, domain, id)`: md5 rather than `std`'s hasher,
/// whose output may change between Rust releases.
pub fn derive_seed(seed: u64, domain: &str, id: &str) -> u64 {
    let mut hasher = Md5::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(domain.as_bytes());
    hasher.update([0u8]);
    hasher.update(id.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}
