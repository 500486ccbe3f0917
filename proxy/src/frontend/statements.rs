//! Prepared statements in transaction pooling: client names mapped to shared server names.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::net::messages::{parse, query, tag};
use crate::net::{Frame, WireError};

/// A statement's identity: the SHA-256 of its query text and declared parameter types,
/// so that an entry costs the same whatever the statement's size.
type StatementKey = [u8; 32];

/// How many statement identities the registry remembers; the least recently prepared
/// are forgotten past it.
const REGISTRY_LIMIT: usize = 65_536;

/// Gives every distinct (query, parameter types) one server-side name, shared by all
/// clients, so a statement is prepared once per server connection however many clients
/// use it. Ids are never reused, so two different statements can never share a name; a
/// statement forgotten (least recently prepared, past [`REGISTRY_LIMIT`]) and prepared
/// again gets a new name, which servers prepare anew. Memory stays bounded however many
/// distinct statements clients send.
pub struct StatementRegistry {
    ids: Mutex<lru::LruCache<StatementKey, u64>>,
    next: AtomicU64,
}

impl Default for StatementRegistry {
    fn default() -> Self {
        StatementRegistry::with_limit(REGISTRY_LIMIT)
    }
}

impl StatementRegistry {
    pub fn with_limit(limit: usize) -> Self {
        let limit = std::num::NonZeroUsize::new(limit).unwrap_or(std::num::NonZeroUsize::MIN);
        StatementRegistry {
            ids: Mutex::new(lru::LruCache::new(limit)),
            next: AtomicU64::new(0),
        }
    }

    pub fn global_name(&self, query: &[u8], types: &[u8]) -> Arc<str> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update((query.len() as u64).to_be_bytes());
        hasher.update(query);
        hasher.update(types);
        let key: StatementKey = hasher.finalize().into();
        let mut ids = match self.ids.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let id = *ids.get_or_insert(key, || self.next.fetch_add(1, Ordering::Relaxed) + 1);
        Arc::from(format!("pgshard_s{id}"))
    }

    /// How many statements are remembered.
    pub fn remembered(&self) -> usize {
        match self.ids.lock() {
            Ok(g) => g.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }
}

/// A statement a client prepared: its shared name and the Parse that creates it.
#[derive(Debug, Clone)]
pub struct ClientStatement {
    pub global: Arc<str>,
    pub parse: Frame,
}

/// The prepared statements of one client: its named ones, and its unnamed one.
///
/// In PostgreSQL the unnamed statement lasts until the client's next unnamed Parse, a
/// simple Query or a Close of it, whichever server connection the client's next round trip
/// gets; so it is kept per client, as the Parse that makes it, and made again on a server
/// connection that holds another.
#[derive(Debug, Default)]
pub struct ClientStatements {
    by_name: HashMap<Vec<u8>, ClientStatement>,
    unnamed: Option<Frame>,
    /// The client's unnamed statement came from a Parse streamed past the proxy, never
    /// kept: it exists only on the server connection it went to, with this number.
    streamed_unnamed: Option<u64>,
    /// Bytes the named statements keep, held within `max_prepared_statement_memory`.
    kept: KeptBytes,
}

/// Bytes of prepared statements one client keeps, so that a client preparing without end
/// gets an error rather than the proxy's memory. The unnamed statement is not counted: a
/// client has one, and it is bounded by `max_message_size`.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeptBytes(usize);

impl KeptBytes {
    /// Whether `adding` more bytes, after `replacing` go, stays within `limit`.
    pub fn has_room(self, adding: usize, replacing: usize, limit: u64) -> bool {
        (self.0.saturating_sub(replacing).saturating_add(adding)) as u64 <= limit
    }

    pub fn add(&mut self, bytes: usize) {
        self.0 = self.0.saturating_add(bytes);
    }

    pub fn remove(&mut self, bytes: usize) {
        self.0 = self.0.saturating_sub(bytes);
    }

    pub fn clear(&mut self) {
        self.0 = 0;
    }

    pub fn bytes(self) -> usize {
        self.0
    }
}

