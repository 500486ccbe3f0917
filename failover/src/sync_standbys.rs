//! What synchronous replication guarantees about acknowledged commits, and whether the
//! reachable replicas are proven to hold them all when the primary dies.
//!
//! PostgreSQL acknowledges a commit once the standbys `synchronous_standby_names` asks
//! for have flushed it: with `FIRST k (…)` (and the legacy list form, which is `FIRST 1`)
//! every standby in state `sync`; with `ANY k (…)` at least k of the `quorum` ones. WAL
//! is one line, so if a reachable replica holds a commit, the most advanced reachable
//! replica holds it too: promotion is safe when too few of the acknowledging standbys can
//! be unreachable for a commit to be on none of the reachable ones. Names only count
//! reachable replicas as acknowledging standbys; when several standbys share a name
//! (every standby streaming as `walreceiver`, say), a reachable one counts only as far
//! as no standby of that name outside the set could be it.

use std::collections::HashMap;

/// `FIRST` (priority) or `ANY` (quorum) commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMethod {
    First,
    Any,
}

/// A parsed `synchronous_standby_names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRule {
    pub method: SyncMethod,
    pub count: usize,
    /// Lower-cased (PostgreSQL compares them without case); `*` matches any standby.
    pub names: Vec<String>,
}

impl std::fmt::Display for SyncRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let method = match self.method {
            SyncMethod::First => "FIRST",
            SyncMethod::Any => "ANY",
        };
        write!(f, "{method} {} ({})", self.count, self.names.join(", "))
    }
}

impl SyncRule {
    /// Parses `synchronous_standby_names`: `None` when empty (asynchronous replication).
    pub fn parse(text: &str) -> Result<Option<SyncRule>, String> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Ok(None);
        }
        let mut rest = tokens.as_slice();
        let method = match rest.first() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("first") && rest.len() > 1 => {
                rest = &rest[1..];
                Some(SyncMethod::First)
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("any") && rest.len() > 1 => {
                rest = &rest[1..];
                Some(SyncMethod::Any)
            }
            _ => None,
        };
        let numbered = match rest {
            [Token::Word(n), Token::Open, inner @ .., Token::Close]
                if n.chars().all(|c| c.is_ascii_digit()) =>
            {
                let count: usize = n.parse().map_err(|_| format!("bad standby count {n:?}"))?;
                Some((count, inner))
            }
            _ => None,
        };
        let (method, count, list) = match (method, numbered) {
            (method, Some((count, list))) => (method.unwrap_or(SyncMethod::First), count, list),
            (None, None) => (SyncMethod::First, 1, rest),
            (Some(_), None) => {
                return Err(format!(
                    "{text:?}: FIRST and ANY take a number and a list in parentheses"
                ))
            }
        };
        if count == 0 {
            return Err(format!(
                "{text:?}: the number of standbys must be at least 1"
            ));
        }
        let mut names = Vec::new();
        let mut expect_name = true;
        for token in list {
            match (token, expect_name) {
                (Token::Word(name), true) => names.push(name.to_lowercase()),
                (Token::Quoted(name), true) => names.push(name.to_lowercase()),
                (Token::Comma, false) => {}
                _ => return Err(format!("{text:?}: not a list of standby names")),
            }
            expect_name = !expect_name;
        }
        if names.is_empty() || expect_name {
            return Err(format!("{text:?}: not a list of standby names"));
        }
        Ok(Some(SyncRule {
            method,
            count,
            names,
        }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '"' => {
                chars.next();
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            name.push('"');
                        }
                        Some('"') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("{text:?}: unterminated quoted name")),
                    }
                }
                tokens.push(Token::Quoted(name));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// One row of the primary's `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standby {
    /// Its `application_name`, lower-cased.
    pub name: String,
    /// `sync_state` is `sync` or `quorum`: commits wait for it.
    pub acknowledges: bool,
}

