//! The parse cache's key: the query text with its numbers blanked, so statements that
//! differ only in numeric literals (`WHERE id = 1`, `WHERE id = 2`, …) share one entry.
//!
//! A number never changes how a statement is classified; comments, which carry routing
//! hints, are kept verbatim.

/// The text with every number outside comments replaced by `0`. Digits that continue a
/// word (`t1`, `$1`, `"col2"` stays too, as it follows a letter) are kept.
pub fn cache_key(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    // Text up to `i` not yet copied starts here; it is copied in runs, not by character.
    let mut copied = 0;
    let mut i = 0;
    let mut last = b' ';
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
            i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
            last = b' ';
            continue;
        }
        if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i = block_comment_end(bytes, i);
            last = b' ';
            continue;
        }
        if b.is_ascii_digit() && !(last.is_ascii_alphanumeric() || last == b'_' || last == b'$') {
            // Cut at an ASCII byte, so always at a character boundary.
            out.push_str(&sql[copied..i]);
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            out.push('0');
            copied = i;
            last = b'0';
            continue;
        }
        // Bytes of a multi-byte character are never ASCII: they neither start a number
        // nor continue a word, as the character itself.
        last = b;
        i += 1;
    }
    out.push_str(&sql[copied..]);
    out
}

/// The index just past the block comment starting at `start` (nested as in PostgreSQL),
/// or the end of the text.
fn block_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_blanked_words_and_parameters_kept() {
        assert_eq!(
            cache_key("SELECT abalance FROM t1 WHERE aid = 12345 AND x = $2"),
            "SELECT abalance FROM t1 WHERE aid = 0 AND x = $2"
        );
        assert_eq!(cache_key("SELECT 1.5e10, -7"), "SELECT 0.0e10, -0");
        assert_eq!(cache_key("SELECT 'é9', x_2"), "SELECT 'é0', x_2");
    }

    #[test]
    fn comments_are_kept_verbatim() {
        assert_eq!(
            cache_key("/* pgshard: shard=3 */ SELECT 4 -- 5\n, 6"),
            "/* pgshard: shard=3 */ SELECT 0 -- 5\n, 0"
        );
        assert_eq!(cache_key("/* a /* 1 */ 2 */ 3"), "/* a /* 1 */ 2 */ 0");
        assert_eq!(cache_key("SELECT 1 /* open"), "SELECT 0 /* open");
    }

    #[test]
    fn statements_differing_in_numbers_share_a_key() {
        assert_eq!(
            cache_key("SELECT * FROM a WHERE id = 1"),
            cache_key("SELECT * FROM a WHERE id = 987654")
        );
        assert_ne!(
            cache_key("SELECT * FROM a WHERE id = 1"),
            cache_key("SELECT * FROM a WHERE id = 1 FOR UPDATE")
        );
    }
}
