//! Translation between places in the source text and key paths such as
//! `databases[0].shards[1].primary`, so that every error can name both.

use toml_edit::{ImDocument, Item, Key};

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// The key path of the innermost key or value whose text holds `offset`;
/// empty if it is outside every key.
pub(crate) fn path_at(doc: &ImDocument<String>, offset: usize) -> String {
    let mut path = String::new();
    find(doc.as_item(), offset, &mut path);
    path
}

/// Extends `path` (which names `item`) down to the innermost key or value
/// holding `offset`; false, with `path` unchanged, if `item` does not hold it.
fn find(item: &Item, offset: usize, path: &mut String) -> bool {
    let len = path.len();
    if let Some(table) = item.as_table_like() {
        for (name, child) in table.iter() {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
            let on_key = table
                .key(name)
                .and_then(Key::span)
                .is_some_and(|span| span.contains(&offset));
            if on_key || find(child, offset, path) {
                return true;
            }
            path.truncate(len);
        }
    } else {
        let mut index = 0;
        while let Some(child) = item.get(index) {
            path.push_str(&format!("[{index}]"));
            if find(child, offset, path) {
                return true;
            }
            path.truncate(len);
            index += 1;
        }
    }
    item.span().is_some_and(|span| span.contains(&offset))
}

/// Where the key path starts in the source: the key itself, or the table or
/// array element an index points at. A path that is only partly present
/// (a missing key) gives the deepest part that is; nothing at all gives `None`.
pub(crate) fn offset_of(doc: &ImDocument<String>, path: &str) -> Option<usize> {
    let mut item = doc.as_item();
    let mut offset = None;
    for step in steps(path) {
        let (child, span) = match step {
            Step::Key(name) => {
                let Some(child) = item.get(name) else { break };
                let key = item.as_table_like().and_then(|table| table.key(name));
                (child, key.and_then(Key::span).or_else(|| child.span()))
            }
            Step::Index(index) => {
                let Some(child) = item.get(index) else { break };
                (child, child.span())
            }
        };
        offset = span.map(|span| span.start).or(offset);
        item = child;
    }
    offset
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a[0].b` into `Key(a), Index(0), Key(b)`. Paths come from this
/// crate's own field names, which hold no dots or brackets.
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|part| !part.is_empty()) {
        let mut pieces = part.split('[');
        steps.extend(pieces.next().map(Step::Key));
        steps.extend(
            pieces.filter_map(|index| index.trim_end_matches(']').parse().ok().map(Step::Index)),
        );
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
[proxy]
pool_size = 5

[[databases]]
name = \"app\"
[[databases.shards]]
primary = \"a:5432\"
[[databases.shards]]
primary = \"b:5432\"
replicas = [\"c:5432\", \"d:5432\"]
";

    fn doc() -> ImDocument<String> {
        ImDocument::parse(TEXT.to_owned()).unwrap()
    }

    fn position(path: &str) -> Option<(usize, usize)> {
        offset_of(&doc(), path).map(|offset| line_column(TEXT, offset))
    }

    #[test]
    fn line_column_counts_from_one_in_characters() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é = 1", 4), (1, 4));
    }

    #[test]
    fn finds_keys_tables_and_array_elements() {
        assert_eq!(position("proxy.pool_size"), Some((2, 1)));
        assert_eq!(position("databases[0]"), Some((4, 1)));
        assert_eq!(position("databases[0].shards[1].primary"), Some((9, 1)));
        assert_eq!(
            position("databases[0].shards[1].replicas[1]"),
            Some((10, 23))
        );
    }

    #[test]
    fn a_missing_key_gives_its_deepest_present_parent() {
        assert_eq!(position("databases[0].server_database"), Some((4, 1)));
        assert_eq!(position("proxy.listen"), Some((1, 2)));
        assert_eq!(position("users"), None);
    }

    #[test]
    fn path_at_names_the_innermost_key_or_value() {
        let doc = doc();
        let at = |needle: &str| path_at(&doc, TEXT.find(needle).unwrap());
        assert_eq!(at("pool_size"), "proxy.pool_size");
        assert_eq!(at("5\n"), "proxy.pool_size");
        assert_eq!(at("\"b:5432\""), "databases[0].shards[1].primary");
        assert_eq!(at("\"d:5432\""), "databases[0].shards[1].replicas[1]");
        assert_eq!(at("[[databases]]"), "databases[0]");
    }
}