/// Whether the reachable replicas hold every commit the dead primary acknowledged: `Ok`
/// with the rule that decided, or `Err` with why that is not proven.
///
/// `standbys` is what the primary last reported; `reachable` the effective
/// `application_name` of every reachable replica (lower-cased), whether or not it may be
/// promoted: the caller then promotes the most advanced reachable replica.
pub fn commits_are_reachable(
    rule: Option<&SyncRule>,
    standbys: &[Standby],
    reachable: &[String],
) -> Result<String, String> {
    let acknowledging = standbys.iter().filter(|s| s.acknowledges).count();
    if acknowledging == 0 {
        return Err(
            "the primary used synchronous replication but no synchronous standby \
                    was connected: no replica is known to hold every acknowledged commit"
                .to_string(),
        );
    }
    // An unparsable setting is read as the most demanding: ANY 1, any one may hold it.
    let (method, count, shown) = match rule {
        Some(rule) => (rule.method, rule.count, rule.to_string()),
        None => (
            SyncMethod::Any,
            1,
            "an unrecognised rule, read as ANY 1".to_string(),
        ),
    };
    // Standbys each acknowledged commit is on, at least.
    let on_at_least = match method {
        SyncMethod::First => acknowledging,
        SyncMethod::Any => count.min(acknowledging),
    };
    let mut per_name: HashMap<&str, (usize, usize, usize)> = HashMap::new();
    for standby in standbys {
        let entry = per_name.entry(standby.name.as_str()).or_default();
        if standby.acknowledges {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    for name in reachable {
        if let Some(entry) = per_name.get_mut(name.as_str()) {
            entry.2 += 1;
        }
    }
    // A reachable replica is proven to be an acknowledging standby only beyond the
    // standbys of its name that are not.
    let proven: usize = per_name
        .values()
        .map(|&(acks, others, up)| acks.min(up.saturating_sub(others)))
        .sum();
    let unreachable = acknowledging - proven;
    if unreachable < on_at_least {
        Ok(format!(
            "{shown}: each acknowledged commit is on at least {on_at_least} of the \
             {acknowledging} synchronous standbys and at most {unreachable} of them is \
             unreachable, so the most advanced reachable replica holds every one"
        ))
    } else {
        Err(format!(
            "{shown}: only {proven} of the {acknowledging} synchronous standbys are known to \
             be reachable and each acknowledged commit is on at least {on_at_least} of them; \
             an acknowledged commit may be only on one that is not"
        ))
    }
}

/// The `application_name` a standby streams with, as PostgreSQL's WAL receiver sets it:
/// from its connection string (`primary_conninfo`; a receiver's own connection string
/// also carries `fallback_application_name`), else `cluster_name`, else `walreceiver`.
pub fn effective_application_name(conninfo: Option<&str>, cluster_name: &str) -> String {
    let from_conninfo = conninfo.and_then(|conninfo| {
        conninfo_value(conninfo, "application_name")
            .or_else(|| conninfo_value(conninfo, "fallback_application_name"))
    });
    from_conninfo
        .or_else(|| Some(cluster_name.to_string()).filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "walreceiver".to_string())
}

/// The non-empty value of `key` in a libpq connection string (`primary_conninfo`, say).
pub fn conninfo_value(conninfo: &str, key: &str) -> Option<String> {
    parse_conninfo(conninfo)
        .into_iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v)
}

/// `key=value` pairs of a libpq connection string; values may be single-quoted with
/// backslash escapes.
fn parse_conninfo(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            return pairs;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return pairs;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> SyncRule {
        match SyncRule::parse(text) {
            Ok(Some(rule)) => rule,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn parses_every_form_of_synchronous_standby_names() {
        assert_eq!(SyncRule::parse("").ok(), Some(None));
        assert_eq!(SyncRule::parse("  ").ok(), Some(None));
        let any = rule("ANY 1 (*)");
        assert_eq!(
            (any.method, any.count, any.names),
            (SyncMethod::Any, 1, vec!["*".into()])
        );
        let first = rule("first 2 (a, \"B c\", d)");
        assert_eq!(first.method, SyncMethod::First);
        assert_eq!(first.count, 2);
        assert_eq!(first.names, vec!["a", "b c", "d"]);
        let bare = rule("2 (s1, s2)");
        assert_eq!((bare.method, bare.count), (SyncMethod::First, 2));
        let legacy = rule("s1, s2");
        assert_eq!((legacy.method, legacy.count), (SyncMethod::First, 1));
        assert_eq!(legacy.names, vec!["s1", "s2"]);
        assert_eq!(rule("*").names, vec!["*"]);
        // A standby may be called "first" or "any".
        assert_eq!(rule("any").names, vec!["any"]);
        assert_eq!(rule("\"a\"\"b\"").names, vec!["a\"b"]);
        for bad in [
            "ANY (a)",
            "ANY 0 (a)",
            "1 (a,)",
            "a,,b",
            "\"open",
            "ANY 1 ()",
        ] {
            assert!(SyncRule::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    fn standbys(rows: &[(&str, bool)]) -> Vec<Standby> {
        rows.iter()
            .map(|&(name, acknowledges)| Standby {
                name: name.to_string(),
                acknowledges,
            })
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn any_k_needs_at_most_k_minus_one_unreachable() {
        let rows = standbys(&[("r1", true), ("r2", true)]);
        let any1 = rule("ANY 1 (*)");
        assert!(commits_are_reachable(Some(&any1), &rows, &names(&["r1", "r2"])).is_ok());
        // A commit may be on r2 alone.
        assert!(commits_are_reachable(Some(&any1), &rows, &names(&["r1"])).is_err());
        let three = standbys(&[("a", true), ("b", true), ("c", true)]);
        let any2 = rule("ANY 2 (a, b, c)");
        // Each commit is on two of three: one may be missing.
        assert!(commits_are_reachable(Some(&any2), &three, &names(&["a", "c"])).is_ok());
        assert!(commits_are_reachable(Some(&any2), &three, &names(&["c"])).is_err());
    }

    #[test]
    fn first_k_needs_one_synchronous_standby() {
        let rows = standbys(&[("a", true), ("b", false)]);
        let first = rule("FIRST 1 (a, b)");
        assert!(commits_are_reachable(Some(&first), &rows, &names(&["a"])).is_ok());
        // b was only a potential standby: it may lack the last commits.
        assert!(commits_are_reachable(Some(&first), &rows, &names(&["b"])).is_err());
    }

    #[test]
    fn shared_names_count_only_what_they_prove() {
        // Every standby streams as walreceiver (plain initdb, no cluster_name).
        let quorum = standbys(&[("walreceiver", true), ("walreceiver", true)]);
        let any1 = rule("ANY 1 (*)");
        let both = names(&["walreceiver", "walreceiver"]);
        assert!(commits_are_reachable(Some(&any1), &quorum, &both).is_ok());
        assert!(commits_are_reachable(Some(&any1), &quorum, &names(&["walreceiver"])).is_err());
        // FIRST 1: one sync, one potential, same name: a single reachable one might be
        // the potential one.
        let priority = standbys(&[("walreceiver", true), ("walreceiver", false)]);
        let first = rule("FIRST 1 (walreceiver)");
        assert!(commits_are_reachable(Some(&first), &priority, &both).is_ok());
        assert!(commits_are_reachable(Some(&first), &priority, &names(&["walreceiver"])).is_err());
        // Debian style: every node's cluster_name is 15/main.
        let debian = standbys(&[("15/main", true), ("15/main", true)]);
        assert!(
            commits_are_reachable(Some(&any1), &debian, &names(&["15/main", "15/main"])).is_ok()
        );
    }

    #[test]
    fn no_acknowledging_standby_proves_nothing() {
        let rows = standbys(&[("a", false)]);
        assert!(commits_are_reachable(Some(&rule("a")), &rows, &names(&["a"])).is_err());
        assert!(commits_are_reachable(None, &[], &[]).is_err());
    }

    #[test]
    fn an_unrecognised_rule_needs_every_synchronous_standby() {
        let rows = standbys(&[("a", true), ("b", true)]);
        assert!(commits_are_reachable(None, &rows, &names(&["a", "b"])).is_ok());
        assert!(commits_are_reachable(None, &rows, &names(&["a"])).is_err());
    }

    #[test]
    fn the_application_name_comes_as_the_wal_receiver_sets_it() {
        let conninfo = "user=replicator passfile=/x channel_binding=prefer dbname=replication \
                        host=db1 port=5432 application_name=node2 \
                        fallback_application_name=15/main sslmode=prefer";
        assert_eq!(
            effective_application_name(Some(conninfo), "15/main"),
            "node2"
        );
        let fallback = "host=db1 port=5432 fallback_application_name=15/main";
        assert_eq!(
            effective_application_name(Some(fallback), "15/main"),
            "15/main"
        );
        let quoted = "host=db1 application_name='my node\\'s name'";
        assert_eq!(
            effective_application_name(Some(quoted), ""),
            "my node's name"
        );
        assert_eq!(effective_application_name(Some("host=db1"), "c1"), "c1");
        assert_eq!(effective_application_name(None, ""), "walreceiver");
        assert_eq!(
            effective_application_name(Some("host=db1 application_name="), ""),
            "walreceiver"
        );
    }
}
