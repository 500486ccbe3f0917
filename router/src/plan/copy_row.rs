//! Reading the shard key out of COPY text and CSV data rows.

use super::error::PlanError;
use super::schema::ShardSchema;
use super::spec::{CopyFormat, CopySplit};
use crate::sharding::{KeyValue, ParamFormat};

/// Finds where COPY data rows end in data that arrives in pieces, looking at each byte
/// about once however the CopyData messages cut the rows.
///
/// The caller keeps the bytes of the row not complete yet and appends each message's;
/// [`CopyRowScanner::row_end`] goes on from where it stopped. A text row ends at the
/// first newline not escaped by a backslash; a CSV row at the first newline outside
/// quotes (a quoted field may hold newlines). A final row without newline is complete
/// only at CopyDone. A `\.` row is the end-of-data marker, not a row (see
/// [`is_copy_end_marker`]).
#[derive(Debug, Clone, Default)]
pub struct CopyRowScanner {
    /// Bytes of the current row looked at already.
    scanned: usize,
    /// CSV: the scan stopped inside a quoted field.
    in_quotes: bool,
}

impl CopyRowScanner {
    /// The end offset (just after the newline) of the row that starts at `buf[0]`, or
    /// `None` when `buf` does not hold all of it yet. `buf` must start with the same
    /// bytes as at the last call (the current row's); after a row is found, the next call
    /// reads the next row from its start.
    pub fn row_end(&mut self, buf: &[u8], spec: &CopySplit) -> Option<usize> {
        let mut i = self.scanned;
        while i < buf.len() {
            let b = buf[i];
            let next = buf.get(i + 1).copied();
            match spec.format {
                CopyFormat::Text if b == b'\\' => {
                    if next.is_none() {
                        // What it escapes comes with the next message.
                        break;
                    }
                    i += 1;
                }
                CopyFormat::Csv if self.in_quotes => {
                    let pair = next == Some(spec.quote) || next == Some(spec.escape);
                    if (b == spec.escape || b == spec.quote) && next.is_none() {
                        // An escape, or a quote that may be doubled: decided by the next
                        // byte, which comes with the next message.
                        break;
                    }
                    if b == spec.escape && pair {
                        i += 1;
                    } else if b == spec.quote {
                        self.in_quotes = false;
                    }
                }
                CopyFormat::Csv if b == spec.quote => self.in_quotes = true,
                _ if b == b'\n' => {
                    *self = CopyRowScanner::default();
                    return Some(i + 1);
                }
                _ => {}
            }
            i += 1;
        }
        self.scanned = i;
        None
    }

    /// Bytes of the current row looked at so far.
    pub fn scanned(&self) -> usize {
        self.scanned
    }
}

/// The end offset of the first complete row in `buf`, or `None` (see
/// [`CopyRowScanner`]).
pub fn copy_row_end(buf: &[u8], spec: &CopySplit) -> Option<usize> {
    CopyRowScanner::default().row_end(buf, spec)
}

/// Whether `line` is the `\.` end-of-data marker some clients send last.
pub fn is_copy_end_marker(line: &[u8]) -> bool {
    trim_newline(line) == b"\\."
}

/// The key field of one data row (with or without its newline), unescaped;
/// `None` for NULL.
pub fn copy_key_field(line: &[u8], spec: &CopySplit) -> Result<Option<Vec<u8>>, PlanError> {
    let line = trim_newline(line);
    match spec.format {
        CopyFormat::Text => text_field(line, spec),
        CopyFormat::Csv => csv_field(line, spec),
    }
}

