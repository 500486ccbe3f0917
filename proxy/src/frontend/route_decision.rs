//! Where a held batch must run, from the classification of each statement in it.

use pgshard_router::{
    mentions_proxy_settings, proxy_setting, split_statements, Classifier, RoleHint, Route,
    TxnControl,
};

use super::batch::BatchEnd;
use super::statements::{bind_statement, read_parse, ClientStatements};
use crate::net::messages::tag;
use crate::net::Frame;

/// The verdict on a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRoute {
    /// Only the primary may run it.
    Primary,
    /// Every statement reads: a replica may run it. `replica_hint` when a `role=replica`
    /// comment asked for a replica even if the session would read its writes from the
    /// primary. `runs_statements` is false for a batch that executes nothing (it only
    /// prepares, describes or closes),
    /// which should not take a load-balancing turn.
    Read {
        replica_hint: bool,
        runs_statements: bool,
    },
    /// Refused before it reaches a server.
    Refuse { code: &'static str, message: String },
}

/// Classifies every statement the batch runs; a batch is a read only if all are.
///
/// A batch whose end is not seen (Flush) goes to the primary: its next messages, which
/// might write, must go to the same server.
pub fn route_batch(
    frames: &[Frame],
    end: BatchEnd,
    classifier: &Classifier,
    statements: &ClientStatements,
) -> BatchRoute {
    let mut read = end == BatchEnd::Complete;
    let mut replica_hint = false;
    let mut runs_statements = false;
    // Whether this batch has made the unnamed statement (then its Parse was classified),
    // or a simple Query dropped it.
    let mut unnamed_in_batch = false;
    for frame in frames {
        if matches!(frame.tag(), tag::QUERY | tag::EXECUTE | tag::FUNCTION_CALL) {
            runs_statements = true;
        }
        let query: Option<&[u8]> = match frame.tag() {
            tag::QUERY => {
                unnamed_in_batch = true;
                frame.reader().cstr().ok()
            }
            tag::PARSE => read_parse(frame).ok().map(|p| {
                unnamed_in_batch |= p.name.is_empty();
                p.query
            }),
            tag::BIND => match bind_statement(frame) {
                Ok(name) if name.is_empty() && unnamed_in_batch => continue,
                // The client's statement from an earlier round trip; an unknown one is
                // left to the primary, which reports the error.
                Ok(name) => statements.query_of(name),
                Err(_) => None,
            },
            tag::FUNCTION_CALL => None,
            _ => continue,
        };
        let Some(sql) = query.and_then(|q| std::str::from_utf8(q).ok()) else {
            read = false;
            continue;
        };
        if frame.tag() == tag::PARSE
            && mentions_proxy_settings(sql)
            && split_statements(sql)
                .iter()
                .any(|s| proxy_setting(s).is_some())
        {
            return BatchRoute::Refuse {
                code: "0A000",
                message: "pgshard: SET/SHOW pgshard.* works only as a simple query; send it \
                          with the simple query protocol, or use a /* pgshard: role=… */ comment"
                    .to_string(),
            };
        }
        let c = classifier.classify(sql);
        if let Some(e) = &c.hint_error {
            return BatchRoute::Refuse {
                code: e.sqlstate(),
                message: e.to_string(),
            };
        }
        let opens_read_write = c.txn == TxnControl::Begin { read_only: false };
        if c.route == Route::Write || c.hint == Some(RoleHint::Primary) || opens_read_write {
            read = false;
        }
        replica_hint |= c.hint == Some(RoleHint::Replica);
    }
    if read {
        BatchRoute::Read {
            replica_hint,
            runs_statements,
        }
    } else {
        BatchRoute::Primary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::statements::StatementRegistry;
    use crate::net::messages;

    fn query(sql: &str) -> Frame {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        Frame::new(tag::QUERY, &body)
    }

    fn route(frames: &[Frame], statements: &ClientStatements) -> BatchRoute {
        route_batch(
            frames,
            BatchEnd::Complete,
            &Classifier::default(),
            statements,
        )
    }

    #[test]
    fn simple_queries() {
        let none = ClientStatements::default();
        let read = BatchRoute::Read {
            replica_hint: false,
            runs_statements: true,
        };
        assert_eq!(route(&[query("SELECT 1")], &none), read);
        assert_eq!(
            route(&[query("INSERT INTO t VALUES (1)")], &none),
            BatchRoute::Primary
        );
        assert_eq!(route(&[query("BEGIN")], &none), BatchRoute::Primary);
        assert_eq!(route(&[query("BEGIN READ ONLY")], &none), read);
        assert_eq!(
            route(&[query("SELECT 1; DELETE FROM t")], &none),
            BatchRoute::Primary
        );
        assert_eq!(
            route(&[query("/* pgshard: role=primary */ SELECT 1")], &none),
            BatchRoute::Primary
        );
        assert_eq!(
            route(&[query("/* pgshard: role=replica */ SELECT 1")], &none),
            BatchRoute::Read {
                replica_hint: true,
                runs_statements: true
            }
        );
        assert!(matches!(
            route(&[query("/* pgshard: role=leader */ SELECT 1")], &none),
            BatchRoute::Refuse { code: "22023", .. }
        ));
    }

    #[test]
    fn extended_batches_use_each_parse_and_named_statements() {
        let registry = StatementRegistry::default();
        let mut statements = ClientStatements::default();
        let write = messages::parse("w", b"UPDATE t SET a = 1", &[0, 0]);
        statements.prepare(&registry, &read_parse(&write).unwrap());
        let read_parse_frame = messages::parse("", b"SELECT 1", &[0, 0]);
        let bind = |name: &str| {
            let mut body = vec![0];
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
            Frame::new(tag::BIND, &body)
        };
        let sync = Frame::new(tag::SYNC, b"");
        let execute = Frame::new(tag::EXECUTE, &[0, 0, 0, 0, 0]);
        assert_eq!(
            route(
                &[
                    read_parse_frame.clone(),
                    bind(""),
                    execute.clone(),
                    sync.clone()
                ],
                &statements
            ),
            BatchRoute::Read {
                replica_hint: false,
                runs_statements: true
            }
        );
        // Preparing alone executes nothing and takes no load-balancing turn.
        assert_eq!(
            route(&[read_parse_frame.clone(), sync.clone()], &statements),
            BatchRoute::Read {
                replica_hint: false,
                runs_statements: false
            }
        );
        assert_eq!(
            route(&[messages::close(b'S', "w"), sync.clone()], &statements),
            BatchRoute::Read {
                replica_hint: false,
                runs_statements: false
            }
        );
        assert_eq!(
            route(
                &[read_parse_frame.clone(), bind(""), bind("w"), sync.clone()],
                &statements
            ),
            BatchRoute::Primary
        );
        // An unknown statement name is left to the primary (which reports the error).
        assert_eq!(
            route(&[bind("nope"), sync.clone()], &statements),
            BatchRoute::Primary
        );
        // The unnamed statement of an earlier round trip decides where its Bind runs.
        assert_eq!(
            route(&[bind(""), execute.clone(), sync.clone()], &statements),
            BatchRoute::Primary
        );
        statements.set_unnamed(messages::parse("", b"SELECT $1::text", &[0, 0]));
        assert_eq!(
            route(&[bind(""), execute.clone(), sync.clone()], &statements),
            BatchRoute::Read {
                replica_hint: false,
                runs_statements: true
            }
        );
        statements.set_unnamed(messages::parse("", b"INSERT INTO t VALUES ($1)", &[0, 0]));
        assert_eq!(
            route(&[bind(""), execute.clone(), sync.clone()], &statements),
            BatchRoute::Primary
        );
        assert_eq!(
            route_batch(
                &[read_parse_frame],
                BatchEnd::Open,
                &Classifier::default(),
                &statements
            ),
            BatchRoute::Primary
        );
    }
}
