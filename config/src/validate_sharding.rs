//! Semantic checks of one database's sharding settings: table names, the choice of
//! sharding function and the range and list mappings it needs.
//!
//! A mistake here would put rows on the wrong shard, which is hard to undo once data
//! is written, so everything that can be checked without a server is checked here.

use crate::shard_value::ShardValue;
use crate::validate::Problems;
use crate::{parse_uuid, DatabaseConfig, ShardKeyType, ShardingFunctionKind};
use std::collections::HashMap;

/// More points per shard only cost memory and start-up time without spreading rows
/// noticeably better.
const MAX_RING_VIRTUAL_NODES: u32 = 65_536;

/// Checks `database`, whose key path is `prefix` (e.g. `databases[0]`).
pub(crate) fn sharding(database: &DatabaseConfig, prefix: &str, problems: &mut Problems) {
    let key = |field: &str| format!("{prefix}.{field}");
    if !(1..=MAX_RING_VIRTUAL_NODES).contains(&database.ring_virtual_nodes) {
        problems.add(
            key("ring_virtual_nodes"),
            format!("must be between 1 and {MAX_RING_VIRTUAL_NODES}"),
        );
    }
    tables(database, prefix, problems);
    mappings_match_function(database, prefix, problems);
    match database.sharding_function {
        ShardingFunctionKind::Range => ranges(database, prefix, problems),
        ShardingFunctionKind::List => lists(database, prefix, problems),
        ShardingFunctionKind::Hash | ShardingFunctionKind::Ring => {}
    }
}

/// Table and column names, and that no table is listed twice or both sharded and
/// replicated: the data plane could not tell which rule applies.
fn tables(database: &DatabaseConfig, prefix: &str, problems: &mut Problems) {
    let mut sharded: HashMap<String, String> = HashMap::new();
    for (t, table) in database.sharded_tables.iter().enumerate() {
        let key = format!("{prefix}.sharded_tables[{t}]");
        if let Some(name) = table_name(&table.table, &format!("{key}.table"), problems) {
            match sharded.get(&name) {
                Some(first) => problems.add(
                    format!("{key}.table"),
                    format!("table {:?} is already listed at {first}", table.table),
                ),
                None => {
                    sharded.insert(name, key.clone());
                }
            }
        }
        if !is_identifier(&table.column) {
            problems.add(
                format!("{key}.column"),
                format!(
                    "{:?} is not a column name: expected an unquoted SQL identifier",
                    table.column
                ),
            );
        }
    }
    let mut replicated: HashMap<String, String> = HashMap::new();
    for (t, table) in database.replicated_tables.iter().enumerate() {
        let key = format!("{prefix}.replicated_tables[{t}]");
        let Some(name) = table_name(table, &key, problems) else {
            continue;
        };
        if let Some(sharded_at) = sharded.get(&name) {
            problems.add(
                key,
                format!("table {table:?} is also sharded at {sharded_at}; a table is either sharded or replicated"),
            );
        } else if let Some(first) = replicated.get(&name) {
            problems.add(key, format!("table {table:?} is already listed at {first}"));
        } else {
            replicated.insert(name, key);
        }
    }
}

/// The name as PostgreSQL resolves an unquoted `name` or `schema.name`, lowercased;
/// `None`, with a problem added, if it is not one.
fn table_name(table: &str, key: &str, problems: &mut Problems) -> Option<String> {
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|part| is_identifier(part)) {
        Some(table.to_ascii_lowercase())
    } else {
        problems.add(
            key,
            format!("{table:?} is not a table name: expected name or schema.name, unquoted"),
        );
        None
    }
}

/// An unquoted SQL identifier: a letter or `_`, then letters, digits, `_` or `$`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// `range` and `list` need their mapping; any other function leaves a mapping unused,
/// which is most likely a mistake in the function's name.
fn mappings_match_function(database: &DatabaseConfig, prefix: &str, problems: &mut Problems) {
    let function = database.sharding_function;
    for (mapping, present, needed_by) in [
        (
            "shard_ranges",
            !database.shard_ranges.is_empty(),
            ShardingFunctionKind::Range,
        ),
        (
            "shard_lists",
            !database.shard_lists.is_empty(),
            ShardingFunctionKind::List,
        ),
    ] {
        if function == needed_by && !present {
            problems.add(
                format!("{prefix}.sharding_function"),
                format!(
                    "\"{}\" needs at least one [[databases.{mapping}]] entry",
                    function.name()
                ),
            );
        } else if function != needed_by && present {
            problems.add(
                format!("{prefix}.{mapping}"),
                format!(
                    "only used with sharding_function = \"{}\"; this database uses \"{}\"",
                    needed_by.name(),
                    function.name()
                ),
            );
        }
    }
}

