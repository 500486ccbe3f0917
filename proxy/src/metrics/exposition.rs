//! The metrics in Prometheus' text format: clients, server pools, and every node as the
//! monitor last saw it.

use std::fmt::Write as _;

use pgshard_failover::ShardTopology;

use crate::context::ProxyContext;

/// The body of `GET /metrics`.
pub fn render(ctx: &ProxyContext) -> String {
    let mut out = Exposition::default();
    let admissions = &ctx.admissions;
    out.family("pgshard_clients", "gauge", "Clients logged in now.");
    out.sample("pgshard_clients", &[], admissions.clients() as u64);
    out.family(
        "pgshard_logins_in_progress",
        "gauge",
        "Connections logging in now.",
    );
    out.sample(
        "pgshard_logins_in_progress",
        &[],
        admissions.logins() as u64,
    );
    out.family(
        "pgshard_connections_refused_total",
        "counter",
        "Connections refused at once because max_logins_in_progress were logging in.",
    );
    out.sample(
        "pgshard_connections_refused_total",
        &[],
        admissions.refused(),
    );

    let pools = ctx.pools.states();
    type PoolValue = fn(&bb8::State) -> u64;
    let pool_families: [(&str, &str, &str, PoolValue); 6] = [
        (
            "pgshard_pool_connections",
            "gauge",
            "Server connections open in the pool.",
            |s| u64::from(s.connections),
        ),
        (
            "pgshard_pool_idle_connections",
            "gauge",
            "Server connections idle in the pool.",
            |s| u64::from(s.idle_connections),
        ),
        (
            "pgshard_pool_checkouts_total",
            "counter",
            "Server connections handed to sessions.",
            |s| s.statistics.get_direct + s.statistics.get_waited,
        ),
        (
            "pgshard_pool_checkouts_waited_total",
            "counter",
            "Checkouts that had to wait for a connection.",
            |s| s.statistics.get_waited,
        ),
        (
            "pgshard_pool_checkout_timeouts_total",
            "counter",
            "Checkouts that gave up waiting.",
            |s| s.statistics.get_timed_out,
        ),
        (
            "pgshard_pool_connections_created_total",
            "counter",
            "Server connections opened.",
            |s| s.statistics.connections_created,
        ),
    ];
    for (name, kind, help, value) in pool_families {
        out.family(name, kind, help);
        for (target, state) in &pools {
            let labels = [
                ("server", target.addr.as_str()),
                ("user", target.pool_user.as_str()),
                ("database", target.database.as_str()),
            ];
            out.sample(name, &labels, value(state));
        }
    }

    let mut names: Vec<&String> = ctx.databases.keys().collect();
    names.sort();
    type NodeValue = fn(&ShardTopology, usize) -> Option<u64>;
    let node_families: [(&str, &str, NodeValue); 4] = [
        (
            "pgshard_node_up",
            "Whether the node answered its last health check.",
            |t, n| Some(u64::from(t.nodes[n].reachable)),
        ),
        (
            "pgshard_node_primary",
            "Whether writes go to the node.",
            |t, n| Some(u64::from(t.primary == Some(n))),
        ),
        (
            "pgshard_node_fenced",
            "Whether the node is an old primary kept from traffic.",
            |t, n| Some(u64::from(t.nodes[n].fenced)),
        ),
        (
            "pgshard_node_lag_bytes",
            "Replay lag behind the primary's last known position.",
            |t, n| (t.primary != Some(n)).then(|| t.lag_bytes(n)).flatten(),
        ),
    ];
    for (name, help, value) in node_families {
        out.family(name, "gauge", help);
        for db_name in &names {
            let Some(db) = ctx.databases.get(*db_name) else {
                continue;
            };
            for (s, shard) in db.shards.iter().enumerate() {
                let topology = shard.topology.load();
                let shard_label = s.to_string();
                for (n, node) in topology.nodes.iter().enumerate() {
                    let labels = [
                        ("database", db_name.as_str()),
                        ("shard", shard_label.as_str()),
                        ("address", node.addr.as_str()),
                    ];
                    if let Some(value) = value(&topology, n) {
                        out.sample(name, &labels, value);
                    }
                }
            }
        }
    }
    out.text
}

/// Prometheus text, written family by family.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the text format writes it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_and_escaped_labels() {
        let mut out = Exposition::default();
        out.family("m", "gauge", "A metric.");
        out.sample("m", &[("a", "x\"y\\z\nw"), ("b", "2")], 7);
        out.sample("m", &[], 1);
        assert_eq!(
            out.text,
            "# HELP m A metric.\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\nw\",b=\"2\"} 7\nm 1\n"
        );
    }
}
