//! Semantic checks on a deserialized [`Config`]: everything that is well-typed
//! TOML but still wrong. All problems are collected, not just the first.

use crate::address::NodeAddress;
use crate::failover::FailoverConfig;
use crate::lag::LagLimit;
use crate::password::{check_verifier, PasswordKind};
use crate::proxy::{AuthMethod, ProxyConfig, ADMIN_DATABASE};
use crate::routing::{PrimaryReads, RoutingConfig};
use crate::{Config, DatabaseConfig, UserConfig};
use std::collections::HashMap;

/// A problem at a key path; [`crate::load`] adds the file position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub key: String,
    pub message: String,
}

pub(crate) fn validate(config: &Config) -> Vec<Problem> {
    let mut problems = Problems::default();
    proxy(&config.proxy, &mut problems);
    users(&config.users, &config.proxy, &mut problems);
    databases(&config.databases, &mut problems);
    admin_users(config, &mut problems);
    problems.0
}

#[derive(Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    fn at_least_one(&mut self, key: &str, value: u64) {
        if value < 1 {
            self.add(key, "must be at least 1");
        }
    }

    fn not_empty(&mut self, key: &str, value: Option<&str>) {
        if value.is_some_and(|value| value.trim().is_empty()) {
            self.add(key, "must not be empty");
        }
    }
}

const MIN_MESSAGE_SIZE: u64 = 1 << 10;
const MAX_MESSAGE_SIZE: u64 = 1 << 30;
const MAX_LOGIN_MESSAGE_SIZE: u64 = 1 << 20;

fn proxy(proxy: &ProxyConfig, problems: &mut Problems) {
    problems.at_least_one("proxy.pool_size", proxy.pool_size.into());
    if proxy.min_pool_size > proxy.pool_size {
        problems.add(
            "proxy.min_pool_size",
            format!("must not exceed proxy.pool_size ({})", proxy.pool_size),
        );
    }
    problems.at_least_one(
        "proxy.max_client_connections",
        proxy.max_client_connections as u64,
    );
    if proxy.max_logins_in_progress == Some(0) {
        problems.add("proxy.max_logins_in_progress", "must be at least 1");
    }
    if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&proxy.max_message_size) {
        problems.add("proxy.max_message_size", "must be between 1kB and 1GB");
    }
    let size_valid = (MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&proxy.max_message_size);
    if size_valid && proxy.max_message_memory < proxy.max_message_size {
        problems.add(
            "proxy.max_message_memory",
            format!(
                "must be at least proxy.max_message_size ({} bytes), or a message of that size could never be read",
                proxy.max_message_size
            ),
        );
    }
    if !(MIN_MESSAGE_SIZE..=MAX_LOGIN_MESSAGE_SIZE).contains(&proxy.max_login_message_size) {
        problems.add(
            "proxy.max_login_message_size",
            "must be between 1kB and 1MB",
        );
    }
    if proxy.max_prepared_statement_memory < MIN_MESSAGE_SIZE {
        problems.add(
            "proxy.max_prepared_statement_memory",
            "must be at least 1kB",
        );
    }
    // Zero would fail every connection attempt or close every connection at once.
    for (key, value) in [
        ("proxy.connect_timeout", proxy.connect_timeout),
        ("proxy.client_login_timeout", proxy.client_login_timeout),
        ("proxy.message_memory_wait", proxy.message_memory_wait),
        ("proxy.checkout_timeout", proxy.checkout_timeout),
        ("proxy.server_idle_timeout", proxy.server_idle_timeout),
        ("proxy.server_lifetime", proxy.server_lifetime),
    ] {
        if value.is_zero() {
            problems.add(key, "must be greater than 0");
        }
    }
    problems.at_least_one(
        "proxy.prepared_statements_limit",
        proxy.prepared_statements_limit as u64,
    );
    problems.not_empty("proxy.log_level", proxy.log_level.as_deref());
    match (&proxy.tls_certificate, &proxy.tls_private_key) {
        (Some(_), None) => problems.add(
            "proxy.tls_certificate",
            "needs proxy.tls_private_key too (the certificate's key)",
        ),
        (None, Some(_)) => problems.add(
            "proxy.tls_private_key",
            "needs proxy.tls_certificate too (the certificate it belongs to)",
        ),
        (None, None) if proxy.tls_mode == crate::proxy::TlsMode::Require => problems.add(
            "proxy.tls_mode",
            "\"require\" needs proxy.tls_certificate and proxy.tls_private_key",
        ),
        _ => {}
    }
    if proxy.server_tls_mode == crate::proxy::ServerTlsMode::VerifyFull
        && proxy.server_tls_ca.is_none()
    {
        problems.add(
            "proxy.server_tls_mode",
            "\"verify-full\" needs proxy.server_tls_ca (the CA certificates to check servers against)",
        );
    }
}

