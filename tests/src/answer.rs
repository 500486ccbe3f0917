//! What a statement answered, in a form in which two servers' answers compare: the
//! columns, every row as text, the number in the command tag, or the error's SQLSTATE.
//!
//! Differential tests run one statement on a reference PostgreSQL server and through the
//! proxy, and call [`difference`] on the two [`Outcome`]s. Over the extended protocol the
//! values arrive in binary and are written out as text here, so that the proxy's binary
//! encoding of merged values (sums, averages, dates) is checked too.

use std::error::Error as StdError;

use futures::{pin_mut, TryStreamExt};
use postgres_protocol::types as wire_types;
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

/// One row: each column's value as text, `None` for NULL.
pub type Row = Vec<Option<String>>;

/// A statement's answer, or the error it got.
pub type Outcome = Result<Answer, SqlError>;

/// The answer to a statement that succeeded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// Column names; over the extended protocol with their type (`id int8`).
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    /// The number at the end of the command tag (`SELECT 3`, `UPDATE 7`), 0 for tags
    /// without one.
    pub count: Option<u64>,
}

/// An error as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlError {
    /// The SQLSTATE; `None` when the connection failed or a value could not be read.
    pub code: Option<String>,
    pub message: String,
}

impl SqlError {
    /// An error that is not the server's: a timeout, a lost connection.
    pub fn other(message: impl Into<String>) -> SqlError {
        SqlError {
            code: None,
            message: message.into(),
        }
    }
}

impl From<tokio_postgres::Error> for SqlError {
    fn from(error: tokio_postgres::Error) -> SqlError {
        match error.as_db_error() {
            Some(db) => SqlError {
                code: Some(db.code().code().to_string()),
                message: db.message().to_string(),
            },
            None => SqlError {
                code: None,
                message: match error.source() {
                    Some(source) => format!("{error}: {source}"),
                    None => error.to_string(),
                },
            },
        }
    }
}

/// Whether rows must come in the same order (the query orders them totally) or only be
/// the same multiset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Exact,
    Any,
}

/// Runs `sql` with the simple query protocol; values come as the server's text.
pub async fn simple_query(client: &Client, sql: &str) -> Outcome {
    let mut answer = Answer::default();
    for message in client.simple_query(sql).await? {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                answer.columns = columns.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                answer.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(count) => answer.count = Some(count),
            _ => {}
        }
    }
    Ok(answer)
}