impl ShardSchema {
    /// The shard a COPY data row belongs to.
    pub fn copy_row_shard(&self, line: &[u8], spec: &CopySplit) -> Result<usize, PlanError> {
        let field = copy_key_field(line, spec)?;
        let key = KeyValue::from_parameter(spec.key_type, ParamFormat::Text, field.as_deref())?;
        Ok(self
            .function(spec.key_type)?
            .shard_of(&key, self.shards())?)
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn missing(spec: &CopySplit) -> PlanError {
    PlanError::CopyData(format!(
        "missing data for the shard key (field {} of the row)",
        spec.key_field + 1
    ))
}

/// Text format: fields split at unescaped delimiters; the NULL marker is compared
/// before unescaping, as PostgreSQL does.
fn text_field(line: &[u8], spec: &CopySplit) -> Result<Option<Vec<u8>>, PlanError> {
    let mut field = 0;
    let mut start = 0;
    let mut i = 0;
    loop {
        if i >= line.len() || line[i] == spec.delimiter {
            if field == spec.key_field {
                let raw = &line[start..i.min(line.len())];
                return Ok((raw != spec.null.as_slice()).then(|| unescape(raw)));
            }
            if i >= line.len() {
                return Err(missing(spec));
            }
            field += 1;
            start = i + 1;
        } else if line[i] == b'\\' {
            i += 1;
        }
        i += 1;
    }
}

/// Undoes the text format's backslash escapes.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' || i + 1 == raw.len() {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut value = 0u8;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d as u8;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(value);
            }
            other => out.push(other),
        }
    }
    out
}

