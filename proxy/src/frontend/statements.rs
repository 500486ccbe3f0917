//! Prepared statements in transaction pooling: client names mapped to shared server names.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::net::messages::{parse, tag};
use crate::net::{Frame, WireError};

/// Gives every distinct (query, parameter types) one server-side name, shared by all
/// clients, so a statement is prepared once per server connection however many clients
/// use it. Ids are never reused, so two different statements can never share a name.
/// A statement's identity: its query text and its declared parameter types.
type StatementKey = (Vec<u8>, Vec<u8>);

#[derive(Default)]
pub struct StatementRegistry {
    ids: Mutex<HashMap<StatementKey, u64>>,
    next: AtomicU64,
}

impl StatementRegistry {
    pub fn global_name(&self, query: &[u8], types: &[u8]) -> Arc<str> {
        let mut ids = match self.ids.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let id = *ids
            .entry((query.to_vec(), types.to_vec()))
            .or_insert_with(|| self.next.fetch_add(1, Ordering::Relaxed) + 1);
        Arc::from(format!("pgshard_s{id}"))
    }
}

/// A statement a client prepared: its shared name and the Parse that creates it.
#[derive(Debug, Clone)]
pub struct ClientStatement {
    pub global: Arc<str>,
    pub parse: Frame,
}

/// The named statements of one client.
#[derive(Debug, Default)]
pub struct ClientStatements {
    by_name: HashMap<Vec<u8>, ClientStatement>,
}

/// A Parse message taken apart.
pub struct ParsedParse<'a> {
    pub name: &'a [u8],
    pub query: &'a [u8],
    /// Parameter count and type oids, as on the wire.
    pub types: &'a [u8],
}

pub fn read_parse(frame: &Frame) -> Result<ParsedParse<'_>, WireError> {
    let mut r = frame.reader();
    let name = r.cstr()?;
    let query = r.cstr()?;
    Ok(ParsedParse {
        name,
        query,
        types: r.rest(),
    })
}

impl ClientStatements {
    /// Records a client's Parse; returns the statement as it goes to servers.
    pub fn prepare(
        &mut self,
        registry: &StatementRegistry,
        p: &ParsedParse<'_>,
    ) -> ClientStatement {
        let global = registry.global_name(p.query, p.types);
        let stmt = ClientStatement {
            parse: parse(&global, p.query, p.types),
            global,
        };
        self.by_name.insert(p.name.to_vec(), stmt.clone());
        stmt
    }

    pub fn get(&self, name: &[u8]) -> Option<&ClientStatement> {
        self.by_name.get(name)
    }

    pub fn close(&mut self, name: &[u8]) {
        self.by_name.remove(name);
    }

    pub fn clear(&mut self) {
        self.by_name.clear();
    }
}

/// The statement name a Bind refers to.
pub fn bind_statement(frame: &Frame) -> Result<&[u8], WireError> {
    let mut r = frame.reader();
    r.cstr()?;
    r.cstr()
}

/// The same Bind, naming `global` instead of the client's statement.
pub fn rename_bind(frame: &Frame, global: &str) -> Result<Frame, WireError> {
    let mut r = frame.reader();
    let portal = r.cstr()?;
    r.cstr()?;
    let rest = r.rest();
    let mut body = Vec::with_capacity(portal.len() + global.len() + rest.len() + 2);
    body.extend_from_slice(portal);
    body.push(0);
    body.extend_from_slice(global.as_bytes());
    body.push(0);
    body.extend_from_slice(rest);
    Ok(Frame::new(tag::BIND, &body))
}

/// Kind ('S' statement / 'P' portal) and name of a Describe or Close.
pub fn target_of(frame: &Frame) -> Result<(u8, &[u8]), WireError> {
    let mut r = frame.reader();
    let kind = r.u8()?;
    Ok((kind, r.cstr()?))
}

/// A Describe or Close of statement `global`.
pub fn retarget(frame: &Frame, global: &str) -> Frame {
    let mut body = vec![b'S'];
    body.extend_from_slice(global.as_bytes());
    body.push(0);
    Frame::new(frame.tag(), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_query_same_name_across_clients() {
        let reg = StatementRegistry::default();
        let p1 = parse("a", b"select $1", &[0, 1, 0, 0, 0, 23]);
        let p2 = parse("b", b"select $1", &[0, 1, 0, 0, 0, 23]);
        let p3 = parse("a", b"select $1", &[0, 0]);
        let (mut c1, mut c2) = (ClientStatements::default(), ClientStatements::default());
        let s1 = c1.prepare(&reg, &read_parse(&p1).unwrap());
        let s2 = c2.prepare(&reg, &read_parse(&p2).unwrap());
        let s3 = c2.prepare(&reg, &read_parse(&p3).unwrap());
        assert_eq!(s1.global, s2.global);
        assert_ne!(s1.global, s3.global);
        let renamed = read_parse(&s1.parse).unwrap();
        assert_eq!(renamed.name, s1.global.as_bytes());
        assert_eq!(renamed.types, &[0, 1, 0, 0, 0, 23]);
    }

    #[test]
    fn bind_is_renamed_keeping_parameters() {
        let bind = Frame::new(
            tag::BIND,
            b"portal\0mine\0\x00\x00\x00\x01\x00\x00\x00\x01x\x00\x00",
        );
        assert_eq!(bind_statement(&bind).unwrap(), b"mine");
        let renamed = rename_bind(&bind, "pgshard_s1").unwrap();
        assert_eq!(
            renamed.body(),
            b"portal\0pgshard_s1\0\x00\x00\x00\x01\x00\x00\x00\x01x\x00\x00"
        );
        assert!(bind_statement(&Frame::new(tag::BIND, b"no terminator")).is_err());
    }
}