fn ranges(database: &DatabaseConfig, prefix: &str, problems: &mut Problems) {
    let mut kinds = KindCheck::default();
    // Ranges that are well-formed on their own, for the overlap check.
    let mut checked: Vec<(usize, Option<&ShardValue>, Option<&ShardValue>)> = Vec::new();
    for (r, range) in database.shard_ranges.iter().enumerate() {
        let key = format!("{prefix}.shard_ranges[{r}]");
        shard_exists(database, range.shard, &format!("{key}.shard"), problems);
        let from_ok = range
            .from
            .as_ref()
            .is_none_or(|from| kinds.check(from, format!("{key}.from"), problems));
        let to_ok = range
            .to
            .as_ref()
            .is_none_or(|to| kinds.check(to, format!("{key}.to"), problems));
        if !(from_ok && to_ok) {
            continue;
        }
        if let (Some(from), Some(to)) = (&range.from, &range.to) {
            if from.compare(to).is_some_and(|order| order.is_ge()) {
                problems.add(
                    format!("{key}.to"),
                    format!(
                        "must be greater than from ({from}); a range includes from and excludes to"
                    ),
                );
                continue;
            }
        }
        if let Some((first, ..)) = checked
            .iter()
            .find(|(_, from, to)| overlap((*from, *to), (range.from.as_ref(), range.to.as_ref())))
        {
            problems.add(
                key,
                format!(
                    "overlaps {prefix}.shard_ranges[{first}]; every key value must have one shard"
                ),
            );
        } else {
            checked.push((r, range.from.as_ref(), range.to.as_ref()));
        }
    }
    key_types_fit(database, prefix, "shard_ranges", kinds.first, problems);
}

/// Whether `[from, to)` ranges share a value; a missing bound is unbounded.
fn overlap(
    a: (Option<&ShardValue>, Option<&ShardValue>),
    b: (Option<&ShardValue>, Option<&ShardValue>),
) -> bool {
    let below = |from: Option<&ShardValue>, to: Option<&ShardValue>| match (from, to) {
        (Some(from), Some(to)) => from.compare(to).is_some_and(|order| order.is_lt()),
        _ => true,
    };
    below(a.0, b.1) && below(b.0, a.1)
}

fn lists(database: &DatabaseConfig, prefix: &str, problems: &mut Problems) {
    let mut kinds = KindCheck::default();
    let mut seen: HashMap<&ShardValue, String> = HashMap::new();
    for (l, list) in database.shard_lists.iter().enumerate() {
        let key = format!("{prefix}.shard_lists[{l}]");
        shard_exists(database, list.shard, &format!("{key}.shard"), problems);
        for (v, value) in list.values.iter().enumerate() {
            let value_key = format!("{key}.values[{v}]");
            if !kinds.check(value, value_key.clone(), problems) {
                continue;
            }
            match seen.get(value) {
                Some(first) => problems.add(
                    value_key,
                    format!("{value} is already listed at {first}; a value belongs to one shard"),
                ),
                None => {
                    seen.insert(value, value_key);
                }
            }
        }
    }
    // A uuid key reads string values as UUIDs.
    if let Some(t) = database
        .sharded_tables
        .iter()
        .position(|table| table.key_type == ShardKeyType::Uuid)
    {
        for (value, key) in &seen {
            if let ShardValue::Text(text) = value {
                if let Err(message) = parse_uuid(text) {
                    problems.add(
                        key.clone(),
                        format!("{message} ({prefix}.sharded_tables[{t}] has a uuid key)"),
                    );
                }
            }
        }
    }
    key_types_fit(database, prefix, "shard_lists", kinds.first, problems);
}

fn shard_exists(database: &DatabaseConfig, shard: usize, key: &str, problems: &mut Problems) {
    let shards = database.shards.len();
    if shard >= shards {
        problems.add(
            key,
            format!(
                "shard {shard} does not exist: the database has {shards} shard(s), numbered from 0"
            ),
        );
    }
}

