//! DataRow and RowDescription messages taken apart and put back together, for the rows
//! the proxy has to look into when it merges the answers of several shards.

use bytes::Bytes;

use crate::net::messages::tag;
use crate::net::{Frame, WireError};

/// One DataRow's values; `None` is NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub values: Vec<Option<Bytes>>,
}

impl Row {
    /// Reads a DataRow message.
    pub fn parse(frame: &Frame) -> Result<Row, WireError> {
        let body = Bytes::copy_from_slice(frame.body());
        let mut reader = crate::net::frame::BodyReader::new(&body);
        let count = reader.i16()?;
        let mut values = Vec::with_capacity(count.max(0) as usize);
        let mut offset = 2;
        for _ in 0..count {
            let len = reader.i32()?;
            offset += 4;
            if len < 0 {
                values.push(None);
                continue;
            }
            reader.take(len as usize)?;
            values.push(Some(body.slice(offset..offset + len as usize)));
            offset += len as usize;
        }
        Ok(Row { values })
    }

    /// The DataRow message of the first `columns` values.
    pub fn to_frame(&self, columns: usize) -> Frame {
        let values = &self.values[..columns.min(self.values.len())];
        let size: usize = values
            .iter()
            .map(|v| 4 + v.as_ref().map_or(0, Bytes::len))
            .sum();
        let mut body = Vec::with_capacity(2 + size);
        body.extend_from_slice(&(values.len() as i16).to_be_bytes());
        for value in values {
            match value {
                Some(v) => {
                    body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    body.extend_from_slice(v);
                }
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        Frame::new(tag::DATA_ROW, &body)
    }
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: Vec<u8>,
    pub table_oid: i32,
    pub attribute: i16,
    pub type_oid: u32,
    pub type_size: i16,
    pub type_modifier: i32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// A RowDescription: the result's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDescription {
    pub columns: Vec<Column>,
}

impl RowDescription {
    pub fn parse(frame: &Frame) -> Result<RowDescription, WireError> {
        let mut reader = frame.reader();
        let count = reader.i16()?;
        let mut columns = Vec::with_capacity(count.max(0) as usize);
        for _ in 0..count {
            columns.push(Column {
                name: reader.cstr()?.to_vec(),
                table_oid: reader.i32()?,
                attribute: reader.i16()?,
                type_oid: reader.i32()? as u32,
                type_size: reader.i16()?,
                type_modifier: reader.i32()?,
                format: reader.i16()?,
            });
        }
        Ok(RowDescription { columns })
    }

    /// The RowDescription message of the first `columns` columns.
    pub fn to_frame(&self, columns: usize) -> Frame {
        let mut body = Vec::new();
        let shown = &self.columns[..columns.min(self.columns.len())];
        body.extend_from_slice(&(shown.len() as i16).to_be_bytes());
        for c in shown {
            body.extend_from_slice(&c.name);
            body.push(0);
            body.extend_from_slice(&c.table_oid.to_be_bytes());
            body.extend_from_slice(&c.attribute.to_be_bytes());
            body.extend_from_slice(&(c.type_oid as i32).to_be_bytes());
            body.extend_from_slice(&c.type_size.to_be_bytes());
            body.extend_from_slice(&c.type_modifier.to_be_bytes());
            body.extend_from_slice(&c.format.to_be_bytes());
        }
        Frame::new(tag::ROW_DESCRIPTION, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rows_round_trip_with_nulls() {
        let row = Row {
            values: vec![Some(Bytes::from_static(b"42")), None, Some(Bytes::new())],
        };
        let parsed = Row::parse(&row.to_frame(3)).unwrap();
        assert_eq!(parsed, row);
        let cut = Row::parse(&row.to_frame(1)).unwrap();
        assert_eq!(cut.values.len(), 1);
    }

    #[test]
    fn a_truncated_row_is_an_error() {
        let frame = Frame::new(tag::DATA_ROW, &[0, 1, 0, 0, 0, 9, b'x']);
        assert!(Row::parse(&frame).is_err());
    }

    #[test]
    fn row_descriptions_round_trip() {
        let desc = RowDescription {
            columns: vec![Column {
                name: b"id".to_vec(),
                table_oid: 1234,
                attribute: 1,
                type_oid: 20,
                type_size: 8,
                type_modifier: -1,
                format: 0,
            }],
        };
        assert_eq!(RowDescription::parse(&desc.to_frame(1)).unwrap(), desc);
    }
}