fn users(users: &[UserConfig], proxy: &ProxyConfig, problems: &mut Problems) {
    if users.is_empty() {
        problems.add("users", "at least one [[users]] entry is required");
    }
    let mut seen = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let key = |field: &str| format!("users[{i}].{field}");
        problems.not_empty(&key("name"), Some(&user.name));
        let first = *seen.entry(user.name.as_str()).or_insert(i);
        if first != i {
            problems.add(
                key("name"),
                format!("user {:?} is already defined at users[{first}]", user.name),
            );
        }
        password(user, proxy.auth_method, &key("password"), problems);
        problems.not_empty(&key("server_user"), user.server_user.as_deref());
        problems.not_empty(&key("server_password"), user.server_password.as_deref());
        if let Some(size) = user.pool_size {
            if size < 1 {
                problems.add(key("pool_size"), "must be at least 1");
            } else if size < proxy.min_pool_size {
                problems.add(
                    key("pool_size"),
                    format!(
                        "must not be below proxy.min_pool_size ({})",
                        proxy.min_pool_size
                    ),
                );
            }
        }
    }
}

/// Admin users must be configured users, and the admin console's database name must be
/// free while anyone may use it.
fn admin_users(config: &Config, problems: &mut Problems) {
    for (i, name) in config.proxy.admin_users.iter().enumerate() {
        if !config.users.iter().any(|u| &u.name == name) {
            problems.add(
                format!("proxy.admin_users[{i}]"),
                format!("user {name:?} is not defined in [[users]]"),
            );
        }
    }
    if config.proxy.admin_users.is_empty() {
        return;
    }
    if let Some(i) = config
        .databases
        .iter()
        .position(|d| d.name == ADMIN_DATABASE)
    {
        problems.add(
            format!("databases[{i}].name"),
            format!(
                "{ADMIN_DATABASE:?} is the admin console's database while proxy.admin_users is set"
            ),
        );
    }
}

fn password(user: &UserConfig, method: AuthMethod, key: &str, problems: &mut Problems) {
    if user.password.is_empty() {
        problems.add(key, "must not be empty");
        return;
    }
    if let Err(message) = check_verifier(&user.password) {
        problems.add(key, message);
        return;
    }
    // A verifier can only check the exchange it was made for; cleartext works with any.
    let unusable = match (user.password_kind(), method) {
        (PasswordKind::Md5, AuthMethod::ScramSha256) => Some(("an md5", "scram-sha-256")),
        (PasswordKind::Scram, AuthMethod::Md5) => Some(("a SCRAM-SHA-256", "md5")),
        _ => None,
    };
    if let Some((verifier, method)) = unusable {
        problems.add(
            key,
            format!("{verifier} verifier cannot check proxy.auth_method = \"{method}\"; use plaintext or a matching verifier"),
        );
    }
}

