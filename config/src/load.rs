//! Reading, parsing and validating a configuration file, with every error
//! placed at its file, line, column and key.

use crate::error::{ConfigError, ConfigErrors};
use crate::span::{line_column, offset_of, path_at};
use crate::validate::validate;
use crate::Config;
use std::path::Path;
use toml_edit::ImDocument;

/// Reads `path` and [`parse`]s it; messages name the file as `path` was given.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &origin),
        Err(error) => Err(ConfigErrors(vec![ConfigError {
            file: origin,
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read: {error}"),
        }])),
    }
}

/// Parses and validates configuration text; `origin` is the file name used
/// in messages.
///
/// A syntax or type error (wrong type, unknown key, missing key, malformed
/// value) stops parsing and is the only error returned; otherwise every
/// semantic problem is returned, in file order.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let error_at = |offset: usize, key: String, message: &str| {
        let (line, column) = line_column(text, offset);
        ConfigError {
            file: origin.to_owned(),
            line,
            column,
            key,
            // toml's messages may span lines; keep one error per line.
            message: message.lines().collect::<Vec<_>>().join("; "),
        }
    };
    let doc = ImDocument::parse(text.to_owned()).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start);
        ConfigErrors(vec![error_at(offset, String::new(), error.message())])
    })?;
    let config: Config = toml_edit::de::from_document(doc.clone()).map_err(|error| {
        let span = error.span();
        let offset = span.as_ref().map_or(0, |span| span.start);
        let mut key = span
            .map(|span| path_at(&doc, span.start))
            .unwrap_or_default();
        // A missing key has no span of its own: the error points at its table.
        if let Some(field) = missing_field(error.message()) {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(field);
        }
        ConfigErrors(vec![error_at(offset, key, error.message())])
    })?;
    let mut errors: Vec<ConfigError> = validate(&config)
        .into_iter()
        .map(|problem| {
            // Keys absent from the file (e.g. no [[users]] at all) point at its start.
            let offset = offset_of(&doc, &problem.key).unwrap_or(0);
            error_at(offset, problem.key, &problem.message)
        })
        .collect();
    if errors.is_empty() {
        Ok(config)
    } else {
        errors.sort_by_key(|error| (error.line, error.column));
        Err(ConfigErrors(errors))
    }
}

/// The field name in serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        AuthMethod, LagLimit, LoadBalance, PasswordKind, PoolMode, PrimaryReads, ShardKeyType,
        ShardValue, ShardingFunctionKind,
    };
    use std::net::SocketAddr;
    use std::time::Duration;

    /// The smallest valid file: one user, one database, one shard.
    pub(crate) const MINIMAL: &str = "\
[[users]]
name = \"app\"
password = \"secret\"

