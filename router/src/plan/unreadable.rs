//! Statements the SQL parser cannot read. PostgreSQL may well accept them (sqlparser
//! lags behind its grammar), so the proxy never answers them with a syntax error of its
//! own: maintenance and DDL run on every shard, as they would if they parsed, and
//! anything else is refused with 0A000 saying what could not be read.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer, Word};

use super::error::{unsupported, PlanError};
use super::spec::{ResultMerge, ShardPlan, ShardStatements, ShardTarget};

/// Leading keywords of statements that run on every shard whatever they name: each
/// shard's copy of every table gets the maintenance or the schema change.
const EVERYWHERE: &[&str] = &[
    "vacuum",
    "analyze",
    "analyse",
    "checkpoint",
    "cluster",
    "reindex",
    "create",
    "alter",
    "drop",
    "comment",
    "grant",
    "revoke",
    "security",
];

/// The plan of a statement sqlparser could not read (`reason` is its message).
pub(crate) fn plan(body: &str, reason: &str) -> Result<ShardPlan, PlanError> {
    let first: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    if EVERYWHERE.contains(&first.as_str()) {
        return Ok(ShardPlan {
            target: ShardTarget::All,
            statements: ShardStatements::Original,
            merge: ResultMerge::Same,
        });
    }
    Err(unsupported(format!(
        "the proxy cannot read this statement to place it on shards ({reason}); run it on \
         one shard with /* pgshard: shard=N */, or rewrite it"
    )))
}

/// Boolean COPY options written `ON`/`OFF` (`COPY t FROM STDIN WITH (FREEZE ON)`, as
/// `pgbench -i` sends it), which sqlparser reads only as TRUE/FALSE: the text the planner
/// reads, with those spelled TRUE/FALSE. The shards get the client's text unchanged.
pub(crate) fn copy_booleans(sql: &str) -> Option<String> {
    let first = sql.trim_start().get(..4)?;
    if !first.eq_ignore_ascii_case("copy") {
        return None;
    }
    let mut tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut changed = false;
    let mut option = false;
    for token in tokens.iter_mut() {
        match token {
            Token::Whitespace(_) => continue,
            Token::Word(Word { value, .. }) if option => {
                let replacement = match value.to_ascii_lowercase().as_str() {
                    "on" => Some("TRUE"),
                    "off" => Some("FALSE"),
                    _ => None,
                };
                if let Some(replacement) = replacement {
                    *token = Token::make_keyword(replacement);
                    changed = true;
                }
                option = false;
            }
            Token::Word(Word { keyword, .. }) => {
                option = matches!(keyword, Keyword::FREEZE | Keyword::HEADER);
            }
            _ => option = false,
        }
    }
    changed.then(|| tokens.iter().map(Token::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_booleans_are_spelled_as_sqlparser_reads_them() {
        assert_eq!(
            copy_booleans("copy pgbench_accounts from stdin with (freeze on)").as_deref(),
            Some("copy pgbench_accounts from stdin with (freeze TRUE)")
        );
        assert_eq!(
            copy_booleans("COPY t TO STDOUT (FORMAT csv, HEADER off)").as_deref(),
            Some("COPY t TO STDOUT (FORMAT csv, HEADER FALSE)")
        );
        assert_eq!(copy_booleans("COPY t FROM STDIN WITH (FREEZE)"), None);
        assert_eq!(copy_booleans("SELECT 'freeze on'"), None);
        // A column called "on" stays a column.
        assert_eq!(copy_booleans("COPY t (\"on\") FROM STDIN"), None);
    }

    #[test]
    fn unreadable_maintenance_runs_everywhere_and_the_rest_is_refused_with_0a000() {
        for sql in [
            "VACUUM ANALYZE t",
            "vacuum (analyze) t",
            "CHECKPOINT",
            "REINDEX TABLE t",
        ] {
            let plan = plan(sql, "x").map_err(|e| e.to_string());
            assert_eq!(
                plan.map(|p| (p.target, p.merge)),
                Ok((ShardTarget::All, ResultMerge::Same)),
                "{sql}"
            );
        }
        let refused = plan("SELECT frobnicate FROM t WINDOW", "sqlparser says no");
        assert!(
            matches!(&refused, Err(e) if e.sqlstate() == "0A000"),
            "{refused:?}"
        );
    }
}
