//! Arrays in PostgreSQL's text output (`{1,2,NULL}`, `{{"a b",c}}`, `[0:1]={x,y}`), read
//! into elements and written in the binary format, for group keys a client wants in
//! binary (the shards send them as text, which the merge compares).

use std::cmp::Ordering;

use super::error::MergeError;
use super::value_type::ValueType;

/// The element type OID of the array types the merge groups, by the array's OID.
pub fn element_oid(array_oid: u32) -> Option<u32> {
    Some(match array_oid {
        1000 => 16,
        1001 => 17,
        1003 => 19,
        1005 => 21,
        1007 => 23,
        1009 => 25,
        1015 => 1043,
        1016 => 20,
        1028 => 26,
        1182 => 1082,
        2951 => 2950,
        _ => return None,
    })
}

/// An array read from its text: dimensions (length and lower bound) and elements in
/// storage order.
#[derive(Debug, PartialEq, Eq)]
struct TextArray {
    dims: Vec<(i32, i32)>,
    elements: Vec<Option<String>>,
}

/// The binary form of an array's text, its elements converted by `element`.
pub fn to_binary(
    array_oid: u32,
    text: &str,
    element: impl Fn(ValueType, &[u8]) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let element_oid = element_oid(array_oid)?;
    let array = parse(text)?;
    let element_type = ValueType::from_oid(element_oid);
    let has_nulls = array.elements.iter().any(Option::is_none);
    let mut out = Vec::with_capacity(12 + array.dims.len() * 8 + array.elements.len() * 8);
    out.extend_from_slice(&(array.dims.len() as i32).to_be_bytes());
    out.extend_from_slice(&i32::from(has_nulls).to_be_bytes());
    out.extend_from_slice(&element_oid.to_be_bytes());
    for (length, lower) in &array.dims {
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&lower.to_be_bytes());
    }
    for value in &array.elements {
        match value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                let bytes = element(element_type, v.as_bytes())?;
                out.extend_from_slice(&i32::try_from(bytes.len()).ok()?.to_be_bytes());
                out.extend_from_slice(&bytes);
            }
        }
    }
    Some(out)
}

/// Orders two arrays as PostgreSQL's `array_cmp`: element by element (a NULL after any
/// value), then the one with fewer elements first, then by dimensions and lower bounds.
pub fn compare(array_oid: u32, a: &[u8], b: &[u8]) -> Result<Ordering, MergeError> {
    let element = ValueType::from_oid(element_oid(array_oid).unwrap_or(0));
    let read = |v: &[u8]| {
        std::str::from_utf8(v).ok().and_then(parse).ok_or_else(|| {
            MergeError::Unsupported(format!(
                "cannot read the array {:?}",
                String::from_utf8_lossy(v)
            ))
        })
    };
    let (a, b) = (read(a)?, read(b)?);
    for (x, y) in a.elements.iter().zip(&b.elements) {
        let order = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => super::compare::compare(element, x.as_bytes(), y.as_bytes())?,
        };
        if order != Ordering::Equal {
            return Ok(order);
        }
    }
    let lengths = |x: &TextArray| x.dims.iter().map(|d| d.0).collect::<Vec<_>>();
    let lowers = |x: &TextArray| x.dims.iter().map(|d| d.1).collect::<Vec<_>>();
    Ok(a.elements
        .len()
        .cmp(&b.elements.len())
        .then(a.dims.len().cmp(&b.dims.len()))
        .then_with(|| lengths(&a).cmp(&lengths(&b)))
        .then_with(|| lowers(&a).cmp(&lowers(&b))))
}

fn parse(text: &str) -> Option<TextArray> {
    let (bounds, body) = match text.strip_prefix('[') {
        Some(_) => {
            let (decoration, body) = text.split_once('=')?;
            (Some(decoration), body)
        }
        None => (None, text),
    };
    let mut parser = Parser {
        bytes: body.as_bytes(),
        at: 0,
        lengths: Vec::new(),
        elements: Vec::new(),
    };
    parser.level(0)?;
    if parser.at != parser.bytes.len() {
        return None;
    }
    let lengths: Vec<i32> = if parser.elements.is_empty() {
        Vec::new()
    } else {
        parser.lengths.into_iter().collect::<Option<_>>()?
    };
    let lowers: Vec<i32> = match bounds {
        None => vec![1; lengths.len()],
        Some(decoration) => decoration
            .split(']')
            .filter(|d| !d.is_empty())
            .map(|d| d.strip_prefix('[')?.split_once(':')?.0.parse().ok())
            .collect::<Option<_>>()?,
    };
    if lowers.len() != lengths.len() {
        return None;
    }
    Some(TextArray {
        dims: lengths.into_iter().zip(lowers).collect(),
        elements: parser.elements,
    })
}

/// Reads nested `{…}` levels, checking that every level has the same length.
struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Each level's length, once a `{…}` of that depth has closed.
    lengths: Vec<Option<i32>>,
    elements: Vec<Option<String>>,
}

