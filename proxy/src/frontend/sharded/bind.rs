//! Parse and Bind messages of a sharded session, kept by the proxy: a statement may run
//! on other shards (or be split) each time it is executed, so the proxy holds the text
//! and the parameters and sends each shard its own Parse and Bind.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use pgshard_router::sharding::ParamFormat;

use crate::frontend::statements::KeptBytes;
use crate::net::messages::tag;
use crate::net::{Frame, WireError};

/// A statement the client prepared (named, or the unnamed one).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: Arc<str>,
    /// Parameter type OIDs the client declared (0 = let the server infer).
    pub types: Vec<u32>,
}

impl Prepared {
    /// Bytes the proxy keeps for it under `name`.
    fn kept_len(&self, name: &str) -> usize {
        name.len() + self.sql.len() + 4 * self.types.len()
    }
}

/// The statements one client prepared on a sharded database, by name (`""` is the
/// unnamed one), with the bytes the named ones keep, held within
/// `max_prepared_statement_memory`.
#[derive(Debug, Default)]
pub struct PreparedStatements {
    by_name: HashMap<String, Prepared>,
    kept: KeptBytes,
}

impl PreparedStatements {
    pub fn get(&self, name: &str) -> Option<&Prepared> {
        self.by_name.get(name)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Whether `prepared`, named `name`, fits within `limit` bytes kept; the unnamed
    /// statement always does.
    pub fn has_room(&self, name: &str, prepared: &Prepared, limit: u64) -> bool {
        name.is_empty() || self.kept.has_room(prepared.kept_len(name), 0, limit)
    }

    pub fn kept(&self) -> KeptBytes {
        self.kept
    }

    pub fn insert(&mut self, name: String, prepared: Prepared) {
        self.remove(&name);
        if !name.is_empty() {
            self.kept.add(prepared.kept_len(&name));
        }
        self.by_name.insert(name, prepared);
    }

    pub fn remove(&mut self, name: &str) -> Option<Prepared> {
        let old = self.by_name.remove_entry(name)?;
        if !old.0.is_empty() {
            self.kept.remove(old.1.kept_len(&old.0));
        }
        Some(old.1)
    }

    pub fn clear(&mut self) {
        self.by_name.clear();
        self.kept.clear();
    }
}

/// A bound portal: a statement with parameter values, ready to execute.
#[derive(Debug, Clone)]
pub struct Portal {
    pub statement: Prepared,
    /// One format code per parameter.
    pub formats: Vec<i16>,
    pub values: Vec<Option<Bytes>>,
    /// As the client sent them: none (all text), one (for all) or one per column.
    pub result_formats: Vec<i16>,
}

/// Reads a Parse message: name, statement.
pub fn read_parse(frame: &Frame) -> Result<(String, Prepared), WireError> {
    let mut r = frame.reader();
    let name = r.cstr_utf8()?.to_string();
    let sql = r.cstr_utf8()?;
    let count = r.i16()?;
    let mut types = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        types.push(r.i32()? as u32);
    }
    Ok((
        name,
        Prepared {
            sql: Arc::from(sql),
            types,
        },
    ))
}

/// A Bind message taken apart.
#[derive(Debug)]
pub struct BindMessage {
    pub portal: String,
    pub statement: String,
    /// One format code per parameter.
    pub formats: Vec<i16>,
    pub values: Vec<Option<Bytes>>,
    pub result_formats: Vec<i16>,
}

/// Reads a Bind message.
pub fn read_bind(frame: &Frame) -> Result<BindMessage, WireError> {
    let body = Bytes::copy_from_slice(frame.body());
    let mut r = crate::net::BodyReader::new(&body);
    let portal = r.cstr_utf8()?.to_string();
    let statement = r.cstr_utf8()?.to_string();
    let format_count = r.i16()?.max(0) as usize;
    let mut codes = Vec::with_capacity(format_count);
    for _ in 0..format_count {
        codes.push(r.i16()?);
    }
    let count = r.i16()?.max(0) as usize;
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.i32()?;
        if len < 0 {
            values.push(None);
        } else {
            let start = body.len() - r.rest().len();
            r.take(len as usize)?;
            values.push(Some(body.slice(start..start + len as usize)));
        }
    }
    let formats = match codes.len() {
        0 => vec![0; count],
        1 => vec![codes[0]; count],
        n if n == count => codes,
        _ => {
            return Err(WireError::Malformed(
                "bind message has a wrong number of parameter formats",
            ))
        }
    };
    let result_count = r.i16()?.max(0) as usize;
    let mut result_formats = Vec::with_capacity(result_count);
    for _ in 0..result_count {
        result_formats.push(r.i16()?);
    }
    Ok(BindMessage {
        portal,
        statement,
        formats,
        values,
        result_formats,
    })
}

