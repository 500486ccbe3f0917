//! pg_dump's `SEQUENCE SET` entries, and the value every shard's copy of a sequence is
//! restored to.
//!
//! Each shard has its own copy of a sequence, advanced by the rows inserted there. The
//! restored copies must all start beyond every value any shard handed out, or a shard
//! would hand out values its (or another shard's) restored rows already hold: the copy
//! furthest along, in the sequence's direction, wins.

use std::collections::BTreeMap;

use super::error::DumpError;
use super::snapshot::ShardSnapshot;

/// One `SELECT pg_catalog.setval('name', value, is_called);` line of pg_dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet {
    /// The sequence's name as pg_dump wrote it, inside the literal (schema-qualified,
    /// identifiers quoted where needed), without the literal's quotes.
    pub name: String,
    pub value: i64,
    /// Whether `value` was handed out already (the next is one step further).
    pub is_called: bool,
}

/// The start of the line pg_dump writes for a sequence's value.
const PREFIX: &str = "SELECT pg_catalog.setval(";

impl SequenceSet {
    /// Reads the line pg_dump writes (with or without its newline); `None` for
    /// anything else.
    pub fn parse(line: &str) -> Option<SequenceSet> {
        let rest = line.trim_end_matches(['\n', '\r']).strip_prefix(PREFIX)?;
        let rest = rest.strip_prefix('\'')?;
        let mut name = String::new();
        let mut chars = rest.char_indices();
        let after = loop {
            let (i, c) = chars.next()?;
            if c != '\'' {
                name.push(c);
                continue;
            }
            if rest[i + 1..].starts_with('\'') {
                name.push('\'');
                chars.next();
                continue;
            }
            break &rest[i + 1..];
        };
        let args = after.strip_prefix(", ")?.strip_suffix(");")?;
        let (value, is_called) = args.split_once(", ")?;
        let is_called = match is_called {
            "true" => true,
            "false" => false,
            _ => return None,
        };
        Some(SequenceSet {
            name,
            value: value.parse().ok()?,
            is_called,
        })
    }

    /// The line that sets it, as pg_dump writes it.
    pub fn to_sql(&self) -> String {
        format!(
            "{PREFIX}'{}', {}, {});\n",
            self.name.replace('\'', "''"),
            self.value,
            self.is_called
        )
    }

    /// The name as a SQL string literal.
    pub fn name_literal(&self) -> String {
        format!("'{}'", self.name.replace('\'', "''"))
    }

    /// Whether `self` is further along than `other` for a sequence that counts up
    /// (`ascending`) or down.
    pub fn is_further_than(&self, other: &SequenceSet, ascending: bool) -> bool {
        let order = if ascending {
            self.value.cmp(&other.value)
        } else {
            other.value.cmp(&self.value)
        };
        order.then(self.is_called.cmp(&other.is_called)).is_gt()
    }
}

/// Every sequence once, in the order first seen (shard 0's), at the value furthest along
/// among its copies: `per_shard` holds each shard's `SEQUENCE SET` entries; `snapshot`
/// (any shard's: the schemas are the same) says which way each sequence counts.
pub async fn furthest_values(
    snapshot: &mut ShardSnapshot,
    per_shard: Vec<Vec<SequenceSet>>,
) -> Result<Vec<SequenceSet>, DumpError> {
    let mut order: Vec<String> = Vec::new();
    let mut copies: BTreeMap<String, Vec<SequenceSet>> = BTreeMap::new();
    for sets in per_shard {
        for set in sets {
            let entry = copies.entry(set.name.clone()).or_default();
            if entry.is_empty() {
                order.push(set.name.clone());
            }
            entry.push(set);
        }
    }
    let mut furthest = Vec::new();
    for name in order {
        let mut sets = copies.remove(&name).unwrap_or_default().into_iter();
        let Some(mut best) = sets.next() else {
            continue;
        };
        let rest: Vec<SequenceSet> = sets.collect();
        if !rest.is_empty() {
            let ascending = snapshot.ascending(&best).await?;
            for copy in rest {
                if copy.is_further_than(&best, ascending) {
                    best = copy;
                }
            }
        }
        furthest.push(best);
    }
    Ok(furthest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_pg_dump_writes() {
        let set = SequenceSet::parse("SELECT pg_catalog.setval('public.t_id_seq', 42, true);\n");
        assert_eq!(
            set,
            Some(SequenceSet {
                name: "public.t_id_seq".into(),
                value: 42,
                is_called: true
            })
        );
        let quoted =
            SequenceSet::parse("SELECT pg_catalog.setval('\"My Schema\".\"it''s\"', -7, false);")
                .unwrap_or_else(|| panic!("not read"));
        assert_eq!(quoted.name, "\"My Schema\".\"it's\"");
        assert_eq!((quoted.value, quoted.is_called), (-7, false));
        assert_eq!(
            quoted.to_sql(),
            "SELECT pg_catalog.setval('\"My Schema\".\"it''s\"', -7, false);\n"
        );
        assert_eq!(quoted.name_literal(), "'\"My Schema\".\"it''s\"'");
        for other in [
            "SELECT pg_catalog.setval('s', 1);",
            "SELECT pg_catalog.setval('s', x, true);",
            "SELECT pg_catalog.setval('s, 1, true);",
            "SELECT setval('s', 1, true);",
            "SELECT pg_catalog.setval('s', 1, true) ;",
        ] {
            assert_eq!(SequenceSet::parse(other), None, "{other}");
        }
    }

    #[test]
    fn the_copy_furthest_along_wins() {
        let set = |value, is_called| SequenceSet {
            name: "s".into(),
            value,
            is_called,
        };
        assert!(set(5, false).is_further_than(&set(4, true), true));
        assert!(set(5, true).is_further_than(&set(5, false), true));
        assert!(!set(5, true).is_further_than(&set(5, true), true));
        assert!(set(-5, false).is_further_than(&set(-4, true), false));
        assert!(set(-5, true).is_further_than(&set(-5, false), false));
        assert!(!set(3, true).is_further_than(&set(-4, true), false));
    }
}
