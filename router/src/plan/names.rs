//! Identifiers and table names as PostgreSQL resolves them.

use sqlparser::ast::{Ident, ObjectName};

/// An identifier as PostgreSQL stores it: unquoted ones are folded to lower case.
pub(crate) fn ident(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The parts of a name, folded.
pub(crate) fn parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| part.as_ident().map(ident).unwrap_or_default())
        .collect()
}

/// The last part of a name (the table or function name itself), folded.
pub(crate) fn last(name: &ObjectName) -> String {
    parts(name).pop().unwrap_or_default()
}

/// Whether a table name is a system catalog or view: in `pg_catalog` or
/// `information_schema`, or named `pg_…` (unqualified catalog names resolve to
/// `pg_catalog` first).
pub(crate) fn is_catalog(name: &ObjectName) -> bool {
    let parts = parts(name);
    let schema = parts.len().checked_sub(2).and_then(|i| parts.get(i));
    match schema {
        Some(schema) if schema == "pg_catalog" || schema == "information_schema" => true,
        _ => parts.last().is_some_and(|table| table.starts_with("pg_")),
    }
}

/// A name for messages: the table's last part.
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::ObjectNamePart;

    fn name(parts: &[(&str, bool)]) -> ObjectName {
        ObjectName(
            parts
                .iter()
                .map(|(value, quoted)| {
                    ObjectNamePart::Identifier(if *quoted {
                        Ident::with_quote('"', *value)
                    } else {
                        Ident::new(*value)
                    })
                })
                .collect(),
        )
    }

    #[test]
    fn folding_and_catalogs() {
        assert_eq!(last(&name(&[("Public", false), ("Users", false)])), "users");
        assert_eq!(last(&name(&[("Users", true)])), "Users");
        assert!(is_catalog(&name(&[("pg_class", false)])));
        assert!(is_catalog(&name(&[
            ("information_schema", false),
            ("tables", false)
        ])));
        assert!(is_catalog(&name(&[("PG_CATALOG", false), ("x", false)])));
        assert!(!is_catalog(&name(&[("users", false)])));
    }
}