fn databases(databases: &[DatabaseConfig], problems: &mut Problems) {
    if databases.is_empty() {
        problems.add("databases", "at least one [[databases]] entry is required");
    }
    let mut seen = HashMap::new();
    for (i, database) in databases.iter().enumerate() {
        let key = |field: &str| format!("databases[{i}].{field}");
        problems.not_empty(&key("name"), Some(&database.name));
        let first = *seen.entry(database.name.as_str()).or_insert(i);
        if first != i {
            problems.add(
                key("name"),
                format!(
                    "database {:?} is already defined at databases[{first}]",
                    database.name
                ),
            );
        }
        problems.not_empty(&key("server_database"), database.server_database.as_deref());
        if database.shards.is_empty() {
            problems.add(key("shards"), "at least one shard is required");
        }
        // The same server twice in one database would mix two shards' data
        // or count one server as its own replica.
        let mut nodes: HashMap<(NodeAddress, &str), String> = HashMap::new();
        for (s, shard) in database.shards.iter().enumerate() {
            let shard_key = key(&format!("shards[{s}]"));
            problems.not_empty(
                &format!("{shard_key}.server_database"),
                shard.server_database.as_deref(),
            );
            let shard_database = database.shard_database(s);
            for (r, replica) in shard.replicas.iter().enumerate() {
                if replica.weight < 1 {
                    problems.add(
                        format!("{shard_key}.replicas[{r}].weight"),
                        "must be at least 1",
                    );
                }
            }
            let replicas = shard
                .replicas
                .iter()
                .enumerate()
                .map(|(r, replica)| (format!("{shard_key}.replicas[{r}]"), &replica.address));
            for (node_key, node) in
                std::iter::once((format!("{shard_key}.primary"), &shard.primary)).chain(replicas)
            {
                let normalized = NodeAddress {
                    host: node.host.to_ascii_lowercase(),
                    port: node.port,
                };
                // Two shards may share a server when they are different databases on it.
                match nodes.get(&(normalized.clone(), shard_database)) {
                    Some(first) => {
                        problems.add(node_key, format!("node {node} is already used at {first}"))
                    }
                    None => {
                        nodes.insert((normalized, shard_database), node_key);
                    }
                }
            }
        }
        routing(&database.routing, &key("routing"), problems);
        failover(&database.failover, &key("failover"), problems);
        for (field, value) in [
            (
                "two_phase_commit_timeout",
                database.two_phase_commit_timeout,
            ),
            (
                "two_phase_recovery_interval",
                database.two_phase_recovery_interval,
            ),
        ] {
            if value.is_zero() {
                problems.add(key(field), "must be greater than 0");
            }
        }
        crate::validate_sharding::sharding(database, &format!("databases[{i}]"), problems);
        // Reads would fail on every shard without a replica.
        if database.routing.primary_reads == PrimaryReads::Never {
            if let Some(s) = database.shards.iter().position(|s| s.replicas.is_empty()) {
                problems.add(
                    key("routing.primary_reads"),
                    format!("\"never\" needs a replica in every shard; shards[{s}] has none"),
                );
            }
        }
    }
}

fn failover(failover: &FailoverConfig, key: &str, problems: &mut Problems) {
    let key = |field: &str| format!("{key}.{field}");
    if failover.failure_threshold == 0 {
        problems.add(key("failure_threshold"), "must be at least 1");
    }
    for (field, value) in [
        ("check_timeout", failover.check_timeout),
        ("hold_timeout", failover.hold_timeout),
        ("rejoin_timeout", failover.rejoin_timeout),
    ] {
        if value.is_zero() {
            problems.add(key(field), "must be greater than 0");
        }
    }
    // Promoting and repointing need a login that may run pg_promote and ALTER SYSTEM.
    if failover.enabled && failover.user.is_none() {
        problems.add(
            key("user"),
            "failover needs a superuser login for control connections (user and password)",
        );
    }
    problems.not_empty(&key("replication_user"), Some(&failover.replication_user));
    if let Some(command) = &failover.rejoin_command {
        if command.trim().is_empty() {
            problems.add(key("rejoin_command"), "must not be empty");
        } else if let Err(e) = crate::placeholders::check_rejoin_template(command) {
            problems.add(key("rejoin_command"), e.to_string());
        }
    }
}

fn routing(routing: &RoutingConfig, key: &str, problems: &mut Problems) {
    let key = |field: &str| format!("{key}.{field}");
    // A zero lag limit would leave no replica usable while the primary writes.
    if matches!(routing.max_replica_lag, LagLimit::Bytes(0))
        || routing.max_replica_lag == LagLimit::Time(std::time::Duration::ZERO)
    {
        problems.add(key("max_replica_lag"), "must be greater than 0");
    }
    // Zero would retry a failed replica at once, or poll in a busy loop.
    for (field, value) in [
        ("replica_ban_time", routing.replica_ban_time),
        ("health_check_interval", routing.health_check_interval),
    ] {
        if value.is_zero() {
            problems.add(key(field), "must be greater than 0");
        }
    }
    for (i, name) in routing.write_functions.iter().enumerate() {
        problems.not_empty(&key(&format!("write_functions[{i}]")), Some(name));
    }
}

#[cfg(test)]
mod tests {
    use crate::load::tests::{errors, MINIMAL};

    const SCRAM: &str = "SCRAM-SHA-256$4096:cGdzaGFyZC10ZXN0LXNhbHQ=$n4uUp6L1SUU8Di+P+AvSalhFAD2am6y0XgVAkO/NK7s=:PvU+oV8C48R5LifpYD472uHW2nzQz7CyS2i0YPg93DU=";
    const MD5: &str = "md56a422f785c9e20873908ce25d1736ae2";

