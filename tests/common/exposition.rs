//! The Prometheus text exposition format (version 0.0.4) read into flat samples, with
//! label values unescaped (`\\`, `\"`, `\n`) as the format defines them.
//!
//! Tests compare single series (`otp_delivery_latency_seconds_count{...}`), so a
//! histogram stays as its `_bucket`, `_sum` and `_count` samples instead of being
//! folded into one value. Whether a scrape is well-formed as a whole (HELP/TYPE
//! order, names) is promtool's job (`promtool_check`); this parser only has to read
//! each sample line exactly, and it refuses one it cannot read rather than guess.

use std::collections::BTreeMap;
use std::fmt;

/// One sample line: a series and its value (a timestamp, if present, is checked
/// and dropped: the daemon does not write any).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl fmt::Display for Sample {
    /// The series as the format writes it (labels re-escaped), for failure messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            let pairs: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            write!(f, "{{{}}}", pairs.join(","))?;
        }
        write!(f, " {}", self.value)
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// Every sample of an exposition; the error names the line it could not read.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start();
            !line.is_empty() && !line.starts_with('#')
        })
        .map(|(i, line)| parse_sample(line).map_err(|e| format!("line {}: {e}: {line}", i + 1)))
        .collect()
}

/// `name[{label="value",...}] value [timestamp]`
pub fn parse_sample(line: &str) -> Result<Sample, String> {
    let line = line.trim_start();
    let name_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_len];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("no metric name".into());
    }
    let mut rest = line[name_len..].trim_start();
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_value(fields.next().ok_or("no value")?)?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("timestamp {timestamp:?} is not whole milliseconds"))?;
    }
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the value"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Reads `label="value",...}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let (key, after_key) = rest.split_once('=').ok_or("label without '='")?;
        let key = key.trim();
        let valid_key = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(format!("invalid label name {key:?}"));
        }
        let quoted = after_key
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| format!("value of label {key} is not quoted"))?;
        let (value, after_value) = unescape_until_quote(quoted)
            .ok_or_else(|| format!("value of label {key} has no closing quote"))??;
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key} appears twice"));
        }
        rest = after_value.trim_start();
        // A comma separates pairs (and may trail the last one); otherwise the set ends.
        match rest.strip_prefix(',') {
            Some(after_comma) => rest = after_comma,
            None if rest.starts_with('}') => {}
            None => return Err(format!("expected ',' or '}}' after label {key}")),
        }
    }
}

/// The label value up to its closing quote, unescaped, and the text after the quote;
/// None if the quote never comes.
fn unescape_until_quote(text: &str) -> Option<Result<(String, &str), String>> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(Ok((value, &text[i + 1..]))),
            '\\' => match chars.next()?.1 {
                '\\' => value.push('\\'),
                '"' => value.push('"'),
                'n' => value.push('\n'),
                other => return Some(Err(format!("unknown escape \\{other} in a label value"))),
            },
            c => value.push(c),
        }
    }
    None
}

/// A Go float as Prometheus writes it, including `NaN`, `+Inf` and `-Inf`.
fn parse_value(text: &str) -> Result<f64, String> {
    // Rust reads "inf"/"NaN" in any case, with an optional sign, as Go does.
    text.parse::<f64>()
        .map_err(|_| format!("value {text:?} is not a number"))
}
