//! The metrics in the OpenMetrics text format (prometheus-client): clients, server
//! pools, every node as the monitor last saw it, and each database's traffic with its
//! latency histograms. Values are read from the proxy's state at each scrape.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pgshard_failover::ShardTopology;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::stats::Durations;
use crate::context::ProxyContext;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The body of `GET /metrics`.
pub fn render(ctx: &Arc<ProxyContext>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProxyMetrics(ctx.clone())));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!("metrics: encoding failed: {e}");
    }
    out
}

/// Reads the proxy's state at each scrape.
struct ProxyMetrics(Arc<ProxyContext>);

impl fmt::Debug for ProxyMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProxyMetrics")
    }
}

/// One metric family's samples: label pairs and a value.
type Samples<'a> = Vec<(Vec<(&'static str, &'a str)>, u64)>;

fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: Samples<'_>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    if let [(labels, value)] = samples.as_slice() {
        if labels.is_empty() {
            // Written without a label set at all (`name 1`, not `name{} 1`).
            return value_of(kind, *value, metric);
        }
    }
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels)?;
        value_of(kind, value, sample)?;
    }
    Ok(())
}

fn value_of(kind: MetricType, value: u64, encoder: MetricEncoder) -> fmt::Result {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(encoder),
        _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(encoder),
    }
}

/// A [`Durations`] as a histogram of seconds, by database.
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(&str, &Durations)],
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (database, durations) in samples {
        let labels = [("database", *database)];
        let mut buckets: Vec<(f64, u64)> = durations
            .buckets()
            .into_iter()
            .map(|(upper_us, count)| (upper_us as f64 / 1e6, count))
            .collect();
        // The encoder writes f64::MAX as `+Inf`; every duration is in a bucket before.
        buckets.push((f64::MAX, 0));
        metric
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(
                durations.total_us() as f64 / 1e6,
                durations.count(),
                &buckets,
                None,
            )?;
    }
    Ok(())
}

impl Collector for ProxyMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let ctx = &self.0;
        let admissions = &ctx.admissions;
        let plain = |value: u64| -> Samples<'_> { vec![(Vec::new(), value)] };
        family(
            &mut encoder,
            "pgshard_clients",
            "Clients logged in now.",
            MetricType::Gauge,
            plain(admissions.clients() as u64),
        )?;
        family(
            &mut encoder,
            "pgshard_logins_in_progress",
            "Connections logging in now.",
            MetricType::Gauge,
            plain(admissions.logins() as u64),
        )?;
        family(
            &mut encoder,
            "pgshard_connections_refused",
            "Connections refused at once because max_logins_in_progress were logging in.",
            MetricType::Counter,
            plain(admissions.refused()),
        )?;

        let pools = ctx.pools.states();
        type PoolValue = fn(&bb8::State) -> u64;
        let pool_families: [(&str, MetricType, &str, PoolValue); 6] = [
            (
                "pgshard_pool_connections",
                MetricType::Gauge,
                "Server connections open in the pool.",
                |s| u64::from(s.connections),
            ),
            (
                "pgshard_pool_idle_connections",
                MetricType::Gauge,
                "Server connections idle in the pool.",
                |s| u64::from(s.idle_connections),
            ),
            (
                "pgshard_pool_checkouts",
                MetricType::Counter,
                "Server connections handed to sessions.",
                |s| s.statistics.get_direct + s.statistics.get_waited,
            ),
            (
                "pgshard_pool_checkouts_waited",
                MetricType::Counter,
                "Checkouts that had to wait for a connection.",
                |s| s.statistics.get_waited,
            ),
            (
                "pgshard_pool_checkout_timeouts",
                MetricType::Counter,
                "Checkouts that gave up waiting.",
                |s| s.statistics.get_timed_out,
            ),
            (
                "pgshard_pool_connections_created",
                MetricType::Counter,
                "Server connections opened.",
                |s| s.statistics.connections_created,
            ),
        ];
        for (name, kind, help, value) in pool_families {
            let samples = pools
                .iter()
                .map(|(target, state)| {
                    let labels = vec![
                        ("server", target.addr.as_str()),
                        ("user", target.pool_user.as_str()),
                        ("database", target.database.as_str()),
                    ];
                    (labels, value(state))
                })
                .collect();
            family(&mut encoder, name, help, kind, samples)?;
        }

        let mut names: Vec<&String> = ctx.databases.keys().collect();
        names.sort();
        let databases: Vec<(&str, &crate::routing::DatabaseRoute)> = names
            .iter()
            .filter_map(|name| Some((name.as_str(), ctx.databases.get(*name)?.as_ref())))
            .collect();
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
        let topologies: Vec<(&str, String, Arc<ShardTopology>)> = databases
            .iter()
            .flat_map(|(name, db)| {
                db.shards
                    .iter()
                    .enumerate()
                    .map(move |(s, shard)| (*name, s.to_string(), shard.topology.load_full()))
            })
            .collect();
        for (name, help, value) in node_families {
            let mut samples: Samples<'_> = Vec::new();
            for (database, shard, topology) in &topologies {
                for (n, node) in topology.nodes.iter().enumerate() {
                    if let Some(value) = value(topology, n) {
                        let labels = vec![
                            ("database", *database),
                            ("shard", shard.as_str()),
                            ("address", node.addr.as_str()),
                        ];
                        samples.push((labels, value));
                    }
                }
            }
            family(&mut encoder, name, help, MetricType::Gauge, samples)?;
        }

        type Traffic = fn(&crate::metrics::stats::DatabaseStats) -> u64;
        let traffic: [(&str, &str, Traffic); 4] = [
            (
                "pgshard_transactions",
                "Transactions, and statements run outside one.",
                |s| s.transactions.count(),
            ),
            (
                "pgshard_queries",
                "Simple queries, extended-protocol batches (to Sync) and function calls.",
                |s| s.queries.count(),
            ),
            ("pgshard_received_bytes", "Bytes clients sent.", |s| {
                s.received.load(Ordering::Relaxed)
            }),
            ("pgshard_sent_bytes", "Bytes sent to clients.", |s| {
                s.sent.load(Ordering::Relaxed)
            }),
        ];
        for (name, help, value) in traffic {
            let samples = databases
                .iter()
                .map(|(database, db)| (vec![("database", *database)], value(&db.stats)))
                .collect();
            family(&mut encoder, name, help, MetricType::Counter, samples)?;
        }
        type Timed = fn(&crate::metrics::stats::DatabaseStats) -> &Durations;
        let timed: [(&str, &str, Timed); 3] = [
            (
                "pgshard_transaction_duration_seconds",
                "How long transactions (and statements outside one) took, from the client's first message to its return to idle.",
                |s| &s.transactions,
            ),
            (
                "pgshard_query_duration_seconds",
                "How long queries took, from the client's message to the ReadyForQuery it got.",
                |s| &s.queries,
            ),
            (
                "pgshard_pool_wait_seconds",
                "How long sessions waited for a server connection.",
                |s| &s.waits,
            ),
        ];
        for (name, help, durations) in timed {
            let samples: Vec<(&str, &Durations)> = databases
                .iter()
                .map(|(database, db)| (*database, durations(&db.stats)))
                .collect();
            histogram(&mut encoder, name, help, &samples)?;
        }
        Ok(())
    }
}
