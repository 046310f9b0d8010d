//! One order in a list (from its index row) and a page of them.

use super::*;

/// One order in a list (from its index row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub order_id: String,
    pub app_id: String,
    pub issued_at: String,
    pub state: State,
    pub outcome: Option<Outcome>,
    pub country: Option<String>,
    pub channel: Option<String>,
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    pub operator: Option<String>,
    pub latency_seconds: Option<f64>,
    pub cost_usd: f64,
    pub queries: u32,
    pub finalized_at: Option<String>,
}

impl Summary {
    pub fn of_row(order_id: &str, issued_ms: i64, row: &IndexRow) -> Summary {
        Summary {
            order_id: order_id.to_string(),
            app_id: row.app_id.clone(),
            issued_at: rfc3339(issued_ms),
            state: row.state,
            outcome: row.outcome,
            country: row.country.clone(),
            channel: row.channel.clone(),
            mcc: row.mcc,
            mnc: row.mnc,
            operator: row.operator.clone(),
            latency_seconds: row.latency_ms.map(seconds),
            cost_usd: row.cost_usd,
            queries: row.queries,
            finalized_at: row.finalized_ms.map(rfc3339),
        }
    }
}

/// One order of a list page, as the store returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub order_id: String,
    pub issued_ms: i64,
    pub row: IndexRow,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrdersPage {
    pub orders: Vec<Listed>,
    /// Where the next page starts; `None` on the last page. A page may hold fewer
    /// than `limit` orders and still have a next one (the walk is bounded per page).
    pub next_cursor: Option<Cursor>,
    /// Index rows that could not be decoded (skipped).
    pub damaged: u64,
}

impl OrdersPage {
    pub fn to_json(&self) -> Value {
        let orders: Vec<Summary> = self
            .orders
            .iter()
            .map(|o| Summary::of_row(&o.order_id, o.issued_ms, &o.row))
            .collect();
        json!({
            "orders": orders,
            "next_cursor": self.next_cursor.as_ref().map(Cursor::encode),
        })
    }
}