/// CSV: quotes may start anywhere in a field; inside them the escape character
/// (by default the quote itself, doubled) makes the next quote or escape literal.
fn csv_field(line: &[u8], spec: &CopySplit) -> Result<Option<Vec<u8>>, PlanError> {
    let mut field = 0;
    let mut value = Vec::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut i = 0;
    loop {
        if !in_quotes && (i >= line.len() || line[i] == spec.delimiter) {
            if field == spec.key_field {
                let is_null = if quoted {
                    spec.force_null && value == spec.null
                } else {
                    !spec.force_not_null && value == spec.null
                };
                return Ok((!is_null).then_some(value));
            }
            if i >= line.len() {
                return Err(missing(spec));
            }
            field += 1;
            value.clear();
            quoted = false;
            i += 1;
            continue;
        }
        let Some(&b) = line.get(i) else {
            return Err(PlanError::CopyData("unterminated CSV quoted field".into()));
        };
        let next = line.get(i + 1).copied();
        if in_quotes {
            if b == spec.escape && (next == Some(spec.quote) || next == Some(spec.escape)) {
                value.extend(next);
                i += 1;
            } else if b == spec.quote {
                in_quotes = false;
            } else {
                value.push(b);
            }
        } else if b == spec.quote {
            in_quotes = true;
            quoted = true;
        } else {
            value.push(b);
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharding::KeyType;

    fn spec(format: CopyFormat, key_field: usize) -> CopySplit {
        let csv = format == CopyFormat::Csv;
        CopySplit {
            key_field,
            fields: 3,
            key_type: KeyType::Text,
            format,
            delimiter: if csv { b',' } else { b'\t' },
            null: if csv { Vec::new() } else { b"\\N".to_vec() },
            header: false,
            quote: b'"',
            escape: b'"',
            force_not_null: false,
            force_null: false,
        }
    }

    fn key(line: &str, spec: &CopySplit) -> Result<Option<String>, PlanError> {
        copy_key_field(line.as_bytes(), spec)
            .map(|f| f.map(|bytes| String::from_utf8(bytes).unwrap()))
    }

    #[test]
    fn text_fields_and_escapes() {
        let second = spec(CopyFormat::Text, 1);
        assert_eq!(key("1\tabc\tx\n", &second), Ok(Some("abc".into())));
        assert_eq!(key("1\t\\N\tx\n", &second), Ok(None));
        assert_eq!(key("1\t\\\\N\tx", &second), Ok(Some("\\N".into())));
        assert_eq!(
            key("1\ta\\tb\\\\c\\101\\x42\\q\r\n", &second),
            Ok(Some("a\tb\\cABq".into()))
        );
        assert_eq!(key("a\\\tb\tc", &second), Ok(Some("c".into())));
        assert_eq!(key("1\t\tx", &second), Ok(Some(String::new())));
        assert_eq!(key("1\t", &second), Ok(Some(String::new())));
        assert!(key("1", &second).is_err());
        assert_eq!(
            key("only", &spec(CopyFormat::Text, 0)),
            Ok(Some("only".into()))
        );
        assert!(is_copy_end_marker(b"\\.\n"));
    }

    #[test]
    fn csv_fields_quotes_and_nulls() {
        let second = spec(CopyFormat::Csv, 1);
        assert_eq!(key("1,abc,x\n", &second), Ok(Some("abc".into())));
        assert_eq!(key("1,,x", &second), Ok(None));
        assert_eq!(key("1,\"\",x", &second), Ok(Some(String::new())));
        assert_eq!(
            key("\"a,b\",\"say \"\"hi\"\"\",x", &second),
            Ok(Some("say \"hi\"".into()))
        );
        assert_eq!(
            key("1,\"multi\nline\",x\r\n", &second),
            Ok(Some("multi\nline".into()))
        );
        assert_eq!(key("1,ab\"c,d\"e,x", &second), Ok(Some("abc,de".into())));
        assert!(key("1,\"open", &second).is_err());
        let mut escaped = spec(CopyFormat::Csv, 0);
        escaped.escape = b'\\';
        assert_eq!(
            key("\"a\\\"b\\\\c\\d\",x", &escaped),
            Ok(Some("a\"b\\c\\d".into()))
        );
        let mut forced = spec(CopyFormat::Csv, 0);
        forced.force_not_null = true;
        assert_eq!(key(",x", &forced), Ok(Some(String::new())));
        forced.force_null = true;
        assert_eq!(key("\"\",x", &forced), Ok(None));
    }

    #[test]
    fn row_ends() {
        let text = spec(CopyFormat::Text, 0);
        assert_eq!(copy_row_end(b"a\tb\nc", &text), Some(4));
        assert_eq!(copy_row_end(b"a\\\nb\nc", &text), Some(5));
        assert_eq!(copy_row_end(b"a\tb", &text), None);
        let csv = spec(CopyFormat::Csv, 0);
        assert_eq!(copy_row_end(b"\"a\nb\",c\nx", &csv), Some(8));
        assert_eq!(copy_row_end(b"\"a\"\"\n\",c\n", &csv), Some(9));
        assert_eq!(copy_row_end(b"\"a\"", &csv), None);
        assert_eq!(copy_row_end(b"\"open\n", &csv), None);
    }

    /// Rows cut at every possible place end where they end whole, and no byte is looked
    /// at twice more than once.
    #[test]
    fn rows_cut_anywhere_end_where_whole_rows_end() {
        let text = spec(CopyFormat::Text, 0);
        let csv = spec(CopyFormat::Csv, 0);
        let cases: [(&[u8], &CopySplit); 2] = [
            (b"a\\\nb\tc\nd\\\\\ne\n", &text),
            (b"\"x\ny\",\"a\"\"b\"\n\"\"\"\"\n,\n", &csv),
        ];
        for (data, spec) in cases {
            let whole: Vec<usize> = {
                let mut ends = Vec::new();
                let mut start = 0;
                while let Some(len) = copy_row_end(&data[start..], spec) {
                    start += len;
                    ends.push(start);
                }
                ends
            };
            for cut in 0..=data.len() {
                let mut scanner = CopyRowScanner::default();
                let (mut pending, mut ends, mut offset) = (Vec::new(), Vec::new(), 0);
                for piece in [&data[..cut], &data[cut..]] {
                    pending.extend_from_slice(piece);
                    while let Some(len) = scanner.row_end(&pending, spec) {
                        offset += len;
                        ends.push(offset);
                        pending.drain(..len);
                    }
                }
                assert_eq!(ends, whole, "cut at {cut}");
            }
        }
    }

    #[test]
    fn a_long_row_is_scanned_once() {
        let text = spec(CopyFormat::Text, 0);
        let mut scanner = CopyRowScanner::default();
        let mut pending = Vec::new();
        for _ in 0..1000 {
            pending.extend_from_slice(&[b'x'; 100]);
            assert_eq!(scanner.row_end(&pending, &text), None);
            assert_eq!(scanner.scanned(), pending.len());
        }
        pending.push(b'\n');
        assert_eq!(scanner.row_end(&pending, &text), Some(100_001));
    }
}
