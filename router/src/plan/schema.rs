//! What the planner knows about a database: its shards, sharded tables and
//! replicated tables.

use crate::sharding::{KeyType, ShardingError, ShardingFunction};
use pgshard_config::DatabaseConfig;
use std::collections::{HashMap, HashSet};

/// A database's sharding layout, built once from its configuration and shared by all
/// sessions' plans.
///
/// Tables are known by the last part of their configured name, lowercased: `public.users`
/// and `users` are the same table, as an unqualified name resolves through the
/// search path.
#[derive(Debug, Clone)]
pub struct ShardSchema {
    database: String,
    shards: usize,
    sharded: HashMap<String, ShardedTable>,
    replicated: HashSet<String>,
    /// One function per key type: the hash, ring or mapping is the database's, only the
    /// reading of range bounds and list values depends on the type.
    functions: Vec<(KeyType, ShardingFunction)>,
}

/// A sharded table: its key column and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardedTable {
    /// The table's name (last part, lowercased).
    pub name: String,
    /// The key column, lowercased.
    pub column: String,
    pub key_type: KeyType,
}

impl ShardedTable {
    /// Whether rows of this table and `other` with equal keys are on the same shard:
    /// their key values are alike (integers of any width hash alike) and the database
    /// has one sharding function.
    pub fn colocated_with(&self, other: &ShardedTable) -> bool {
        family(self.key_type) == family(other.key_type)
    }
}

fn family(key_type: KeyType) -> u8 {
    match key_type {
        KeyType::Int2 | KeyType::Int4 | KeyType::Int8 => 0,
        KeyType::Text => 1,
        KeyType::Uuid => 2,
    }
}

impl ShardSchema {
    /// Reads `db`'s sharded and replicated tables and builds its sharding function for
    /// each key type in use.
    pub fn new(db: &DatabaseConfig) -> Result<ShardSchema, ShardingError> {
        let mut sharded = HashMap::new();
        let mut functions: Vec<(KeyType, ShardingFunction)> = Vec::new();
        for table in &db.sharded_tables {
            let key_type = KeyType::from(table.key_type);
            if !functions.iter().any(|(t, _)| *t == key_type) {
                functions.push((key_type, ShardingFunction::for_table(db, key_type)?));
            }
            let name = last_part(&table.table);
            sharded.entry(name.clone()).or_insert(ShardedTable {
                name,
                column: table.column.to_ascii_lowercase(),
                key_type,
            });
        }
        Ok(ShardSchema {
            database: db.name.clone(),
            shards: db.shards.len(),
            sharded,
            replicated: db.replicated_tables.iter().map(|t| last_part(t)).collect(),
            functions,
        })
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The database's name, as clients connect to it.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The sharded table named `name` (last part, any case).
    pub(crate) fn sharded(&self, name: &str) -> Option<&ShardedTable> {
        self.sharded.get(&name.to_lowercase())
    }

    /// Whether `name` (last part, any case) is a replicated table.
    pub(crate) fn is_replicated(&self, name: &str) -> bool {
        self.replicated.contains(&name.to_lowercase())
    }

    /// The sharding function for keys of `key_type`.
    pub(crate) fn function(&self, key_type: KeyType) -> Result<&ShardingFunction, ShardingError> {
        self.functions
            .iter()
            .find(|(t, _)| *t == key_type)
            .map(|(_, function)| function)
            .ok_or_else(|| {
                ShardingError::InvalidMapping(format!("no sharding function for {key_type} keys"))
            })
    }
}

/// The last dot-separated part of a configured table name, lowercased.
fn last_part(name: &str) -> String {
    name.rsplit('.')
        .next()
        .unwrap_or(name)
        .trim()
        .to_lowercase()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A database with `shards` shards: `users(id bigint)`, `orders(user_id bigint)`,
    /// `events(tenant text)`, `devices(id uuid)` sharded, `countries` and
    /// `public.plans` replicated.
    pub(crate) fn schema(shards: usize) -> ShardSchema {
        ShardSchema::new(&database(shards, "")).unwrap()
    }

    pub(crate) fn database(shards: usize, settings: &str) -> DatabaseConfig {
        database_with(
            shards,
            settings,
            "{ table = \"users\", column = \"id\" },\
             { table = \"public.orders\", column = \"user_id\" },\
             { table = \"events\", column = \"tenant\", type = \"text\" },\
             { table = \"devices\", column = \"id\", type = \"uuid\" },\
             { table = \"counters\", column = \"id\", type = \"int\" }",
        )
    }

    /// A database with `shards` shards, `settings` and these `sharded_tables`.
    pub(crate) fn database_with(shards: usize, settings: &str, tables: &str) -> DatabaseConfig {
        let mut text = format!(
            "[[users]]\nname = \"app\"\npassword = \"secret\"\n\
             [[databases]]\nname = \"app\"\n{settings}\n\
             replicated_tables = [\"countries\", \"public.plans\"]\n\
             sharded_tables = [{tables}]\n"
        );
        for shard in 0..shards {
            text.push_str(&format!("[[databases.shards]]\nprimary = \"db{shard}\"\n"));
        }
        pgshard_config::parse(&text, "pgshard.toml")
            .unwrap_or_else(|errors| panic!("{errors}"))
            .databases
            .remove(0)
    }

    #[test]
    fn tables_by_last_name_any_case() {
        let schema = schema(2);
        assert_eq!(schema.shards(), 2);
        assert_eq!(schema.database(), "app");
        assert_eq!(schema.sharded("ORDERS").unwrap().column, "user_id");
        assert_eq!(schema.sharded("users").unwrap().key_type, KeyType::Int8);
        assert!(schema.sharded("countries").is_none());
        assert!(schema.is_replicated("Plans"));
        assert!(!schema.is_replicated("users"));
        let users = schema.sharded("users").unwrap();
        assert!(users.colocated_with(schema.sharded("counters").unwrap()));
        assert!(!users.colocated_with(schema.sharded("events").unwrap()));
        assert!(schema.function(KeyType::Text).is_ok());
    }
}