/// A Parse of the unnamed statement.
pub fn parse_frame(sql: &str, types: &[u32]) -> Frame {
    let mut body = Vec::with_capacity(sql.len() + 8 + types.len() * 4);
    body.push(0);
    body.extend_from_slice(sql.as_bytes());
    body.push(0);
    body.extend_from_slice(&(types.len() as i16).to_be_bytes());
    for t in types {
        body.extend_from_slice(&t.to_be_bytes());
    }
    Frame::new(tag::PARSE, &body)
}

/// A Bind of the unnamed portal to the unnamed statement.
pub fn bind_frame(formats: &[i16], values: &[Option<Bytes>], result_formats: &[i16]) -> Frame {
    let mut body = vec![0, 0];
    body.extend_from_slice(&(formats.len() as i16).to_be_bytes());
    for f in formats {
        body.extend_from_slice(&f.to_be_bytes());
    }
    body.extend_from_slice(&(values.len() as i16).to_be_bytes());
    for v in values {
        match v {
            Some(v) => {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body.extend_from_slice(&(result_formats.len() as i16).to_be_bytes());
    for f in result_formats {
        body.extend_from_slice(&f.to_be_bytes());
    }
    Frame::new(tag::BIND, &body)
}

/// Describe ('S' statement or 'P' portal) of the unnamed one.
pub fn describe_frame(kind: u8) -> Frame {
    Frame::new(tag::DESCRIBE, &[kind, 0])
}

/// Execute of the unnamed portal, all rows.
pub fn execute_frame() -> Frame {
    Frame::new(tag::EXECUTE, &[0, 0, 0, 0, 0])
}

pub fn sync_frame() -> Frame {
    Frame::new(tag::SYNC, &[])
}

impl Portal {
    /// The parameter formats as the planner reads keys.
    pub fn param_formats(&self) -> Vec<ParamFormat> {
        self.formats
            .iter()
            .map(|&f| {
                if f == 1 {
                    ParamFormat::Binary
                } else {
                    ParamFormat::Text
                }
            })
            .collect()
    }

    /// The format the client wants column `i` (of `columns`) in: 0 text, 1 binary.
    pub fn result_format(&self, i: usize) -> i16 {
        match self.result_formats.len() {
            0 => 0,
            1 => self.result_formats[0],
            _ => self.result_formats.get(i).copied().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_round_trip() {
        let frame = bind_frame(
            &[1, 0],
            &[Some(Bytes::from_static(b"\0\0\0\x05")), None],
            &[1],
        );
        let bind = read_bind(&frame).unwrap();
        assert_eq!((bind.portal.as_str(), bind.statement.as_str()), ("", ""));
        assert_eq!(bind.formats, vec![1, 0]);
        assert_eq!(
            bind.values,
            vec![Some(Bytes::from_static(b"\0\0\0\x05")), None]
        );
        assert_eq!(bind.result_formats, vec![1]);
    }

    #[test]
    fn one_format_code_applies_to_every_parameter() {
        let mut frame = bind_frame(&[1], &[None, None], &[]);
        assert_eq!(read_bind(&frame).unwrap().formats, vec![1, 1]);
        frame = bind_frame(&[1, 1, 1], &[None, None], &[]);
        assert!(read_bind(&frame).is_err());
    }

    #[test]
    fn parses_round_trip() {
        let (name, p) = read_parse(&parse_frame("SELECT $1", &[23])).unwrap();
        assert_eq!(name, "");
        assert_eq!((&*p.sql, p.types.as_slice()), ("SELECT $1", &[23u32][..]));
    }
}
