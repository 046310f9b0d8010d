//! The ways one order's records deviate from the documented shape. Drawn by the
//! timeline (once per order), applied by the record renderer, read by the truth: its
//! own module so that `timeline` and `record` do not import each other.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::seed::derive_seed;

/// How one order's records deviate from the documented shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks(u8);

impl Quirks {
    /// `mcc`, `mnc`, `status`, `chargeCnt`, `terminationCode`, durations, `flowId` as strings.
    pub const STRING_NUMBERS: Quirks = Quirks(1);
    /// Times as `yyyy-MM-dd HH:mm:ss` in +08:00, without the offset.
    pub const LOCAL_TIMES: Quirks = Quirks(2);
    /// Fields the documentation does not list.
    pub const EXTRA_FIELDS: Quirks = Quirks(4);
    /// `displayNum: null`.
    pub const NULL_DISPLAY: Quirks = Quirks(8);
    /// A delivered SMS with an empty `doneTm`: its latency cannot be observed.
    pub const NO_DONE_TIME: Quirks = Quirks(16);

    pub const NONE: Quirks = Quirks(0);

    pub fn has(self, q: Quirks) -> bool {
        self.0 & q.0 == q.0 && q.0 != 0
    }

    fn with(self, q: Quirks, on: bool) -> Quirks {
        if on {
            Quirks(self.0 | q.0)
        } else {
            self
        }
    }

    /// The quirks of one order (none when quirks are disabled).
    pub fn draw(seed: u64, order_id: &str, enabled: bool) -> Quirks {
        if !enabled {
            return Quirks::NONE;
        }
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, "quirks", order_id));
        Quirks::NONE
            .with(Quirks::STRING_NUMBERS, rng.gen_bool(0.25))
            .with(Quirks::LOCAL_TIMES, rng.gen_bool(0.2))
            .with(Quirks::EXTRA_FIELDS, rng.gen_bool(0.3))
            .with(Quirks::NULL_DISPLAY, rng.gen_bool(0.5))
            .with(Quirks::NO_DONE_TIME, rng.gen_bool(0.05))
    }
}
