//! Breakdowns: what they group by, what a group adds up, and the rows worst first.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::params::OrderFilter;
use super::time::{rfc3339, seconds};
use crate::journal::model::{IndexRow, State};
use crate::outcome::Outcome;

/// What a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Country,
    Operator,
    Channel,
    AppId,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Country => "country",
            By::Operator => "operator",
            By::Channel => "channel",
            By::AppId => "app_id",
        }
    }

    pub(super) fn parse(text: &str) -> Option<By> {
        Some(match text {
            "country" => By::Country,
            "operator" => By::Operator,
            "channel" => By::Channel,
            "app_id" => By::AppId,
            _ => return None,
        })
    }

    /// An index row's group (the value a filter of the same name matches).
    pub fn key(self, row: &IndexRow) -> String {
        match self {
            By::Country => row.country.clone().unwrap_or_else(|| "unknown".into()),
            By::Operator => row
                .operator_label
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            By::Channel => row.channel.clone().unwrap_or_else(|| "none".into()),
            By::AppId => row.app_id.clone(),
        }
    }
}

/// What a breakdown adds up per group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub orders: u64,
    pub final_orders: u64,
    pub pending: u64,
    /// Final orders per outcome, in [`Outcome::ALL`] order.
    pub outcomes: [u64; 6],
    pub delivered: u64,
    pub failed_attempts: u64,
    pub latencies_ms: Vec<i64>,
    pub cost_usd: f64,
    /// An operator's display name (by operator).
    pub name: Option<String>,
}

impl Group {
    pub fn add(&mut self, row: &IndexRow) {
        self.orders += 1;
        match row.state {
            State::Pending => self.pending += 1,
            State::Final => {
                self.final_orders += 1;
                if let Some(i) = row
                    .outcome
                    .and_then(|o| Outcome::ALL.iter().position(|x| *x == o))
                {
                    self.outcomes[i] += 1;
                }
            }
        }
        self.delivered += u64::from(row.attempts_delivered);
        self.failed_attempts += u64::from(row.attempts_failed);
        if let Some(ms) = row.latency_ms {
            self.latencies_ms.push(ms);
        }
        self.cost_usd += row.cost_usd;
        if self.name.is_none() {
            self.name.clone_from(&row.operator);
        }
    }

    pub fn verified(&self) -> u64 {
        self.outcomes[0]
    }

    /// Verified among final orders.
    pub fn conversion(&self) -> Option<f64> {
        (self.final_orders > 0).then(|| self.verified() as f64 / self.final_orders as f64)
    }

    /// Delivered among settled (delivered or failed) attempts.
    pub fn delivery_ratio(&self) -> Option<f64> {
        let settled = self.delivered + self.failed_attempts;
        (settled > 0).then(|| self.delivered as f64 / settled as f64)
    }
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// One group of a breakdown, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakdownRow {
    pub key: String,
    /// The operator's display name (by operator), else null.
    pub name: Option<String>,
    pub orders: u64,
    #[serde(rename = "final")]
    pub final_orders: u64,
    pub pending: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub conversion: Option<f64>,
    pub delivery_ratio: Option<f64>,
    pub latency_p50_seconds: Option<f64>,
    pub latency_p95_seconds: Option<f64>,
    pub cost_usd: f64,
    pub cost_per_verified_usd: Option<f64>,
}

/// A breakdown: groups worst first.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    pub by: By,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub rows: Vec<BreakdownRow>,
    pub damaged: u64,
}

impl Breakdown {
    /// Turns the groups into rows, lowest conversion first (groups without a final
    /// order last), then by key.
    pub fn from_groups(
        by: By,
        filter: &OrderFilter,
        groups: BTreeMap<String, Group>,
        damaged: u64,
    ) -> Breakdown {
        let mut rows: Vec<BreakdownRow> = groups
            .into_iter()
            .map(|(key, mut g)| {
                g.latencies_ms.sort_unstable();
                let verified = g.verified();
                BreakdownRow {
                    outcomes: Outcome::ALL
                        .iter()
                        .zip(g.outcomes)
                        .map(|(o, n)| (o.as_str(), n))
                        .collect(),
                    conversion: g.conversion(),
                    delivery_ratio: g.delivery_ratio(),
                    latency_p50_seconds: quantile(&g.latencies_ms, 0.5).map(seconds),
                    latency_p95_seconds: quantile(&g.latencies_ms, 0.95).map(seconds),
                    cost_per_verified_usd: (verified > 0).then(|| g.cost_usd / verified as f64),
                    cost_usd: g.cost_usd,
                    name: if by == By::Operator { g.name } else { None },
                    orders: g.orders,
                    final_orders: g.final_orders,
                    pending: g.pending,
                    key,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            let rank = |c: Option<f64>| c.unwrap_or(f64::INFINITY);
            rank(a.conversion)
                .total_cmp(&rank(b.conversion))
                .then_with(|| a.key.cmp(&b.key))
        });
        Breakdown {
            by,
            since_ms: filter.since_ms,
            until_ms: filter.until_ms,
            rows,
            damaged,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "by": self.by.as_str(),
            "since": self.since_ms.map(rfc3339),
            "until": self.until_ms.map(rfc3339),
            "rows": self.rows,
        })
    }
}