/// The SQLSTATE and message of a Parse refused because the client's statements would
/// keep more than `limit` bytes.
pub fn statement_memory_refusal(kept: KeptBytes, limit: u64) -> (&'static str, String) {
    (
        "53200",
        format!(
            "pgshard: this client's prepared statements keep {} bytes, and this one would \
             take them past max_prepared_statement_memory ({limit} bytes); deallocate \
             statements that are no longer used, or raise the limit",
            kept.bytes()
        ),
    )
}

/// What a named statement of `name` keeps: its name and its Parse.
fn kept_len(name: &[u8], stmt: &ClientStatement) -> usize {
    name.len() + stmt.parse.len()
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
        self.kept.add(kept_len(p.name, &stmt));
        if let Some(old) = self.by_name.insert(p.name.to_vec(), stmt.clone()) {
            self.kept.remove(kept_len(p.name, &old));
        }
        stmt
    }

    /// Whether a Parse of named statement `p` fits within `limit` bytes kept.
    pub fn has_room(&self, p: &ParsedParse<'_>, limit: u64) -> bool {
        // The Parse kept is the client's, renamed: about its own size.
        let adding = 2 * p.name.len() + p.query.len() + p.types.len() + 32;
        let replacing = self
            .by_name
            .get(p.name)
            .map_or(0, |old| kept_len(p.name, old));
        self.kept.has_room(adding, replacing, limit)
    }

    /// Bytes the client's named statements keep.
    pub fn kept(&self) -> KeptBytes {
        self.kept
    }

    pub fn get(&self, name: &[u8]) -> Option<&ClientStatement> {
        self.by_name.get(name)
    }

    /// Whether the client has a named statement `name`.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.by_name.contains_key(name)
    }

    /// Removes a named statement, or the unnamed one for `""`.
    pub fn close(&mut self, name: &[u8]) {
        if name.is_empty() {
            self.unnamed = None;
            self.streamed_unnamed = None;
        } else if let Some(old) = self.by_name.remove(name) {
            self.kept.remove(kept_len(name, &old));
        }
    }

    pub fn clear(&mut self) {
        self.by_name.clear();
        self.unnamed = None;
        self.streamed_unnamed = None;
        self.kept.clear();
    }

    /// Records the client's unnamed Parse, which replaces its previous unnamed statement.
    pub fn set_unnamed(&mut self, parse: Frame) {
        self.unnamed = Some(parse);
        self.streamed_unnamed = None;
    }

    /// Records that the client's unnamed statement came from streamed Parse `id`.
    pub fn set_streamed_unnamed(&mut self, id: u64) {
        self.unnamed = None;
        self.streamed_unnamed = Some(id);
    }

    /// The streamed Parse the client's unnamed statement came from, if it did.
    pub fn streamed_unnamed(&self) -> Option<u64> {
        self.streamed_unnamed
    }

    /// The Parse of the client's unnamed statement, if it has one.
    pub fn unnamed(&self) -> Option<&Frame> {
        self.unnamed.as_ref()
    }

    /// The query text of the statement a Bind or Describe names: `""` is the unnamed one.
    pub fn query_of(&self, name: &[u8]) -> Option<&[u8]> {
        let parse = if name.is_empty() {
            self.unnamed.as_ref()?
        } else {
            &self.by_name.get(name)?.parse
        };
        read_parse(parse).ok().map(|p| p.query)
    }
}

/// Whether a Bind, Describe or Close names a statement the client never prepared but which
/// has the name of one of the proxy's own: it must never reach a server as written.
pub fn is_internal_name(name: &[u8]) -> bool {
    name.starts_with(pgshard_router::INTERNAL_STATEMENT_PREFIX.as_bytes())
}

/// A Query or Parse whose SQL prepares, executes or deallocates one of the proxy's own
/// statements (`pgshard_…`) becomes one that fails with 42939 where the original would
/// have run, so the refusal reaches the client in its place in the stream and aborts a
/// transaction as an error there would. Other messages come back unchanged.
pub fn refuse_internal_names(frame: Frame) -> Frame {
    let prefix = pgshard_router::INTERNAL_STATEMENT_PREFIX.as_bytes();
    let text = match frame.tag() {
        tag::QUERY => frame.reader().cstr().ok(),
        tag::PARSE => read_parse(&frame).ok().map(|p| p.query),
        _ => None,
    };
    let Some(text) = text else {
        return frame;
    };
    if !pgshard_router::contains_ignoring_case(text, prefix) {
        return frame;
    }
    let sql = String::from_utf8_lossy(text);
    if !pgshard_router::split_statements(&sql)
        .into_iter()
        .any(pgshard_router::names_internal_statement)
    {
        return frame;
    }
    let refusal = pgshard_router::INTERNAL_NAME_REFUSAL;
    match frame.tag() {
        tag::PARSE => match read_parse(&frame) {
            Ok(p) => parse_named(p.name, refusal.as_bytes(), p.types),
            Err(_) => frame,
        },
        _ => query(refusal),
    }
}

