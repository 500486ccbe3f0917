//! The answer to an admin command as protocol messages: RowDescription, DataRows and
//! CommandComplete.

use crate::net::messages::{command_complete, tag};
use crate::net::Frame;

/// A column's type as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int8,
    Bool,
}

impl ColumnType {
    fn oid(self) -> i32 {
        match self {
            ColumnType::Text => 25,
            ColumnType::Int8 => 20,
            ColumnType::Bool => 16,
        }
    }

    fn size(self) -> i16 {
        match self {
            ColumnType::Text => -1,
            ColumnType::Int8 => 8,
            ColumnType::Bool => 1,
        }
    }
}

/// A result set (values in text format, `None` for NULL) and its command tag.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub columns: Vec<(&'static str, ColumnType)>,
    pub rows: Vec<Vec<Option<String>>>,
    pub tag: String,
}

impl Reply {
    pub fn new(tag: &str, columns: &[(&'static str, ColumnType)]) -> Reply {
        Reply {
            columns: columns.to_vec(),
            rows: Vec::new(),
            tag: tag.to_string(),
        }
    }

    /// A command's answer without rows: its tag alone.
    pub fn command(tag: &str) -> Reply {
        Reply::new(tag, &[])
    }

    /// The messages, up to CommandComplete (the caller adds ReadyForQuery).
    pub fn frames(&self) -> Vec<Frame> {
        if self.columns.is_empty() {
            return vec![command_complete(&self.tag)];
        }
        let mut description = (self.columns.len() as i16).to_be_bytes().to_vec();
        for (name, ty) in &self.columns {
            description.extend_from_slice(name.as_bytes());
            description.push(0);
            description.extend_from_slice(&0i32.to_be_bytes()); // not a table column
            description.extend_from_slice(&0i16.to_be_bytes());
            description.extend_from_slice(&ty.oid().to_be_bytes());
            description.extend_from_slice(&ty.size().to_be_bytes());
            description.extend_from_slice(&(-1i32).to_be_bytes());
            description.extend_from_slice(&0i16.to_be_bytes()); // text format
        }
        let mut frames = vec![Frame::new(tag::ROW_DESCRIPTION, &description)];
        for row in &self.rows {
            let mut body = (row.len() as i16).to_be_bytes().to_vec();
            for value in row {
                match value {
                    Some(v) => {
                        body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        body.extend_from_slice(v.as_bytes());
                    }
                    None => body.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
            frames.push(Frame::new(tag::DATA_ROW, &body));
        }
        frames.push(command_complete(&self.tag));
        frames
    }
}

/// A boolean as PostgreSQL prints it.
pub fn bool_text(value: bool) -> Option<String> {
    Some(if value { "t" } else { "f" }.to_string())
}
