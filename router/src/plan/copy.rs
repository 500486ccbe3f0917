//! Plans for COPY: rows into a sharded table are split by key, rows into a replicated
//! table go everywhere, and COPY TO reads like the query it copies.

use super::error::{unsupported, PlanError};
use super::names::{ident, is_catalog, last, quoted};
use super::schema::{ShardSchema, ShardedTable};
use super::select;
use super::spec::{CopyFormat, CopySplit, ResultMerge, ShardPlan, ShardStatements, ShardTarget};
use super::template::{any_one, Template};
use sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, Statement,
};

/// The template of a COPY statement.
pub(crate) fn plan(schema: &ShardSchema, statement: &Statement) -> Result<Template, PlanError> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = statement
    else {
        return Err(unsupported("expected COPY"));
    };
    // PostgreSQL takes STDIN and STDOUT alike, in either direction, as the client's
    // connection (PHP PDO's pgsqlCopyToArray sends `COPY … TO STDIN`).
    if !matches!(target, CopyTarget::Stdin | CopyTarget::Stdout) {
        return Err(unsupported(
            "COPY to or from a server file or program is not supported on a sharded database; use STDIN or STDOUT",
        ));
    }
    match source {
        CopySource::Query(query) if *to => match select::plan(schema, query)? {
            Template::Routed(mut routed) => {
                routed.spread = Err(unsupported(
                    "COPY (query) TO STDOUT over several shards is not supported; filter on the shard key to copy from one shard, or SELECT the rows",
                ));
                Ok(Template::Routed(routed))
            }
            other => Ok(other),
        },
        CopySource::Query(_) => Err(unsupported("COPY (query) FROM is not valid")),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let name = last(table_name);
            if is_catalog(table_name) || schema.is_replicated(&name) {
                return Ok(Template::Fixed(if *to {
                    any_one()
                } else {
                    everywhere(ResultMerge::CopyEverywhere)
                }));
            }
            let Some(table) = schema.sharded(&name) else {
                return Err(unsupported(format!(
                    "table {} is neither sharded nor replicated in database {}; add it to sharded_tables or replicated_tables",
                    quoted(&name),
                    quoted(schema.database())
                )));
            };
            if *to {
                let header = copy_out_header(options, legacy_options)?;
                return Ok(Template::Fixed(everywhere(ResultMerge::CopyOut { header })));
            }
            if columns.is_empty() {
                // The key is found by position: the data plane names the columns.
                return Err(PlanError::ColumnsNeeded {
                    table: table_name.to_string(),
                });
            }
            let split = split(table, columns, options, legacy_options)?;
            Ok(Template::Fixed(everywhere(ResultMerge::Copy(split))))
        }
    }
}

fn everywhere(merge: ResultMerge) -> ShardPlan {
    ShardPlan {
        target: ShardTarget::All,
        statements: ShardStatements::Original,
        merge,
    }
}