/// A Parse of statement `name` (raw bytes, as the client sent it).
fn parse_named(name: &[u8], sql: &[u8], types: &[u8]) -> Frame {
    let mut body = Vec::with_capacity(name.len() + sql.len() + types.len() + 2);
    body.extend_from_slice(name);
    body.push(0);
    body.extend_from_slice(sql);
    body.push(0);
    body.extend_from_slice(types);
    Frame::new(tag::PARSE, &body)
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
    fn the_registry_forgets_the_least_recent_and_never_reuses_a_name() {
        let reg = StatementRegistry::with_limit(2);
        let a = reg.global_name(b"select 1", &[0, 0]);
        let b = reg.global_name(b"select 2", &[0, 0]);
        assert_eq!(reg.global_name(b"select 1", &[0, 0]), a);
        let c = reg.global_name(b"select 3", &[0, 0]);
        assert_eq!(reg.remembered(), 2);
        // "select 2" was forgotten: it gets a new name, never another statement's.
        let b_again = reg.global_name(b"select 2", &[0, 0]);
        assert!(b_again != b && b_again != a && b_again != c);
        for i in 0..10_000 {
            reg.global_name(format!("select {i}").as_bytes(), &[0, 0]);
        }
        assert_eq!(reg.remembered(), 2);
    }

    #[test]
    fn sql_naming_internal_statements_is_refused() {
        let plain = query("SELECT 'pgshard_s1'");
        assert_eq!(refuse_internal_names(plain.clone()), plain);
        let attack = query("SELECT 1; DEALLOCATE pgshard_s1");
        let refused = refuse_internal_names(attack);
        assert!(refused.reader().cstr_utf8().unwrap().contains("42939"));
        let parsed = parse("mine", b"EXECUTE PGSHARD_S2", &[0, 0]);
        let refused = refuse_internal_names(parsed);
        let p = read_parse(&refused).unwrap();
        assert_eq!((p.name, p.types), (&b"mine"[..], &[0u8, 0][..]));
        assert!(p.query.starts_with(b"DO $pgshard$"));
        assert!(is_internal_name(b"pgshard_s7") && !is_internal_name(b"s7"));
    }

    #[test]
    fn the_bytes_a_client_keeps_are_counted() {
        let reg = StatementRegistry::default();
        let mut c = ClientStatements::default();
        let big = parse("a", &[b'x'; 1000], &[0, 0]);
        let small = parse("b", b"select 1", &[0, 0]);
        assert!(c.has_room(&read_parse(&big).unwrap(), 1100));
        assert!(!c.has_room(&read_parse(&big).unwrap(), 1000));
        c.prepare(&reg, &read_parse(&big).unwrap());
        let after_one = c.kept().bytes();
        assert!(after_one > 1000);
        // Preparing the same name again replaces it: the room it took is counted once.
        assert!(c.has_room(&read_parse(&big).unwrap(), 1100));
        c.prepare(&reg, &read_parse(&big).unwrap());
        assert_eq!(c.kept().bytes(), after_one);
        assert!(!c.has_room(&read_parse(&small).unwrap(), 1050));
        c.close(b"a");
        assert_eq!(c.kept().bytes(), 0);
        c.prepare(&reg, &read_parse(&small).unwrap());
        c.clear();
        assert_eq!(c.kept().bytes(), 0);
    }

    #[test]
    fn unnamed_statement_is_kept_per_client() {
        let mut c = ClientStatements::default();
        assert_eq!(c.query_of(b""), None);
        c.set_unnamed(parse("", b"SELECT $1::text", &[0, 0]));
        assert_eq!(c.query_of(b""), Some(&b"SELECT $1::text"[..]));
        c.close(b"");
        assert!(c.unnamed().is_none());
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