[[databases]]
name = \"app\"
[[databases.shards]]
primary = \"db1:5432\"
";

    /// Every error for `text`, as displayed.
    pub(crate) fn errors(text: &str) -> Vec<String> {
        match parse(text, "pgshard.toml") {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults() {
        let config = parse(MINIMAL, "pgshard.toml").unwrap();
        let proxy = &config.proxy;
        assert_eq!(proxy.listen, "0.0.0.0:6432".parse::<SocketAddr>().unwrap());
        assert_eq!(proxy.pool_mode, PoolMode::Transaction);
        assert_eq!(proxy.pool_size, 20);
        assert_eq!(proxy.min_pool_size, 0);
        assert_eq!(proxy.max_client_connections, 10_000);
        assert_eq!(proxy.max_message_size, 64 * 1024 * 1024);
        assert_eq!(proxy.max_logins_in_progress, None);
        assert_eq!(proxy.logins_in_progress_limit(), 1000);
        assert_eq!(proxy.max_login_message_size, 10_000);
        assert_eq!(proxy.client_login_timeout, Duration::from_secs(15));
        assert_eq!(proxy.auth_method, AuthMethod::ScramSha256);
        assert_eq!(proxy.connect_timeout, Duration::from_secs(2));
        assert_eq!(proxy.checkout_timeout, Duration::from_secs(5));
        assert_eq!(proxy.server_idle_timeout, Duration::from_secs(600));
        assert_eq!(proxy.server_lifetime, Duration::from_secs(3600));
        assert_eq!(proxy.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(proxy.prepared_statements_limit, 500);
        assert_eq!(proxy.log_level, None);
        assert!(proxy.admin_users.is_empty());

        let user = &config.users[0];
        assert_eq!(
            (user.server_user(), user.server_password()),
            ("app", Some("secret"))
        );
        assert_eq!((user.pool_size, user.pool_mode), (None, None));
        let database = &config.databases[0];
        assert_eq!(database.server_database(), "app");
        assert_eq!(database.shards[0].primary.to_string(), "db1:5432");
        assert!(database.shards[0].replicas.is_empty());
        let routing = &database.routing;
        assert_eq!(routing.load_balance, LoadBalance::RoundRobin);
        assert_eq!(routing.primary_reads, PrimaryReads::Fallback);
        assert_eq!(routing.max_replica_lag, LagLimit::Bytes(16 * 1024 * 1024));
        assert!(routing.read_your_writes);
        assert_eq!(routing.replica_ban_time, Duration::from_secs(30));
        assert_eq!(routing.health_check_interval, Duration::from_secs(1));
        assert!(routing.write_functions.is_empty());
        assert_eq!(routing.parse_cache_size, 10_000);
    }

    #[test]
    fn the_example_file_is_valid_and_sets_everything() {
        let config = parse(
            include_str!("../pgshard.example.toml"),
            "pgshard.example.toml",
        )
        .unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(config.proxy.pool_mode, PoolMode::Transaction);
        assert_eq!(config.proxy.log_level.as_deref(), Some("info"));
        assert_eq!(config.users.len(), 3);
        assert_eq!(config.users[1].password_kind(), PasswordKind::Scram);
        assert_eq!(
            config.users[1].server_password(),
            Some("reporting-server-secret")
        );
        assert_eq!(config.users[2].password_kind(), PasswordKind::Plain);
        assert_eq!(config.users[2].pool_mode, Some(PoolMode::Session));
        assert_eq!(config.databases.len(), 3);
        assert_eq!(config.databases[0].shards.len(), 2);
        assert_eq!(config.databases[0].shards[1].replicas.len(), 2);
        assert_eq!(config.databases[0].shards[1].replicas[0].weight, 2);
        assert_eq!(config.databases[0].shards[1].replicas[1].weight, 1);
        let routing = &config.databases[0].routing;
        assert_eq!(routing.load_balance, LoadBalance::RoundRobin);
        assert_eq!(routing.max_replica_lag, LagLimit::Bytes(16 * 1024 * 1024));
        assert_eq!(routing.write_functions, ["app.record_visit"]);
        let routing = &config.databases[1].routing;
        assert_eq!(routing.load_balance, LoadBalance::LeastConnections);
        assert_eq!(routing.primary_reads, PrimaryReads::Never);
        assert_eq!(
            routing.max_replica_lag,
            LagLimit::Time(Duration::from_secs(10))
        );
        assert!(!routing.read_your_writes);
        assert_eq!(config.databases[1].server_database(), "analytics_prod");
        assert_eq!(
            config.databases[1].shards[0].primary.to_string(),
            "[fd00::10]:5432"
        );
        let app = &config.databases[0];
        assert_eq!(app.sharding_function, ShardingFunctionKind::Hash);
        assert_eq!(app.replicated_tables, ["countries", "app.currencies"]);
        assert_eq!(app.sharded_tables[1].key_type, ShardKeyType::Uuid);
        let tenants = &config.databases[2];
        assert_eq!(tenants.sharding_function, ShardingFunctionKind::Range);
        assert_eq!(tenants.sharded_tables[0].key_type, ShardKeyType::Bigint);
        assert_eq!(tenants.shard_ranges[1].from, Some(ShardValue::Int(100_000)));
    }

    #[test]
    fn logins_in_progress_follow_the_client_limit_unless_set() {
        let limit = |settings: &str| {
            parse(&format!("[proxy]\n{settings}\n{MINIMAL}"), "pgshard.toml")
                .unwrap()
                .proxy
                .logins_in_progress_limit()
        };
        assert_eq!(limit("max_client_connections = 5000"), 500);
        assert_eq!(limit("max_client_connections = 100"), 64);
        assert_eq!(
            limit("max_client_connections = 100\nmax_logins_in_progress = 8"),
            8
        );
    }

    #[test]
    fn values_in_every_notation() {
        let text = format!(
            "[proxy]\nlisten = \"[::1]:7000\"\npool_mode = \"session\"\nauth_method = \"md5\"\n\
             max_message_size = 4096\nconnect_timeout = \"250ms\"\nserver_lifetime = \"1d\"\n{MINIMAL}"
        );
        let proxy = parse(&text, "pgshard.toml").unwrap().proxy;
        assert_eq!(proxy.listen, "[::1]:7000".parse::<SocketAddr>().unwrap());
        assert_eq!(proxy.pool_mode, PoolMode::Session);
        assert_eq!(proxy.auth_method, AuthMethod::Md5);
        assert_eq!(proxy.max_message_size, 4096);
        assert_eq!(proxy.connect_timeout, Duration::from_millis(250));
        assert_eq!(proxy.server_lifetime, Duration::from_secs(86_400));
    }

    #[test]
    fn inline_tables_work_too() {
        let text = "users = [{ name = \"app\", password = \"secret\" }]\n\
                    databases = [{ name = \"app\", shards = [{ primary = \"db1\", replicas = [\"db2:6000\"] }] }]\n";
        let config = parse(text, "pgshard.toml").unwrap();
        assert_eq!(config.databases[0].shards[0].replicas[0].address.port, 6000);
        assert_eq!(config.databases[0].shards[0].primary.port, 5432);
    }

    #[test]
    fn replicas_as_addresses_or_tables() {
        let text = format!(
            "{MINIMAL}replicas = [\"db2\", {{ address = \"db3:6000\", weight = 3 }}, {{ address = \"db4\" }}]\n\
             [[databases.shards]]\nprimary = \"db5\"\n\
             [[databases.shards.replicas]]\naddress = \"db6\"\nweight = 2\n"
        );
        let shards = &parse(&text, "pgshard.toml").unwrap().databases[0].shards;
        let replicas: Vec<(String, u32)> = shards
            .iter()
            .flat_map(|shard| &shard.replicas)
            .map(|replica| (replica.address.to_string(), replica.weight))
            .collect();
        assert_eq!(
            replicas,
            [
                ("db2:5432".into(), 1),
                ("db3:6000".into(), 3),
                ("db4:5432".into(), 1),
                ("db6:5432".into(), 2)
            ]
        );
    }

    #[test]
    fn routing_in_every_notation() {
        let text = format!(
            "{MINIMAL}[databases.routing]\nload_balance = \"random\"\nprimary_reads = \"always\"\n\
             max_replica_lag = 1048576\nread_your_writes = false\nreplica_ban_time = \"2m\"\n\
             health_check_interval = \"250ms\"\nwrite_functions = [\"Bump\", \"app.audit\"]\nparse_cache_size = 0\n"
        );
        let routing = parse(&text, "pgshard.toml").unwrap().databases[0]
            .routing
            .clone();
        assert_eq!(routing.load_balance, LoadBalance::Random);
        assert_eq!(routing.primary_reads, PrimaryReads::Always);
        assert_eq!(routing.max_replica_lag, LagLimit::Bytes(1 << 20));
        assert!(!routing.read_your_writes);
        assert_eq!(routing.replica_ban_time, Duration::from_secs(120));
        assert_eq!(routing.health_check_interval, Duration::from_millis(250));
        assert_eq!(routing.write_functions, ["Bump", "app.audit"]);
        assert_eq!(routing.parse_cache_size, 0);
        let text = text.replace("1048576", "\"500ms\"");
        assert_eq!(
            parse(&text, "pgshard.toml").unwrap().databases[0]
                .routing
                .max_replica_lag,
            LagLimit::Time(Duration::from_millis(500))
        );
    }

    #[test]
    fn unreadable_file() {
        let errors = load(Path::new("/nonexistent/pgshard.toml")).unwrap_err().0;
        assert_eq!(errors.len(), 1);
        let error = &errors[0];
        assert_eq!(
            (error.file.as_str(), error.line, error.key.as_str()),
            ("/nonexistent/pgshard.toml", 0, "")
        );
        assert!(
            error
                .message
                .starts_with("cannot read: No such file or directory"),
            "{}",
            error.message
        );
    }

    #[test]
    fn load_reads_the_file() {
        let path =
            std::env::temp_dir().join(format!("pgshard-config-test-{}.toml", std::process::id()));
        std::fs::write(&path, "[proxy]\npool_size = 0\n").unwrap();
        let result = load(&path);
        std::fs::remove_file(&path).unwrap();
        let errors = result.unwrap_err().0;
        assert_eq!(errors[0].file, path.display().to_string());
        assert_eq!((errors[0].line, errors[0].key.as_str()), (1, "users"));
    }

    #[test]
    fn syntax_error() {
        assert_eq!(
            errors("[proxy]\npool_size = = 3\n"),
            ["pgshard.toml:2:13: invalid string; expected `\"`, `'`"]
        );
        assert_eq!(
            errors("[proxy\n"),
            ["pgshard.toml:1:7: invalid table header; expected `.`, `]`"]
        );
        assert_eq!(
            errors("[proxy]\npool_size = 1\npool_size = 2\n"),
            ["pgshard.toml:3:1: duplicate key `pool_size` in table `proxy`"]
        );
    }

    #[test]
    fn type_error() {
        assert_eq!(
            errors(&format!("{MINIMAL}[proxy]\npool_size = \"ten\"\n")),
            ["pgshard.toml:10:13: proxy.pool_size: invalid type: string \"ten\", expected u32"]
        );
        assert_eq!(
            errors(&format!("[proxy]\npool_size = -1\n{MINIMAL}")),
            ["pgshard.toml:2:13: proxy.pool_size: invalid value: integer `-1`, expected u32"]
        );
        assert_eq!(
            errors(&format!("[proxy]\nconnect_timeout = 5\n{MINIMAL}")),
            ["pgshard.toml:2:19: proxy.connect_timeout: invalid type: integer `5`, expected a duration with a unit, such as \"5s\""]
        );
        assert_eq!(
            errors("users = 1\n"),
            ["pgshard.toml:1:9: users: invalid type: integer `1`, expected a sequence"]
        );
    }

    #[test]
    fn malformed_values() {
        assert_eq!(
            errors(&format!("[proxy]\nshutdown_timeout = \"30 seconds\"\n{MINIMAL}")),
            ["pgshard.toml:2:20: proxy.shutdown_timeout: invalid unit \"seconds\" in duration \"30 seconds\": expected ms, s, m, h or d"]
        );
        assert_eq!(
            errors(&format!("[proxy]\nmax_message_size = \"64mb\"\n{MINIMAL}")),
            ["pgshard.toml:2:20: proxy.max_message_size: invalid unit \"mb\" in size \"64mb\": expected B, kB, MB, GB or TB (case-sensitive, as in PostgreSQL)"]
        );
        assert_eq!(
            errors(&format!("[proxy]\npool_mode = \"statement\"\n{MINIMAL}")),
            ["pgshard.toml:2:13: proxy.pool_mode: unknown variant `statement`, expected `transaction` or `session`"]
        );
        assert_eq!(
            errors(&format!("[proxy]\nauth_method = \"trust\"\n{MINIMAL}")),
            ["pgshard.toml:2:15: proxy.auth_method: unknown variant `trust`, expected one of `scram-sha-256`, `md5`, `cleartext`"]
        );
    }

    #[test]
    fn malformed_routing_values() {
        let routing = |setting: &str| errors(&format!("{MINIMAL}[databases.routing]\n{setting}\n"));
        assert_eq!(
            routing("load_balance = \"fastest\""),
            ["pgshard.toml:10:16: databases[0].routing.load_balance: unknown variant `fastest`, expected one of `round_robin`, `random`, `least_connections`"]
        );
        assert_eq!(
            routing("primary_reads = \"sometimes\""),
            ["pgshard.toml:10:17: databases[0].routing.primary_reads: unknown variant `sometimes`, expected one of `fallback`, `never`, `always`"]
        );
        assert_eq!(
            routing("max_replica_lag = \"16mb\""),
            ["pgshard.toml:10:19: databases[0].routing.max_replica_lag: invalid replica lag \"16mb\": expected a size such as \"16MB\" (B, kB, MB, GB or TB) or a duration such as \"10s\" (ms, s, m, h or d)"]
        );
        assert_eq!(
            routing("max_replica_lag = 1.5"),
            ["pgshard.toml:10:19: databases[0].routing.max_replica_lag: invalid type: floating point `1.5`, expected a size such as \"16MB\" or a duration such as \"10s\""]
        );
        assert_eq!(
            routing("write_functions = \"f\""),
            ["pgshard.toml:10:19: databases[0].routing.write_functions: invalid type: string \"f\", expected a sequence"]
        );
        assert_eq!(
            routing("read_your_writes = \"yes\""),
            ["pgshard.toml:10:20: databases[0].routing.read_your_writes: invalid type: string \"yes\", expected a boolean"]
        );
    }

    #[test]
    fn malformed_replicas() {
        let replicas = |list: &str| errors(&format!("{MINIMAL}replicas = [\"db2\", {list}]\n"));
        assert_eq!(
            replicas("{ address = \"db3:\", weight = 2 }"),
            ["pgshard.toml:9:32: databases[0].shards[0].replicas[1].address: invalid node address \"db3:\": the port must be a number from 1 to 65535; expected \"host:port\", e.g. \"db1:5432\" or \"[::1]:5432\""]
        );
        assert_eq!(
            replicas("{ address = \"db3\", wieght = 2 }"),
            ["pgshard.toml:9:39: databases[0].shards[0].replicas[1].wieght: unknown field `wieght`, expected one of `address`, `weight`, `priority`, `no_promote`"]
        );
        assert_eq!(
            replicas("{ weight = 2 }"),
            ["pgshard.toml:9:20: databases[0].shards[0].replicas[1].address: missing field `address`"]
        );
        assert_eq!(
            replicas("{ address = \"db3\", weight = -1 }"),
            ["pgshard.toml:9:48: databases[0].shards[0].replicas[1].weight: invalid value: integer `-1`, expected u32"]
        );
        assert_eq!(
            replicas("5"),
            ["pgshard.toml:9:20: databases[0].shards[0].replicas[1]: invalid type: integer `5`, expected a node address such as \"db2:5432\" or a table such as { address = \"db2:5432\", weight = 2 }"]
        );
    }

    #[test]
    fn listen_not_an_address() {
        assert_eq!(
            errors(&format!("[proxy]\nlisten = \"localhost:6432\"\n{MINIMAL}")),
            ["pgshard.toml:2:10: proxy.listen: invalid listen address \"localhost:6432\": expected an IP address and a port, e.g. \"0.0.0.0:6432\" or \"[::]:6432\""]
        );
    }

    #[test]
    fn bad_node_address() {
        let text = MINIMAL.replace("db1:5432", "db1:99999");
        assert_eq!(
            errors(&text),
            ["pgshard.toml:8:11: databases[0].shards[0].primary: invalid node address \"db1:99999\": the port must be a number from 1 to 65535; expected \"host:port\", e.g. \"db1:5432\" or \"[::1]:5432\""]
        );
        let text = format!("{MINIMAL}replicas = [\"db2:5432\", \"db3:\"]\n");
        assert_eq!(
            errors(&text),
            ["pgshard.toml:9:25: databases[0].shards[0].replicas[1]: invalid node address \"db3:\": the port must be a number from 1 to 65535; expected \"host:port\", e.g. \"db1:5432\" or \"[::1]:5432\""]
        );
    }

    #[test]
    fn unknown_keys() {
        assert_eq!(
            errors(&format!("[proxy]\npool_size = 5\npool_sise = 6\n{MINIMAL}")),
            ["pgshard.toml:3:1: proxy.pool_sise: unknown field `pool_sise`, expected one of `listen`, `pool_mode`, `pool_size`, `min_pool_size`, `max_client_connections`, `max_logins_in_progress`, `max_message_size`, `max_message_memory`, `message_memory_wait`, `max_login_message_size`, `client_login_timeout`, `auth_method`, `connect_timeout`, `checkout_timeout`, `server_idle_timeout`, `server_lifetime`, `shutdown_timeout`, `prepared_statements_limit`, `max_prepared_statement_memory`, `log_level`, `admin_users`, `tls_certificate`, `tls_private_key`, `tls_mode`, `server_tls_mode`, `server_tls_ca`, `metrics_listen`"]
        );
        assert_eq!(
            errors(&format!("{MINIMAL}replica = [\"db2\"]\n")),
            ["pgshard.toml:9:1: databases[0].shards[0].replica: unknown field `replica`, expected one of `primary`, `replicas`, `server_database`"]
        );
        assert_eq!(
            errors(&format!("[pool]\nsize = 1\n{MINIMAL}")),
            ["pgshard.toml:1:2: pool: unknown field `pool`, expected one of `proxy`, `users`, `databases`"]
        );
        assert_eq!(
            errors(&format!("{MINIMAL}[databases.routing]\nlb = 1\n")),
            ["pgshard.toml:10:1: databases[0].routing.lb: unknown field `lb`, expected one of `load_balance`, `primary_reads`, `max_replica_lag`, `read_your_writes`, `replica_ban_time`, `health_check_interval`, `write_functions`, `parse_cache_size`"]
        );
        assert_eq!(
            errors(&MINIMAL.replace("password =", "passwd =")),
            ["pgshard.toml:3:1: users[0].passwd: unknown field `passwd`, expected one of `name`, `password`, `server_user`, `server_password`, `pool_size`, `pool_mode`"]
        );
    }

    #[test]
    fn missing_keys() {
        assert_eq!(
            errors(&MINIMAL.replace("password = \"secret\"\n", "")),
            ["pgshard.toml:1:1: users[0].password: missing field `password`"]
        );
        assert_eq!(
            errors(&MINIMAL.replace("primary = \"db1:5432\"\n", "replicas = []\n")),
            ["pgshard.toml:7:1: databases[0].shards[0].primary: missing field `primary`"]
        );
    }

    #[test]
    fn tls_settings() {
        let config = parse(
            &format!(
                "[proxy]\ntls_certificate = \"cert.pem\"\ntls_private_key = \"key.pem\"\n\
                 tls_mode = \"require\"\n{MINIMAL}"
            ),
            "pgshard.toml",
        )
        .unwrap();
        assert_eq!(config.proxy.tls_mode, crate::TlsMode::Require);
        assert_eq!(
            config.proxy.tls_certificate.as_deref(),
            Some(std::path::Path::new("cert.pem"))
        );
        assert_eq!(
            errors(&format!("[proxy]\ntls_certificate = \"cert.pem\"\n{MINIMAL}")),
            ["pgshard.toml:2:1: proxy.tls_certificate: needs proxy.tls_private_key too (the certificate's key)"]
        );
        let config = parse(
            &format!(
                "[proxy]\nserver_tls_mode = \"verify-full\"\nserver_tls_ca = \"ca.pem\"\n{MINIMAL}"
            ),
            "pgshard.toml",
        )
        .unwrap();
        assert_eq!(
            config.proxy.server_tls_mode,
            crate::ServerTlsMode::VerifyFull
        );
        assert_eq!(
            errors(&format!("[proxy]\nserver_tls_mode = \"verify-full\"\n{MINIMAL}")),
            ["pgshard.toml:2:1: proxy.server_tls_mode: \"verify-full\" needs proxy.server_tls_ca (the CA certificates to check servers against)"]
        );
        assert_eq!(
            errors(&format!("[proxy]\ntls_mode = \"require\"\n{MINIMAL}")),
            ["pgshard.toml:2:1: proxy.tls_mode: \"require\" needs proxy.tls_certificate and proxy.tls_private_key"]
        );
    }

    /// The keys a section accepts, as serde lists them for an unknown one.
    fn accepted_keys(file: &str) -> Vec<String> {
        let errors = errors(file);
        let Some(list) = errors
            .iter()
            .find_map(|e| e.split_once("expected one of ").map(|(_, l)| l.to_string()))
        else {
            panic!("no list of keys for:\n{file}\n{errors:?}")
        };
        list.split(", ")
            .map(|k| k.trim_matches(|c| c == '`' || c == ' ').to_string())
            .collect()
    }

    /// Every key of every section is shown in the example file and documented in
    /// docs/configuration.md, so neither falls behind the structs.
    #[test]
    fn every_key_is_in_the_example_and_the_configuration_reference() {
        let example = include_str!("../pgshard.example.toml");
        let readme = include_str!("../../docs/configuration.md");
        let bogus = "no_such_key = 1";
        let database = "[[databases]]\nname = \"app\"\n";
        let shard = "[[databases.shards]]\nprimary = \"db1:5432\"\n";
        let user = "[[users]]\nname = \"app\"\npassword = \"secret\"\n";
        let sections = [
            format!("[proxy]\n{bogus}\n{MINIMAL}"),
            format!("[[users]]\nname = \"app\"\npassword = \"x\"\n{bogus}\n{database}{shard}"),
            format!("{user}{database}{bogus}\n{shard}"),
            format!("{user}{database}[databases.routing]\n{bogus}\n{shard}"),
            format!("{user}{database}[databases.failover]\n{bogus}\n{shard}"),
            format!("{user}{database}[[databases.shards]]\nprimary = \"db1:5432\"\n{bogus}\n"),
            format!(
                "{user}{database}[[databases.sharded_tables]]\ntable = \"t\"\ncolumn = \"id\"\n{bogus}\n{shard}{shard}"
            ),
        ];
        let mut missing = Vec::new();
        for file in &sections {
            for key in accepted_keys(file) {
                // A key is a setting, or a subsection ([databases.routing],
                // [[databases.shards]]).
                let section = |text: &str| {
                    text.contains(&format!("[databases.{key}]"))
                        || text.contains(&format!("{key}[]"))
                };
                let in_example = section(example)
                    || example.lines().any(|line| {
                        let line = line.trim_start_matches(['#', ' ']);
                        line.starts_with(&format!("{key} ")) || line.starts_with(&format!("{key}="))
                    });
                if !in_example {
                    missing.push(format!("{key} (pgshard.example.toml)"));
                }
                let documented = section(readme)
                    || [format!("`{key}`"), format!("`{key} "), format!("].{key}`")]
                        .iter()
                        .any(|form| readme.contains(form.as_str()));
                if !documented {
                    missing.push(format!("{key} (docs/configuration.md)"));
                }
            }
        }
        assert!(missing.is_empty(), "keys not shown: {missing:?}");
    }
}
