//! The simple query protocol on a sharded database: the statements of the query string
//! run in order, as one implicit transaction when there are several; the first error
//! skips the rest and undoes what the others wrote.

use pgshard_router::split_statements;

use super::execute::{Outcome, Statement};
use super::transaction::ImplicitBlock;
use super::{Flow, ShardedSession, NOT_UTF8};
use crate::net::messages::{self, tag};
use crate::net::{Frame, WireError};

impl ShardedSession {
    pub(super) async fn on_query(&mut self, frame: &Frame) -> Flow {
        let sql = match frame.reader().cstr_utf8() {
            Ok(sql) => sql.to_string(),
            Err(WireError::NotUtf8) => return self.error_reply("22021", NOT_UTF8, true).await,
            Err(_) => return self.fatal("08P01", "invalid query message").await,
        };
        let statements = split_statements(&sql);
        if statements.iter().all(|s| is_blank(s)) {
            let empty = Frame::new(tag::EMPTY_QUERY_RESPONSE, &[]);
            return self
                .reply_local(&[empty, messages::ready_for_query(self.txn.status())])
                .await;
        }
        if self.block == ImplicitBlock::Off
            && statements.iter().filter(|s| !is_blank(s)).count() > 1
        {
            self.block = ImplicitBlock::Pending;
        }
        for statement in statements {
            if is_blank(statement) {
                continue;
            }
            let stmt = Statement {
                sql: statement,
                portal: None,
                describe: true,
            };
            match self.run_statement(stmt).await {
                Outcome::Done => {}
                Outcome::Failed => break,
                Outcome::Stop => return Flow::Stop,
            }
        }
        if let Outcome::Stop = self.end_block().await {
            return Flow::Stop;
        }
        self.reply_local(&[messages::ready_for_query(self.txn.status())])
            .await
    }
}

/// Only blanks and comments: PostgreSQL answers EmptyQueryResponse.
fn is_blank(statement: &str) -> bool {
    let mut rest = statement.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after
                .find('\n')
                .map_or("", |p| &after[p + 1..])
                .trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after
                .find("*/")
                .map_or("", |p| &after[p + 2..])
                .trim_start();
        } else {
            return rest.is_empty() || rest == ";";
        }
    }
}
