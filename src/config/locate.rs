//! Best-effort line of a dotted key (`api.timeout`, `apps[1].id`) in block-style YAML.
//! The YAML tree keeps no positions, so problems found while reading or validating
//! look their key up in the text; the parser reports lines for its own errors.

/// One non-blank, non-comment line.
struct Line<'a> {
    number: usize,
    /// Column of the first visible character (the dash of a list item).
    indent: usize,
    /// A list item (`- ...`): its own key, if any, sits further in.
    dash: bool,
    /// Column of the key (after the dash of a list item).
    key_column: usize,
    key: Option<&'a str>,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let (dash, content) = match trimmed.strip_prefix('-') {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => (true, rest.trim_start()),
            _ => (false, trimmed),
        };
        let key_column = raw.len() - content.len();
        let key = content
            .split_once(':')
            .filter(|(_, after)| after.is_empty() || after.starts_with([' ', '\t']))
            .map(|(key, _)| key.trim());
        out.push(Line {
            number: index + 1,
            indent,
            dash,
            key_column,
            key,
        });
    }
    out
}

/// `apps[1]` → (`apps`, Some(1)); `timeout` → (`timeout`, None).
fn segment(part: &str) -> (&str, Option<usize>) {
    match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
        Some((name, index)) => (name, index.parse().ok()),
        None => (part, None),
    }
}

pub(super) fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let lines = lines(text);
    let mut from = 0;
    // Lines of the current block are indented deeper than this (None: the whole file).
    let mut parent: Option<usize> = None;
    let mut found = None;
    for part in dotted.split('.') {
        let (name, index) = segment(part);
        let mut at = find_key(&lines, from, parent, name)?;
        if let Some(index) = index {
            at = find_item(&lines, at, index)?;
            // The item's first key is on the dash line itself.
            parent = Some(lines[at].indent);
            from = at;
        } else {
            parent = Some(lines[at].key_column);
            from = at + 1;
        }
        found = Some(lines[at].number);
    }
    found
}

/// A key of the block starting at `from`: only at the block's own column, so that a
/// deeper `timeout:` is not taken for a top-level one.
fn find_key(lines: &[Line<'_>], from: usize, parent: Option<usize>, name: &str) -> Option<usize> {
    let column = lines.get(from)?.key_column;
    for (i, line) in lines.iter().enumerate().skip(from) {
        if let Some(parent) = parent {
            if !(i == from && line.dash) && line.indent <= parent {
                return None;
            }
        }
        if line.key_column == column && line.key == Some(name) {
            return Some(i);
        }
    }
    None
}

/// The `index`-th item of the list under the key at `key_at`. Items may be indented
/// deeper than the key or sit at its column (`apps:\n- id: a`).
fn find_item(lines: &[Line<'_>], key_at: usize, index: usize) -> Option<usize> {
    let key_column = lines[key_at].key_column;
    let mut item_column = None;
    let mut seen = 0;
    for (i, line) in lines.iter().enumerate().skip(key_at + 1) {
        if line.indent < key_column || (line.indent == key_column && !line.dash) {
            return None;
        }
        if !line.dash || *item_column.get_or_insert(line.indent) != line.indent {
            continue;
        }
        if seen == index {
            return Some(i);
        }
        seen += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::line_of_key;

    const TEXT: &str = "\
# comment
listen: \":8467\"
api:
  api_key: k   # trailing comment
  timeout: 5s
apps:
  - id: a
  - id: b
    verification_window: 10m
spool:
  dir: /x
timeout: 1s
";

    #[test]
    fn keys_are_found_in_their_own_block() {
        assert_eq!(line_of_key(TEXT, "listen"), Some(2));
        assert_eq!(line_of_key(TEXT, "api.timeout"), Some(5));
        assert_eq!(line_of_key(TEXT, "api.api_key"), Some(4));
        assert_eq!(line_of_key(TEXT, "timeout"), Some(12));
        assert_eq!(line_of_key(TEXT, "spool.dir"), Some(11));
        // Not under `spool`, though a `timeout` follows later at the top level.
        assert_eq!(line_of_key(TEXT, "spool.timeout"), None);
    }

    #[test]
    fn list_items_are_counted() {
        assert_eq!(line_of_key(TEXT, "apps"), Some(6));
        assert_eq!(line_of_key(TEXT, "apps[0].id"), Some(7));
        assert_eq!(line_of_key(TEXT, "apps[1].id"), Some(8));
        assert_eq!(line_of_key(TEXT, "apps[1].verification_window"), Some(9));
        assert_eq!(line_of_key(TEXT, "apps[0].verification_window"), None);
        assert_eq!(line_of_key(TEXT, "apps[2].id"), None);
        let flush = "apps:\n- id: a\n- id: b\nspool: {}\n";
        assert_eq!(line_of_key(flush, "apps[1].id"), Some(3));
    }
}