impl Parser<'_> {
    fn level(&mut self, depth: usize) -> Option<()> {
        if self.bytes.get(self.at) != Some(&b'{') {
            return None;
        }
        self.at += 1;
        let mut count: i32 = 0;
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
            return self.record(depth, 0);
        }
        loop {
            if self.bytes.get(self.at) == Some(&b'{') {
                self.level(depth + 1)?;
            } else {
                let value = self.element()?;
                self.elements.push(value);
            }
            count += 1;
            match self.bytes.get(self.at)? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return self.record(depth, count);
                }
                _ => return None,
            }
        }
    }

    fn record(&mut self, depth: usize, count: i32) -> Option<()> {
        if self.lengths.len() <= depth {
            self.lengths.resize(depth + 1, None);
        }
        match self.lengths[depth] {
            Some(known) if known != count => None,
            _ => {
                self.lengths[depth] = Some(count);
                Some(())
            }
        }
    }

    fn element(&mut self) -> Option<Option<String>> {
        let mut out = Vec::new();
        if self.bytes.get(self.at) == Some(&b'"') {
            self.at += 1;
            loop {
                match *self.bytes.get(self.at)? {
                    b'"' => {
                        self.at += 1;
                        break;
                    }
                    b'\\' => {
                        out.push(*self.bytes.get(self.at + 1)?);
                        self.at += 2;
                    }
                    b => {
                        out.push(b);
                        self.at += 1;
                    }
                }
            }
            return String::from_utf8(out).ok().map(Some);
        }
        while let Some(&b) = self.bytes.get(self.at) {
            if b == b',' || b == b'}' {
                break;
            }
            out.push(b);
            self.at += 1;
        }
        if out.is_empty() {
            return None;
        }
        if out == b"NULL" {
            return Some(None);
        }
        String::from_utf8(out).ok().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(text: &str) -> (Vec<(i32, i32)>, Vec<Option<&str>>) {
        let a = parse(text).unwrap();
        let dims = a.dims.clone();
        let leaked: Vec<Option<&str>> = a
            .elements
            .into_iter()
            .map(|e| e.map(|s| &*Box::leak(s.into_boxed_str())))
            .collect();
        (dims, leaked)
    }

    #[test]
    fn reads_postgres_array_text() {
        assert_eq!(
            elements("{1,2,NULL}"),
            (vec![(3, 1)], vec![Some("1"), Some("2"), None])
        );
        assert_eq!(
            elements(r#"{"a b","c\"d",NULL,"NULL"}"#),
            (
                vec![(4, 1)],
                vec![Some("a b"), Some("c\"d"), None, Some("NULL")]
            )
        );
        assert_eq!(
            elements("{{1,2},{3,4},{5,6}}"),
            (
                vec![(3, 1), (2, 1)],
                vec![
                    Some("1"),
                    Some("2"),
                    Some("3"),
                    Some("4"),
                    Some("5"),
                    Some("6")
                ]
            )
        );
        assert_eq!(
            elements("[0:1]={x,y}"),
            (vec![(2, 0)], vec![Some("x"), Some("y")])
        );
        assert_eq!(elements("{}"), (vec![], vec![]));
    }

    #[test]
    fn orders_as_array_cmp() {
        let cmp = |a: &str, b: &str| compare(1007, a.as_bytes(), b.as_bytes()).unwrap();
        assert_eq!(cmp("{1,2}", "{1,10}"), Ordering::Less);
        assert_eq!(cmp("{2}", "{10,1}"), Ordering::Less);
        assert_eq!(cmp("{1,2}", "{1,2,0}"), Ordering::Less);
        assert_eq!(cmp("{1,NULL}", "{1,5}"), Ordering::Greater);
        assert_eq!(cmp("{}", "{1}"), Ordering::Less);
        assert_eq!(cmp("{1,2}", "{{1,2}}"), Ordering::Less);
        assert_eq!(cmp("[0:1]={1,2}", "{1,2}"), Ordering::Less);
        assert_eq!(cmp("{3,4}", "{3,4}"), Ordering::Equal);
        let text = |a: &str, b: &str| compare(1009, a.as_bytes(), b.as_bytes()).unwrap();
        assert_eq!(text(r#"{"b a",c}"#, "{b,z}"), Ordering::Greater);
    }

    #[test]
    fn refuses_what_is_not_an_array() {
        for text in ["", "{", "{1,2", "{{1},{2,3}}", "{1}x", "1,2", "{,}"] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    #[test]
    fn binary_as_postgres_sends_it() {
        let int = |_: ValueType, v: &[u8]| {
            Some(
                std::str::from_utf8(v)
                    .ok()?
                    .parse::<i32>()
                    .ok()?
                    .to_be_bytes()
                    .to_vec(),
            )
        };
        // SELECT '{7,NULL}'::int[] in binary.
        let expected = [
            &1i32.to_be_bytes()[..],
            &1i32.to_be_bytes(),
            &23u32.to_be_bytes(),
            &2i32.to_be_bytes(),
            &1i32.to_be_bytes(),
            &4i32.to_be_bytes(),
            &7i32.to_be_bytes(),
            &(-1i32).to_be_bytes(),
        ]
        .concat();
        assert_eq!(to_binary(1007, "{7,NULL}", int).unwrap(), expected);
        // An empty array has no dimensions.
        let empty = [
            &0i32.to_be_bytes()[..],
            &0i32.to_be_bytes(),
            &23u32.to_be_bytes(),
        ]
        .concat();
        assert_eq!(to_binary(1007, "{}", int).unwrap(), empty);
        assert_eq!(to_binary(1231, "{1}", int), None);
    }
}