/// Remembers the kind of the first value of a mapping and flags values of the other
/// kind: a mapping compares all its values with one key column.
#[derive(Default)]
struct KindCheck<'a> {
    first: Option<(&'a ShardValue, String)>,
}

impl<'a> KindCheck<'a> {
    /// True if `value` is of the mapping's kind (or the first value).
    fn check(&mut self, value: &'a ShardValue, key: String, problems: &mut Problems) -> bool {
        match &self.first {
            None => {
                self.first = Some((value, key));
                true
            }
            Some((first, _)) if first.kind() == value.kind() => true,
            Some((first, first_key)) => {
                problems.add(key, format!("must be {} like {first_key}", first.kind()));
                false
            }
        }
    }
}

/// Every sharded table's key type must be comparable with the mapping's values.
fn key_types_fit(
    database: &DatabaseConfig,
    prefix: &str,
    mapping: &str,
    first: Option<(&ShardValue, String)>,
    problems: &mut Problems,
) {
    for (t, table) in database.sharded_tables.iter().enumerate() {
        let key = format!("{prefix}.sharded_tables[{t}].type");
        let name = table.key_type.name();
        if table.key_type == ShardKeyType::Uuid && mapping == "shard_ranges" {
            problems.add(
                key,
                format!("\"{name}\" keys cannot be sharded by range; use \"hash\", \"ring\" or \"list\""),
            );
            continue;
        }
        let Some((value, value_key)) = &first else {
            continue;
        };
        let fits = match value {
            ShardValue::Int(_) => table.key_type.is_integer(),
            ShardValue::Text(_) => !table.key_type.is_integer(),
        };
        if !fits {
            problems.add(
                key,
                format!(
                    "\"{name}\" keys cannot be compared with {mapping}, whose values are {}s ({value_key})",
                    match value {
                        ShardValue::Int(_) => "integer",
                        ShardValue::Text(_) => "string",
                    }
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::load::parse;
    use crate::load::tests::{errors, MINIMAL};
    use crate::{ShardKeyType, ShardValue, ShardingFunctionKind};

    /// MINIMAL with a second shard and `settings` added to its database.
    fn with_database(settings: &str) -> Vec<String> {
        errors(&sharded(settings))
    }

    fn sharded(settings: &str) -> String {
        MINIMAL.replace(
            "[[databases.shards]]\n",
            &format!(
                "{settings}\n[[databases.shards]]\nprimary = \"db2:5432\"\n[[databases.shards]]\n"
            ),
        )
    }

    #[test]
    fn defaults_are_hash_without_tables() {
        let config = parse(MINIMAL, "pgshard.toml").unwrap();
        let database = &config.databases[0];
        assert_eq!(database.sharding_function, ShardingFunctionKind::Hash);
        assert_eq!(database.ring_virtual_nodes, 256);
        assert!(database.sharded_tables.is_empty());
        assert!(database.replicated_tables.is_empty());
        assert!(database.shard_ranges.is_empty());
        assert!(database.shard_lists.is_empty());
    }

    #[test]
    fn a_multi_shard_database_with_tables_loads() {
        let text = sharded(
            "sharding_function = \"ring\"\nring_virtual_nodes = 64\n\
             replicated_tables = [\"countries\", \"ref.currencies\"]\n\
             [[databases.sharded_tables]]\ntable = \"orders\"\ncolumn = \"customer_id\"\n\
             [[databases.sharded_tables]]\ntable = \"app.Events\"\ncolumn = \"id\"\ntype = \"uuid\"\n",
        );
        let config = parse(&text, "pgshard.toml").unwrap_or_else(|errors| panic!("{errors}"));
        let database = &config.databases[0];
        assert_eq!(database.shards.len(), 2);
        assert_eq!(database.sharding_function, ShardingFunctionKind::Ring);
        assert_eq!(database.ring_virtual_nodes, 64);
        assert_eq!(database.replicated_tables, ["countries", "ref.currencies"]);
        let tables = &database.sharded_tables;
        assert_eq!(
            (
                tables[0].table.as_str(),
                tables[0].column.as_str(),
                tables[0].key_type
            ),
            ("orders", "customer_id", ShardKeyType::Bigint)
        );
        assert_eq!(tables[1].key_type, ShardKeyType::Uuid);
    }

    #[test]
    fn ranges_and_lists_load() {
        let text = sharded(
            "sharding_function = \"range\"\n\
             shard_ranges = [{ shard = 0, to = 1000 }, { shard = 1, from = 1000, to = 5000 }, { shard = 0, from = 5000 }]\n\
             [[databases.sharded_tables]]\ntable = \"orders\"\ncolumn = \"id\"\ntype = \"int\"\n",
        );
        let config = parse(&text, "pgshard.toml").unwrap_or_else(|errors| panic!("{errors}"));
        let ranges = &config.databases[0].shard_ranges;
        assert_eq!(ranges.len(), 3);
        assert_eq!(
            (ranges[0].from.as_ref(), ranges[0].to.as_ref()),
            (None, Some(&ShardValue::Int(1000)))
        );
        assert_eq!(ranges[2].to, None);

        let text = sharded(
            "sharding_function = \"list\"\n\
             [[databases.shard_lists]]\nshard = 0\nvalues = [\"de\", \"at\", \"ch\"]\n\
             [[databases.shard_lists]]\nshard = 1\nvalues = [\"fr\"]\n\
             [[databases.sharded_tables]]\ntable = \"customers\"\ncolumn = \"country\"\ntype = \"text\"\n",
        );
        let config = parse(&text, "pgshard.toml").unwrap_or_else(|errors| panic!("{errors}"));
        let lists = &config.databases[0].shard_lists;
        assert_eq!(lists[1].shard, 1);
        assert_eq!(lists[0].values[2], ShardValue::Text("ch".into()));
    }

    #[test]
    fn malformed_sharding_values() {
        assert_eq!(
            with_database("sharding_function = \"modulo\""),
            ["pgshard.toml:7:21: databases[0].sharding_function: unknown variant `modulo`, expected one of `hash`, `ring`, `range`, `list`"]
        );
        assert_eq!(
            with_database("[[databases.sharded_tables]]\ntable = \"t\"\ncolumn = \"id\"\ntype = \"numeric\""),
            ["pgshard.toml:10:8: databases[0].sharded_tables[0].type: unknown variant `numeric`, expected one of `smallint`, `int`, `bigint`, `text`, `uuid`"]
        );
        assert_eq!(
            with_database("[[databases.sharded_tables]]\ntable = \"t\""),
            ["pgshard.toml:7:1: databases[0].sharded_tables[0].column: missing field `column`"]
        );
        assert_eq!(
            with_database("[[databases.sharded_tables]]\ntable = \"t\"\ncolumn = \"id\"\nkey = \"x\""),
            ["pgshard.toml:10:1: databases[0].sharded_tables[0].key: unknown field `key`, expected one of `table`, `column`, `type`"]
        );
        assert_eq!(
            with_database("sharding_function = \"range\"\nshard_ranges = [{ shard = 0, from = 1.5 }]"),
            ["pgshard.toml:8:37: databases[0].shard_ranges[0].from: invalid type: floating point `1.5`, expected an integer or a string"]
        );
        assert_eq!(
            with_database("sharding_function = \"list\"\nshard_lists = [{ shard = 0, values = [1, true] }]"),
            ["pgshard.toml:8:42: databases[0].shard_lists[0].values[1]: invalid type: boolean `true`, expected an integer or a string"]
        );
        assert_eq!(
            with_database("sharding_function = \"list\"\nshard_lists = [{ shard = 0, value = [1] }]"),
            ["pgshard.toml:8:29: databases[0].shard_lists[0].value: unknown field `value`, expected `shard` or `values`"]
        );
    }

    #[test]
    fn table_names() {
        let text = "replicated_tables = [\"countries\", \"a.b.c\", \"\", \"my table\"]\n\
                    [[databases.sharded_tables]]\ntable = \"public.\"\ncolumn = \"1id\"\n";
        assert_eq!(
            with_database(text),
            [
                "pgshard.toml:7:35: databases[0].replicated_tables[1]: \"a.b.c\" is not a table name: expected name or schema.name, unquoted",
                "pgshard.toml:7:44: databases[0].replicated_tables[2]: \"\" is not a table name: expected name or schema.name, unquoted",
                "pgshard.toml:7:48: databases[0].replicated_tables[3]: \"my table\" is not a table name: expected name or schema.name, unquoted",
                "pgshard.toml:9:1: databases[0].sharded_tables[0].table: \"public.\" is not a table name: expected name or schema.name, unquoted",
                "pgshard.toml:10:1: databases[0].sharded_tables[0].column: \"1id\" is not a column name: expected an unquoted SQL identifier",
            ]
        );
    }

    #[test]
    fn a_table_listed_twice_or_both_sharded_and_replicated() {
        let text = "replicated_tables = [\"countries\", \"Orders\", \"COUNTRIES\"]\n\
                    [[databases.sharded_tables]]\ntable = \"orders\"\ncolumn = \"id\"\n\
                    [[databases.sharded_tables]]\ntable = \"app.events\"\ncolumn = \"id\"\n\
                    [[databases.sharded_tables]]\ntable = \"ORDERS\"\ncolumn = \"id\"\n";
        assert_eq!(
            with_database(text),
            [
                "pgshard.toml:7:35: databases[0].replicated_tables[1]: table \"Orders\" is also sharded at databases[0].sharded_tables[0]; a table is either sharded or replicated",
                "pgshard.toml:7:45: databases[0].replicated_tables[2]: table \"COUNTRIES\" is already listed at databases[0].replicated_tables[0]",
                "pgshard.toml:15:1: databases[0].sharded_tables[2].table: table \"ORDERS\" is already listed at databases[0].sharded_tables[0]",
            ]
        );
    }

    #[test]
    fn ring_virtual_nodes_bounds() {
        assert_eq!(
            with_database("ring_virtual_nodes = 0"),
            ["pgshard.toml:7:1: databases[0].ring_virtual_nodes: must be between 1 and 65536"]
        );
        assert_eq!(
            with_database("ring_virtual_nodes = 65537"),
            ["pgshard.toml:7:1: databases[0].ring_virtual_nodes: must be between 1 and 65536"]
        );
        assert_eq!(
            with_database("ring_virtual_nodes = 1"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn range_and_list_need_their_mapping_and_only_they_use_one() {
        assert_eq!(
            with_database("sharding_function = \"range\""),
            ["pgshard.toml:7:1: databases[0].sharding_function: \"range\" needs at least one [[databases.shard_ranges]] entry"]
        );
        assert_eq!(
            with_database("sharding_function = \"list\"\nshard_ranges = [{ shard = 0 }]"),
            [
                "pgshard.toml:7:1: databases[0].sharding_function: \"list\" needs at least one [[databases.shard_lists]] entry",
                "pgshard.toml:8:1: databases[0].shard_ranges: only used with sharding_function = \"range\"; this database uses \"list\"",
            ]
        );
        assert_eq!(
            with_database("shard_lists = [{ shard = 0, values = [1] }]"),
            ["pgshard.toml:7:1: databases[0].shard_lists: only used with sharding_function = \"list\"; this database uses \"hash\""]
        );
    }

    #[test]
    fn shard_index_must_exist() {
        assert_eq!(
            with_database("sharding_function = \"range\"\nshard_ranges = [{ shard = 1, to = 0 }, { shard = 2, from = 0 }]"),
            ["pgshard.toml:8:42: databases[0].shard_ranges[1].shard: shard 2 does not exist: the database has 2 shard(s), numbered from 0"]
        );
        assert_eq!(
            with_database("sharding_function = \"list\"\n[[databases.shard_lists]]\nshard = 5\nvalues = [1]"),
            ["pgshard.toml:9:1: databases[0].shard_lists[0].shard: shard 5 does not exist: the database has 2 shard(s), numbered from 0"]
        );
    }

    #[test]
    fn ranges_must_not_overlap() {
        let ranges = |list: &str| {
            with_database(&format!(
                "sharding_function = \"range\"\nshard_ranges = [\n{list}\n]"
            ))
        };
        assert_eq!(
            ranges("{ shard = 0, to = 100 },\n{ shard = 1, from = 100, to = 200 },\n{ shard = 0, from = 200 }"),
            Vec::<String>::new()
        );
        assert_eq!(
            ranges("{ shard = 0, to = 100 },\n{ shard = 1, from = 50, to = 200 },\n{ shard = 0, from = 300 },\n{ shard = 1, from = 250, to = 301 }"),
            [
                "pgshard.toml:10:1: databases[0].shard_ranges[1]: overlaps databases[0].shard_ranges[0]; every key value must have one shard",
                "pgshard.toml:12:1: databases[0].shard_ranges[3]: overlaps databases[0].shard_ranges[2]; every key value must have one shard",
            ]
        );
        assert_eq!(
            ranges("{ shard = 0, from = \"m\" },\n{ shard = 1, to = \"n\" }"),
            ["pgshard.toml:10:1: databases[0].shard_ranges[1]: overlaps databases[0].shard_ranges[0]; every key value must have one shard"]
        );
        assert_eq!(
            ranges("{ shard = 0 },\n{ shard = 1, from = 5, to = 6 }"),
            ["pgshard.toml:10:1: databases[0].shard_ranges[1]: overlaps databases[0].shard_ranges[0]; every key value must have one shard"]
        );
    }

    #[test]
    fn range_bounds_must_be_ordered_and_of_one_kind() {
        let ranges = |list: &str| {
            with_database(&format!(
                "sharding_function = \"range\"\nshard_ranges = [\n{list}\n]"
            ))
        };
        assert_eq!(
            ranges("{ shard = 0, from = 10, to = 10 },\n{ shard = 1, from = \"b\", to = \"a\" }"),
            [
                "pgshard.toml:9:25: databases[0].shard_ranges[0].to: must be greater than from (10); a range includes from and excludes to",
                "pgshard.toml:10:14: databases[0].shard_ranges[1].from: must be an integer like databases[0].shard_ranges[0].from",
                "pgshard.toml:10:26: databases[0].shard_ranges[1].to: must be an integer like databases[0].shard_ranges[0].from",
            ]
        );
    }

    #[test]
    fn range_bounds_must_fit_the_key_types() {
        let text = "sharding_function = \"range\"\nshard_ranges = [{ shard = 0, to = 100 }, { shard = 1, from = 100 }]\n\
                    [[databases.sharded_tables]]\ntable = \"a\"\ncolumn = \"id\"\ntype = \"smallint\"\n\
                    [[databases.sharded_tables]]\ntable = \"b\"\ncolumn = \"name\"\ntype = \"text\"\n\
                    [[databases.sharded_tables]]\ntable = \"c\"\ncolumn = \"id\"\ntype = \"uuid\"\n";
        assert_eq!(
            with_database(text),
            [
                "pgshard.toml:16:1: databases[0].sharded_tables[1].type: \"text\" keys cannot be compared with shard_ranges, whose values are integers (databases[0].shard_ranges[0].to)",
                "pgshard.toml:20:1: databases[0].sharded_tables[2].type: \"uuid\" keys cannot be sharded by range; use \"hash\", \"ring\" or \"list\"",
            ]
        );
    }

    #[test]
    fn list_values_are_unique_of_one_kind_and_fit_the_key_types() {
        let text = "sharding_function = \"list\"\n\
                    [[databases.shard_lists]]\nshard = 0\nvalues = [\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\", \"de\", 3]\n\
                    [[databases.shard_lists]]\nshard = 1\nvalues = [\"fr\", \"de\"]\n\
                    [[databases.sharded_tables]]\ntable = \"a\"\ncolumn = \"id\"\ntype = \"uuid\"\n\
                    [[databases.sharded_tables]]\ntable = \"b\"\ncolumn = \"id\"\n";
        assert_eq!(
            with_database(text),
            [
                "pgshard.toml:10:51: databases[0].shard_lists[0].values[1]: invalid input syntax for type uuid: \"de\" (databases[0].sharded_tables[0] has a uuid key)",
                "pgshard.toml:10:57: databases[0].shard_lists[0].values[2]: must be a string like databases[0].shard_lists[0].values[0]",
                "pgshard.toml:13:11: databases[0].shard_lists[1].values[0]: invalid input syntax for type uuid: \"fr\" (databases[0].sharded_tables[0] has a uuid key)",
                "pgshard.toml:13:17: databases[0].shard_lists[1].values[1]: \"de\" is already listed at databases[0].shard_lists[0].values[1]; a value belongs to one shard",
                "pgshard.toml:18:1: databases[0].sharded_tables[1].type: \"bigint\" keys cannot be compared with shard_lists, whose values are strings (databases[0].shard_lists[0].values[0])",
            ]
        );
    }
}
