//! Grafana's template variables, resolved the way the dashboards see them with "All"
//! selected. The one table of them: the live-Prometheus test substitutes with it, and the
//! dashboard checks allow exactly these variables in panel queries.

// Shared by several test crates, each of which uses a part.
#![allow(dead_code)]

/// Variable name (without `$`) and the value a query is evaluated with. The `$__*`
/// intervals fit the live test's Prometheus, which scrapes every second.
pub const VARIABLES: &[(&str, &str)] = &[
    ("app_id", ".*"),
    ("channel", ".*"),
    ("country", ".*"),
    ("__rate_interval", "30s"),
    ("__interval", "5s"),
    ("__range", "5m"),
];

/// One variable reference in a query: `$name`, `${name}` or `${name:format}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Byte range of the whole reference in the query.
    pub span: std::ops::Range<usize>,
    pub name: String,
}

/// Every variable reference in `expr`. A `$` that starts no name (the end-of-string
/// anchor in a regex matcher, say) is not a reference.
pub fn references(expr: &str) -> Vec<Reference> {
    let bytes = expr.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let braced = bytes.get(i + 1) == Some(&b'{');
        let start = i + 1 + usize::from(braced);
        let mut end = start;
        while end < bytes.len() && is_name(bytes[end]) {
            end += 1;
        }
        if end == start || bytes[start].is_ascii_digit() {
            i += 1;
            continue;
        }
        let name = expr[start..end].to_string();
        let mut stop = end;
        if braced {
            // `${name}` or `${name:format}`: the format only changes how a multi-value
            // selection is joined, and "All" is a single `.*`.
            match expr[end..].find('}') {
                Some(close) => stop = end + close + 1,
                None => {
                    i += 1;
                    continue;
                }
            }
        }
        found.push(Reference {
            span: i..stop,
            name,
        });
        i = stop;
    }
    found
}

/// The value of a variable, if the table has it.
pub fn value_of(name: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, value)| *value)
}

/// `expr` with every variable replaced by its value; names the first variable the table
/// does not know.
pub fn substitute(expr: &str) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len());
    let mut copied = 0;
    for r in references(expr) {
        let value = value_of(&r.name)
            .ok_or_else(|| format!("unknown Grafana variable ${} in {expr}", r.name))?;
        out.push_str(&expr[copied..r.span.start]);
        out.push_str(value);
        copied = r.span.end;
    }
    out.push_str(&expr[copied..]);
    Ok(out)
}