/// Prepares `sql` and runs it with `params` over the extended protocol; values come in
/// binary and are written out as text by their column type.
pub async fn extended_query(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Outcome {
    let statement = client.prepare(sql).await?;
    let columns = statement
        .columns()
        .iter()
        .map(|c| format!("{} {}", c.name(), c.type_().name()))
        .collect();
    let stream = client.query_raw(&statement, params.iter().copied()).await?;
    pin_mut!(stream);
    let mut rows = Vec::new();
    while let Some(row) = stream.try_next().await? {
        let values = (0..row.len())
            .map(|i| row.try_get::<_, Text>(i).map(|text| text.0))
            .collect::<Result<Row, _>>()?;
        rows.push(values);
    }
    Ok(Answer {
        columns,
        rows,
        count: stream.rows_affected(),
    })
}

/// Runs `sql` through `proxy` and on `reference` over the extended protocol (binary
/// results) and the simple one (text); the differences, each named with its protocol.
/// Fails when the reference answers without rows: the comparison would show nothing.
pub async fn differences_in_both_protocols(
    proxy: &Client,
    reference: &Client,
    sql: &str,
    order: Order,
) -> anyhow::Result<Vec<String>> {
    let mut differences = Vec::new();
    for binary in [true, false] {
        let (proxy_answer, reference_answer) = if binary {
            (
                extended_query(proxy, sql, &[]).await,
                extended_query(reference, sql, &[]).await,
            )
        } else {
            (
                simple_query(proxy, sql).await,
                simple_query(reference, sql).await,
            )
        };
        anyhow::ensure!(
            reference_answer.as_ref().is_ok_and(|a| !a.rows.is_empty()),
            "the reference answers {sql} with rows: {}",
            summary(&reference_answer)
        );
        if let Some(why) = difference(order, &proxy_answer, &reference_answer) {
            let format = if binary { "binary" } else { "text" };
            differences.push(format!("{sql} ({format}): {why}"));
        }
    }
    Ok(differences)
}

/// Why the proxy's outcome differs from the reference's, or `None` when they agree.
/// Errors agree when their SQLSTATEs do (messages may be worded differently).
pub fn difference(order: Order, proxy: &Outcome, reference: &Outcome) -> Option<String> {
    let note = match (proxy, reference) {
        (Ok(proxy), Ok(reference)) => answers_differ(order, proxy, reference)?,
        (Err(proxy), Err(reference)) if proxy.code == reference.code => return None,
        (Err(_), Err(_)) => "different errors".to_string(),
        (Err(_), Ok(_)) => "the proxy failed".to_string(),
        (Ok(_), Err(_)) => "the reference failed, the proxy did not".to_string(),
    };
    Some(format!(
        "{note}\n    proxy:     {}\n    reference: {}",
        summary(proxy),
        summary(reference)
    ))
}

/// What differs between two answers (columns, tag count, rows), `None` if nothing.
fn answers_differ(order: Order, proxy: &Answer, reference: &Answer) -> Option<String> {
    let mut notes = Vec::new();
    if proxy.columns != reference.columns {
        notes.push(format!(
            "columns [{}] instead of [{}]",
            proxy.columns.join(", "),
            reference.columns.join(", ")
        ));
    }
    if proxy.count != reference.count {
        notes.push(format!(
            "command tag count {:?} instead of {:?}",
            proxy.count, reference.count
        ));
    }
    let (ours, theirs) = match order {
        Order::Exact => (proxy.rows.clone(), reference.rows.clone()),
        Order::Any => (sorted(&proxy.rows), sorted(&reference.rows)),
    };
    if ours != theirs {
        if order == Order::Exact && sorted(&ours) == sorted(&theirs) {
            notes.push("the same rows in another order".to_string());
        } else {
            notes.push(first_row_difference(&ours, &theirs));
        }
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// The row counts and the first row that differs (rows compared in the given order).
fn first_row_difference(proxy: &[Row], reference: &[Row]) -> String {
    let at = proxy
        .iter()
        .zip(reference)
        .position(|(p, r)| p != r)
        .unwrap_or(proxy.len().min(reference.len()));
    let show = |rows: &[Row]| rows.get(at).map_or("no row".to_string(), row_text);
    format!(
        "{} rows instead of {}; first difference at row {at}: {} instead of {}",
        proxy.len(),
        reference.len(),
        show(proxy),
        show(reference)
    )
}

/// Rows in a canonical order, for comparing multisets.
fn sorted(rows: &[Row]) -> Vec<Row> {
    let mut rows = rows.to_vec();
    rows.sort();
    rows
}

/// A one-line account of an outcome, cut to a readable length.
pub fn summary(outcome: &Outcome) -> String {
    /// Characters of rows shown; enough for a few rows.
    const MAX: usize = 400;
    match outcome {
        Err(error) => format!(
            "ERROR {}: {}",
            error.code.as_deref().unwrap_or("(no SQLSTATE)"),
            error.message
        ),
        Ok(answer) => {
            let rows: Vec<String> = answer.rows.iter().map(row_text).collect();
            let mut rows = rows.join(" ");
            if rows.chars().count() > MAX {
                rows = rows.chars().take(MAX).collect::<String>() + " …";
            }
            format!(
                "{} rows (tag {:?}) [{}]: {rows}",
                answer.rows.len(),
                answer.count,
                answer.columns.join(", ")
            )
        }
    }
}

/// A row as `(1, abc, NULL)`.
fn row_text(row: &Row) -> String {
    let values: Vec<&str> = row.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
    format!("({})", values.join(", "))
}

/// A value of any column type read in binary and written out as text, so that answers
/// with columns of any type compare alike.
struct Text(Option<String>);

impl<'a> FromSql<'a> for Text {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Text, Box<dyn StdError + Sync + Send>> {
        binary_to_text(ty, raw).map(|text| Text(Some(text)))
    }

    fn from_sql_null(_: &Type) -> Result<Text, Box<dyn StdError + Sync + Send>> {
        Ok(Text(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The text of a binary value of the types the tests use; other types as hex bytes.
fn binary_to_text(ty: &Type, raw: &[u8]) -> Result<String, Box<dyn StdError + Sync + Send>> {
    Ok(match *ty {
        Type::BOOL => wire_types::bool_from_sql(raw)?.to_string(),
        Type::INT2 => wire_types::int2_from_sql(raw)?.to_string(),
        Type::INT4 => wire_types::int4_from_sql(raw)?.to_string(),
        Type::INT8 => wire_types::int8_from_sql(raw)?.to_string(),
        Type::OID => wire_types::oid_from_sql(raw)?.to_string(),
        Type::FLOAT4 => format!("{:?}", wire_types::float4_from_sql(raw)?),
        Type::FLOAT8 => format!("{:?}", wire_types::float8_from_sql(raw)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            wire_types::text_from_sql(raw)?.to_string()
        }
        Type::NUMERIC => numeric_text(raw)?,
        Type::DATE => date_text(wire_types::date_from_sql(raw)?),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            format!(
                "{}µs after 2000-01-01",
                wire_types::timestamp_from_sql(raw)?
            )
        }
        _ => {
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}:\\x{hex}", ty.name())
        }
    })
}

/// The text PostgreSQL writes for a binary `numeric`: base-10000 digits with a weight,
/// a sign and a display scale.
fn numeric_text(raw: &[u8]) -> Result<String, Box<dyn StdError + Sync + Send>> {
    let word = |i: usize| -> Result<u16, Box<dyn StdError + Sync + Send>> {
        raw.get(2 * i..2 * i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| format!("numeric of {} bytes is cut short", raw.len()).into())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    match sign {
        0xC000 => return Ok("NaN".to_string()),
        0xD000 => return Ok("Infinity".to_string()),
        0xF000 => return Ok("-Infinity".to_string()),
        _ => {}
    }
    let digits = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<Vec<u16>, _>>()?;
    // The digit group worth 10000^(weight - index), 0 beyond the stored ones.
    let group = |index: i64| -> u16 {
        usize::try_from(index)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&group(0).to_string());
        for index in 1..=weight {
            text.push_str(&format!("{:04}", group(index)));
        }
    }
    if dscale > 0 {
        let mut fraction = String::new();
        let mut index = weight + 1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", group(index)));
            index += 1;
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

/// The text PostgreSQL writes for the `date` that is `days` after 2000-01-01
/// (`YYYY-MM-DD`, ISO style); generated data uses it too.
pub fn date_text(days: i32) -> String {
    // Howard Hinnant's civil_from_days, counted from 1970-01-01.
    let z = i64::from(days) + 10_957 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary numeric from its header words and digit groups.
    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for word in [digits.len() as u16, weight as u16, sign, dscale]
            .iter()
            .chain(digits)
        {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_read_as_postgresql_writes_them() {
        let cases: &[(Vec<u8>, &str)] = &[
            (numeric(0, 0, 0, &[]), "0"),
            (numeric(0, 0, 2, &[]), "0.00"),
            (numeric(0, 0, 2, &[12, 3400]), "12.34"),
            (numeric(0, 0x4000, 2, &[12, 3400]), "-12.34"),
            (numeric(1, 0, 0, &[1, 0]), "10000"),
            (numeric(1, 0, 1, &[1]), "10000.0"),
            (numeric(-2, 0, 8, &[1234]), "0.00001234"),
            (
                numeric(-1, 0, 16, &[2998, 7012, 9870, 1298, 7013]),
                "0.2998701298701298",
            ),
            (numeric(0, 0xC000, 0, &[]), "NaN"),
        ];
        for (raw, text) in cases {
            assert_eq!(numeric_text(raw).unwrap(), *text);
        }
    }

    #[test]
    fn dates_read_as_postgresql_writes_them() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(59), "2000-02-29");
        assert_eq!(date_text(8401), "2023-01-01");
        assert_eq!(date_text(-1), "1999-12-31");
    }
}