/// How the rows of `COPY table (columns) FROM STDIN` are split.
fn split(
    table: &ShardedTable,
    columns: &[Ident],
    options: &[CopyOption],
    legacy_options: &[CopyLegacyOption],
) -> Result<CopySplit, PlanError> {
    let Some(key_field) = columns.iter().position(|c| ident(c) == table.column) else {
        return Err(unsupported(format!(
            "COPY into sharded table {} needs a column list naming its shard key \"{}\", e.g. COPY {} ({}, …) FROM STDIN",
            quoted(&table.name),
            table.column,
            table.name,
            table.column
        )));
    };
    let names_key = |cols: &[Ident]| cols.iter().any(|c| ident(c) == table.column);
    let mut csv = false;
    let mut delimiter = None;
    let mut null = None;
    let mut quote = None;
    let mut escape = None;
    let mut header = false;
    let mut force_null = false;
    let mut force_not_null = false;
    for option in options {
        match option {
            CopyOption::Format(format) => match ident(format).to_ascii_lowercase().as_str() {
                "text" => csv = false,
                "csv" => csv = true,
                other => return Err(format_refusal(other)),
            },
            CopyOption::Delimiter(c) => delimiter = Some(byte(*c)?),
            CopyOption::Null(text) => null = Some(text.clone().into_bytes()),
            CopyOption::Header(on) => header = *on,
            CopyOption::Quote(c) => quote = Some(byte(*c)?),
            CopyOption::Escape(c) => escape = Some(byte(*c)?),
            CopyOption::ForceNotNull(cols) => force_not_null |= names_key(cols),
            CopyOption::ForceNull(cols) => force_null |= names_key(cols),
            CopyOption::ForceQuote(_) | CopyOption::Freeze(_) => {}
            CopyOption::Encoding(encoding) => {
                let encoding = encoding.to_ascii_lowercase().replace(['-', '_'], "");
                if encoding != "utf8" && encoding != "unicode" {
                    return Err(unsupported(
                        "COPY into a sharded table must use the UTF8 encoding",
                    ));
                }
            }
        }
    }
    for option in legacy_options {
        match option {
            CopyLegacyOption::Delimiter(c) => delimiter = Some(byte(*c)?),
            CopyLegacyOption::Null(text) => null = Some(text.clone().into_bytes()),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Binary => return Err(format_refusal("binary")),
            CopyLegacyOption::Csv(csv_options) => {
                csv = true;
                for option in csv_options {
                    match option {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(c) => quote = Some(byte(*c)?),
                        CopyLegacyCsvOption::Escape(c) => escape = Some(byte(*c)?),
                        CopyLegacyCsvOption::ForceNotNull(cols) => {
                            force_not_null |= names_key(cols)
                        }
                        CopyLegacyCsvOption::ForceQuote(_) => {}
                    }
                }
            }
            other => {
                return Err(unsupported(format!(
                    "COPY option {other} is not supported on a sharded table"
                )))
            }
        }
    }
    let quote = quote.unwrap_or(b'"');
    Ok(CopySplit {
        key_field,
        fields: columns.len(),
        key_type: table.key_type,
        format: if csv {
            CopyFormat::Csv
        } else {
            CopyFormat::Text
        },
        delimiter: delimiter.unwrap_or(if csv { b',' } else { b'\t' }),
        null: null.unwrap_or_else(|| if csv { Vec::new() } else { b"\\N".to_vec() }),
        header,
        quote,
        escape: escape.unwrap_or(quote),
        force_not_null,
        force_null,
    })
}

/// Whether `COPY sharded_table TO STDOUT` writes a header line; binary copies, whose
/// streams cannot be joined, are refused.
fn copy_out_header(
    options: &[CopyOption],
    legacy_options: &[CopyLegacyOption],
) -> Result<bool, PlanError> {
    let binary = || {
        unsupported(
            "COPY TO STDOUT of a sharded table in binary format is not supported; use text or csv",
        )
    };
    let mut header = false;
    for option in options {
        match option {
            CopyOption::Format(format) if ident(format).eq_ignore_ascii_case("binary") => {
                return Err(binary())
            }
            CopyOption::Header(on) => header = *on,
            _ => {}
        }
    }
    for option in legacy_options {
        match option {
            CopyLegacyOption::Binary => return Err(binary()),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Csv(csv_options) => {
                header |= csv_options
                    .iter()
                    .any(|o| matches!(o, CopyLegacyCsvOption::Header));
            }
            _ => {}
        }
    }
    Ok(header)
}

fn format_refusal(format: &str) -> PlanError {
    unsupported(format!(
        "COPY FROM in {format} format into a sharded table is not supported; use text or csv"
    ))
}

/// A one-byte delimiter, quote or escape, as PostgreSQL requires.
fn byte(c: char) -> Result<u8, PlanError> {
    u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
        unsupported("COPY delimiters, quotes and escapes must be single one-byte characters")
    })
}