    fn with_proxy(settings: &str) -> Vec<String> {
        errors(&format!("[proxy]\n{settings}\n{MINIMAL}"))
    }

    #[test]
    fn minimal_file_is_valid() {
        assert_eq!(errors(MINIMAL), Vec::<String>::new());
    }

    #[test]
    fn pool_sizes() {
        assert_eq!(
            with_proxy("pool_size = 0"),
            ["pgshard.toml:2:1: proxy.pool_size: must be at least 1",]
        );
        assert_eq!(
            with_proxy("pool_size = 5\nmin_pool_size = 6"),
            ["pgshard.toml:3:1: proxy.min_pool_size: must not exceed proxy.pool_size (5)"]
        );
        assert_eq!(
            with_proxy("max_client_connections = 0\nprepared_statements_limit = 0"),
            [
                "pgshard.toml:2:1: proxy.max_client_connections: must be at least 1",
                "pgshard.toml:3:1: proxy.prepared_statements_limit: must be at least 1",
            ]
        );
    }

    #[test]
    fn max_message_size_range() {
        assert_eq!(
            errors(&format!("[proxy]\nmax_message_size = \"1kB\"\n{MINIMAL}")),
            Vec::<String>::new()
        );
        assert_eq!(
            errors(&format!(
                "[proxy]\nmax_message_size = \"1GB\"\nmax_message_memory = \"1GB\"\n{MINIMAL}"
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            with_proxy("max_message_size = \"64MB\"\nmax_message_memory = \"32MB\""),
            ["pgshard.toml:3:1: proxy.max_message_memory: must be at least proxy.max_message_size (67108864 bytes), or a message of that size could never be read"]
        );
        assert_eq!(
            with_proxy("message_memory_wait = \"0s\""),
            ["pgshard.toml:2:1: proxy.message_memory_wait: must be greater than 0"]
        );
        for size in ["\"1023B\"", "\"2GB\"", "0"] {
            assert_eq!(
                with_proxy(&format!("max_message_size = {size}")),
                ["pgshard.toml:2:1: proxy.max_message_size: must be between 1kB and 1GB"]
            );
        }
        assert_eq!(
            with_proxy("max_prepared_statement_memory = \"1000B\""),
            ["pgshard.toml:2:1: proxy.max_prepared_statement_memory: must be at least 1kB"]
        );
    }

    #[test]
    fn login_limits() {
        assert_eq!(
            with_proxy("max_logins_in_progress = 0\nmax_login_message_size = \"1023B\""),
            [
                "pgshard.toml:2:1: proxy.max_logins_in_progress: must be at least 1",
                "pgshard.toml:3:1: proxy.max_login_message_size: must be between 1kB and 1MB",
            ]
        );
        assert_eq!(
            with_proxy("max_login_message_size = \"2MB\"\nclient_login_timeout = \"0s\""),
            [
                "pgshard.toml:2:1: proxy.max_login_message_size: must be between 1kB and 1MB",
                "pgshard.toml:3:1: proxy.client_login_timeout: must be greater than 0",
            ]
        );
        assert_eq!(
            errors(&format!(
                "[proxy]\nmax_logins_in_progress = 1\nmax_login_message_size = \"1MB\"\n\
                 client_login_timeout = \"100ms\"\n{MINIMAL}"
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn zero_timeouts() {
        assert_eq!(
            with_proxy("connect_timeout = \"0s\"\ncheckout_timeout = \"0ms\"\nserver_idle_timeout = \"0m\"\nserver_lifetime = \"0h\"\nshutdown_timeout = \"0s\""),
            [
                "pgshard.toml:2:1: proxy.connect_timeout: must be greater than 0",
                "pgshard.toml:3:1: proxy.checkout_timeout: must be greater than 0",
                "pgshard.toml:4:1: proxy.server_idle_timeout: must be greater than 0",
                "pgshard.toml:5:1: proxy.server_lifetime: must be greater than 0",
            ]
        );
    }

    #[test]
    fn empty_log_level() {
        assert_eq!(
            with_proxy("log_level = \" \""),
            ["pgshard.toml:2:1: proxy.log_level: must not be empty"]
        );
    }

    #[test]
    fn users_and_databases_are_required() {
        assert_eq!(
            errors("[proxy]\npool_size = 3\n"),
            [
                "pgshard.toml:1:1: users: at least one [[users]] entry is required",
                "pgshard.toml:1:1: databases: at least one [[databases]] entry is required",
            ]
        );
        assert_eq!(
            errors("\n\nusers = []\ndatabases = []\n"),
            [
                "pgshard.toml:3:1: users: at least one [[users]] entry is required",
                "pgshard.toml:4:1: databases: at least one [[databases]] entry is required",
            ]
        );
    }

    #[test]
    fn duplicate_and_empty_user_names() {
        let text = format!(
            "{MINIMAL}\n[[users]]\nname = \"app\"\npassword = \"x\"\n\n[[users]]\nname = \"\"\npassword = \"x\"\n"
        );
        assert_eq!(
            errors(&text),
            [
                "pgshard.toml:11:1: users[1].name: user \"app\" is already defined at users[0]",
                "pgshard.toml:15:1: users[2].name: must not be empty",
            ]
        );
        let third = format!("{text}\n[[users]]\nname = \"app\"\npassword = \"x\"\n");
        assert_eq!(
            errors(&third)[2],
            "pgshard.toml:19:1: users[3].name: user \"app\" is already defined at users[0]"
        );
    }

    #[test]
    fn user_fields() {
        let text = MINIMAL.replace(
            "password = \"secret\"\n",
            "password = \"\"\nserver_user = \"\"\nserver_password = \"\"\npool_size = 0\n",
        );
        assert_eq!(
            errors(&text),
            [
                "pgshard.toml:3:1: users[0].password: must not be empty",
                "pgshard.toml:4:1: users[0].server_user: must not be empty",
                "pgshard.toml:5:1: users[0].server_password: must not be empty",
                "pgshard.toml:6:1: users[0].pool_size: must be at least 1",
            ]
        );
        let text = format!(
            "[proxy]\nmin_pool_size = 5\n{}",
            MINIMAL.replace(
                "password = \"secret\"\n",
                "password = \"secret\"\npool_size = 4\n"
            )
        );
        assert_eq!(
            errors(&text),
            ["pgshard.toml:6:1: users[0].pool_size: must not be below proxy.min_pool_size (5)"]
        );
    }

    #[test]
    fn malformed_verifiers() {
        let text = MINIMAL.replace("\"secret\"", "\"md56A422F785C9E20873908CE25D1736AE2\"");
        assert_eq!(
            errors(&text),
            ["pgshard.toml:3:1: users[0].password: malformed md5 verifier: expected \"md5\" followed by 32 lowercase hex digits"]
        );
        let text = MINIMAL.replace("\"secret\"", "\"SCRAM-SHA-256$4096:c2FsdA==\"");
        assert_eq!(
            errors(&text),
            ["pgshard.toml:3:1: users[0].password: malformed SCRAM-SHA-256 verifier: missing '$' before the keys; expected SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>"]
        );
    }

    #[test]
    fn verifier_must_match_auth_method() {
        let md5_user = MINIMAL.replace("secret", MD5);
        assert_eq!(
            errors(&md5_user),
            ["pgshard.toml:3:1: users[0].password: an md5 verifier cannot check proxy.auth_method = \"scram-sha-256\"; use plaintext or a matching verifier"]
        );
        assert_eq!(
            errors(&format!("[proxy]\nauth_method = \"md5\"\n{md5_user}")),
            Vec::<String>::new()
        );
        let scram_user = MINIMAL.replace("secret", SCRAM);
        assert_eq!(errors(&scram_user), Vec::<String>::new());
        assert_eq!(
            errors(&format!("[proxy]\nauth_method = \"md5\"\n{scram_user}")),
            ["pgshard.toml:5:1: users[0].password: a SCRAM-SHA-256 verifier cannot check proxy.auth_method = \"md5\"; use plaintext or a matching verifier"]
        );
        assert_eq!(
            errors(&format!(
                "[proxy]\nauth_method = \"cleartext\"\n{scram_user}"
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn database_names() {
        let text = format!(
            "{MINIMAL}\n[[databases]]\nname = \"app\"\nserver_database = \"\"\n[[databases.shards]]\nprimary = \"db2\"\n\n[[databases]]\nname = \" \"\n[[databases.shards]]\nprimary = \"db3\"\n"
        );
        assert_eq!(
            errors(&text),
            [
                "pgshard.toml:11:1: databases[1].name: database \"app\" is already defined at databases[0]",
                "pgshard.toml:12:1: databases[1].server_database: must not be empty",
                "pgshard.toml:17:1: databases[2].name: must not be empty",
            ]
        );
    }

    #[test]
    fn admin_users_must_exist_and_own_the_pgshard_database() {
        assert_eq!(with_proxy("admin_users = []"), Vec::<String>::new());
        assert_eq!(
            with_proxy("admin_users = [\"app\", \"root\"]"),
            ["pgshard.toml:2:23: proxy.admin_users[1]: user \"root\" is not defined in [[users]]"]
        );
        let text = format!(
            "[proxy]\nadmin_users = [\"app\"]\n{MINIMAL}\n[[databases]]\nname = \"pgshard\"\n[[databases.shards]]\nprimary = \"db2\"\n"
        );
        assert_eq!(
            errors(&text),
            ["pgshard.toml:13:1: databases[1].name: \"pgshard\" is the admin console's database while proxy.admin_users is set"]
        );
    }

    #[test]
    fn database_without_shards() {
        let text = format!("{MINIMAL}\n[[databases]]\nname = \"other\"\n");
        assert_eq!(
            errors(&text),
            ["pgshard.toml:10:1: databases[1].shards: at least one shard is required"]
        );
        let text = format!("{MINIMAL}\n[[databases]]\nname = \"other\"\nshards = []\n");
        assert_eq!(
            errors(&text),
            ["pgshard.toml:12:1: databases[1].shards: at least one shard is required"]
        );
    }

    #[test]
    fn node_used_twice_in_a_database() {
        let text = format!(
            "{MINIMAL}replicas = [\"db2\"]\n[[databases.shards]]\nprimary = \"DB1:5432\"\nreplicas = [\"db3\", \"db2:5432\"]\n"
        );
        assert_eq!(
            errors(&text),
            [
                "pgshard.toml:11:1: databases[0].shards[1].primary: node DB1:5432 is already used at databases[0].shards[0].primary",
                "pgshard.toml:12:20: databases[0].shards[1].replicas[1]: node db2:5432 is already used at databases[0].shards[0].replicas[0]",
            ]
        );
        // Another database may use the same servers.
        let text = format!(
            "{MINIMAL}\n[[databases]]\nname = \"other\"\n[[databases.shards]]\nprimary = \"db1\"\n"
        );
        assert_eq!(errors(&text), Vec::<String>::new());
        // So may another shard, as another database on the server.
        let text = format!(
            "{MINIMAL}server_database = \"shard_0\"\n[[databases.shards]]\nprimary = \"db1\"\nserver_database = \"shard_1\"\n"
        );
        assert_eq!(errors(&text), Vec::<String>::new());
        let text = format!(
            "{MINIMAL}server_database = \"app\"\n[[databases.shards]]\nprimary = \"db1\"\nserver_database = \"\"\n"
        );
        assert_eq!(
            errors(&text),
            ["pgshard.toml:12:1: databases[0].shards[1].server_database: must not be empty",]
        );
    }

    #[test]
    fn replica_weight_zero() {
        let text = format!("{MINIMAL}replicas = [\"db2\", {{ address = \"db3\", weight = 0 }}]\n");
        assert_eq!(
            errors(&text),
            ["pgshard.toml:9:39: databases[0].shards[0].replicas[1].weight: must be at least 1"]
        );
    }

    #[test]
    fn a_weighted_replica_is_still_a_node() {
        let text = format!("{MINIMAL}replicas = [{{ address = \"DB1\", weight = 2 }}]\n");
        assert_eq!(
            errors(&text),
            ["pgshard.toml:9:13: databases[0].shards[0].replicas[0]: node DB1:5432 is already used at databases[0].shards[0].primary"]
        );
    }

    #[test]
    fn two_phase_commit_settings() {
        let database = |settings: &str| {
            MINIMAL.replacen(
                "name = \"app\"\n[[databases.shards]]",
                &format!("name = \"app\"\n{settings}[[databases.shards]]"),
                1,
            )
        };
        let text = database("two_phase_commit = \"off\"\ntwo_phase_commit_timeout = \"5s\"\n");
        assert_eq!(errors(&text), Vec::<String>::new());
        let text =
            database("two_phase_commit_timeout = \"0s\"\ntwo_phase_recovery_interval = \"0s\"\n");
        assert_eq!(
            errors(&text),
            [
                "pgshard.toml:7:1: databases[0].two_phase_commit_timeout: must be greater than 0",
                "pgshard.toml:8:1: databases[0].two_phase_recovery_interval: must be greater than 0",
            ]
        );
        let found = errors(&database("two_phase_commit = \"always\"\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("databases[0].two_phase_commit"),
            "{found:?}"
        );
    }

    #[test]
    fn routing_zeros_and_empty_names() {
        let text = format!(
            "{MINIMAL}[databases.routing]\nwrite_functions = [\"f\", \" \"]\nmax_replica_lag = 0\n\
             replica_ban_time = \"0s\"\nhealth_check_interval = \"0ms\"\nparse_cache_size = 0\n"
        );
        assert_eq!(
            errors(&text),
            [
                "pgshard.toml:10:25: databases[0].routing.write_functions[1]: must not be empty",
                "pgshard.toml:11:1: databases[0].routing.max_replica_lag: must be greater than 0",
                "pgshard.toml:12:1: databases[0].routing.replica_ban_time: must be greater than 0",
                "pgshard.toml:13:1: databases[0].routing.health_check_interval: must be greater than 0",
            ]
        );
        let text = format!("{MINIMAL}[databases.routing]\nmax_replica_lag = \"0s\"\n");
        assert_eq!(
            errors(&text),
            ["pgshard.toml:10:1: databases[0].routing.max_replica_lag: must be greater than 0"]
        );
    }

    #[test]
    fn failover_needs_a_control_login_and_sane_limits() {
        let text = format!(
            "{MINIMAL}[databases.failover]\nenabled = true\nfailure_threshold = 0\nhold_timeout = \"0s\"\n"
        );
        let errors = errors(&text);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("databases[0].failover.user: failover needs a superuser login"));
        assert!(errors[1].contains("databases[0].failover.failure_threshold: must be at least 1"));
        assert!(errors[2].contains("databases[0].failover.hold_timeout: must be greater than 0"));
        let text = format!(
            "{MINIMAL}replicas = [{{ address = \"db2\", priority = 2, no_promote = true }}]\n\
             [databases.failover]\nenabled = true\nuser = \"postgres\"\npassword = \"pw\"\n"
        );
        assert_eq!(
            super::super::load::tests::errors(&text),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_rejoin_command_uses_known_placeholders_and_a_timeout() {
        let text = format!(
            "{MINIMAL}[databases.failover]\nrejoin_command = \"rejoin %h %x\"\nrejoin_timeout = \"0s\"\n"
        );
        assert_eq!(
            errors(&text),
            [
                "pgshard.toml:10:1: databases[0].failover.rejoin_command: unknown placeholder %x; \
                 use %h %p %H %P %d (%% for a literal %)",
                "pgshard.toml:11:1: databases[0].failover.rejoin_timeout: must be greater than 0",
            ]
        );
        let text =
            format!("{MINIMAL}[databases.failover]\nrejoin_command = \"rejoin %h:%p %H:%P %d\"\n");
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn never_reading_from_the_primary_needs_replicas() {
        let text = format!(
            "{MINIMAL}replicas = [\"db2\"]\n[[databases.shards]]\nprimary = \"db3\"\n\
             [databases.routing]\nprimary_reads = \"never\"\n"
        );
        assert_eq!(
            errors(&text),
            ["pgshard.toml:13:1: databases[0].routing.primary_reads: \"never\" needs a replica in every shard; shards[1] has none"]
        );
        let text = format!(
            "{MINIMAL}replicas = [\"db2\"]\n[databases.routing]\nprimary_reads = \"never\"\n"
        );
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn all_problems_are_reported_in_file_order() {
        let text = format!(
            "[proxy]\npool_size = 0\nlog_level = \"\"\n{}\n[[databases]]\nname = \"app\"\n",
            MINIMAL.replace("\"secret\"", "\"md5nothex-nothex-nothex-nothex-noth\"")
        );
        assert_eq!(
            errors(&text),
            [
                "pgshard.toml:2:1: proxy.pool_size: must be at least 1",
                "pgshard.toml:3:1: proxy.log_level: must not be empty",
                "pgshard.toml:6:1: users[0].password: malformed md5 verifier: expected \"md5\" followed by 32 lowercase hex digits",
                "pgshard.toml:13:1: databases[1].shards: at least one shard is required",
                "pgshard.toml:14:1: databases[1].name: database \"app\" is already defined at databases[0]",
            ]
        );
    }
}
