//! `pgshard dump`: one SQL script of a sharded database that restores through pgshard.
//!
//! pg_dump cannot dump a sharded database through the proxy (see
//! [`crate::frontend::dump_client`]), so this runs it against every shard's primary and
//! merges what it wrote:
//!
//! 1. On each shard a `REPEATABLE READ` snapshot is exported ([`ShardSnapshot`]), one
//!    shard right after the other; every later pg_dump run on that shard reads in it.
//! 2. Each shard's schema (pg_dump's pre-data and post-data sections) must be the same;
//!    shard 0's is written once.
//! 3. Each shard's data section is filtered ([`DataSection`]): sharded tables' rows from
//!    every shard, replicated tables' rows from shard 0 (checked equal on all shards),
//!    and tables the proxy could not place at restore refused when they have rows.
//! 4. Each sequence is set to the value furthest along on any shard: the restore sets
//!    every shard's copy to it (`setval` runs on every shard), so no shard hands out a
//!    value a restored row holds.
//!
//! The script restores with `psql -v ON_ERROR_STOP=1 -f dump.sql` through pgshard:
//! DDL runs on every shard, each `COPY` row goes to the shard of its key.

mod data_section;
mod error;
mod fingerprint;
mod pg_dump;
mod schema;
mod sequence_set;
mod snapshot;
mod source;

use std::collections::BTreeMap;
use std::path::PathBuf;

use pgshard_config::Config;
use pgshard_failover::NodeTls;
use pgshard_router::plan::{Planner, ShardSchema};
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use data_section::{DataSection, Placement};
pub use error::DumpError;
use fingerprint::same_everywhere;
pub use pg_dump::PgDump;
use sequence_set::furthest_values;
pub use sequence_set::SequenceSet;
pub use snapshot::ShardSnapshot;
pub use source::DumpSource;

/// What to dump, and how.
#[derive(Debug, Clone)]
pub struct DumpRequest {
    /// The `[[databases]]` entry; `None` for the only one.
    pub database: Option<String>,
    /// The `[[users]]` entry whose server credentials pg_dump logs in with; `None` for
    /// the first.
    pub user: Option<String>,
    /// The pg_dump program (at least the servers' major version).
    pub pg_dump: PathBuf,
    /// The schema alone, no rows or sequence values.
    pub schema_only: bool,
    /// pg_dump's `--no-owner`: no `ALTER … OWNER TO`.
    pub no_owner: bool,
    /// pg_dump's `--no-privileges`: no `GRANT`/`REVOKE`.
    pub no_privileges: bool,
}

/// What a dump wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpSummary {
    pub shards: usize,
    pub sharded_tables: usize,
    pub replicated_tables: usize,
    /// Rows in the script.
    pub rows: u64,
    pub sequences: usize,
}

/// Bytes of script gathered before they are written out.
const WRITE_CHUNK: usize = 1 << 20;

/// Dumps the database `request` names to `out`; see the module documentation.
pub async fn dump<W: AsyncWrite + Unpin>(
    config: &Config,
    request: &DumpRequest,
    out: &mut W,
) -> Result<DumpSummary, DumpError> {
    let source = DumpSource::new(config, request.database.as_deref(), request.user.as_deref())?;
    let schema = ShardSchema::new(&source.database).map_err(|e| {
        DumpError::Config(format!(
            "database \"{}\": sharding: {e}",
            source.database.name
        ))
    })?;
    let planner = Planner::new(schema, 0);
    let tls = NodeTls::from_settings(
        config.proxy.server_tls_mode,
        config.proxy.server_tls_ca.as_deref(),
    )
    .map_err(DumpError::Config)?;
    let mut snapshots = Vec::new();
    for shard in 0..source.shards() {
        match ShardSnapshot::export(&source, shard, tls.as_ref()).await {
            Ok(snapshot) => snapshots.push(snapshot),
            Err(e) => {
                close(snapshots).await;
                return Err(e);
            }
        }
    }
    let pg_dump = PgDump {
        program: request.pg_dump.clone(),
        // The proxy's own bookkeeping (two-phase commit decisions) differs per shard
        // and is no part of the logical database.
        options: [
            (true, "--exclude-schema=pgshard"),
            (request.no_owner, "--no-owner"),
            (request.no_privileges, "--no-privileges"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, option)| option.to_string())
        .collect(),
    };
    let merge = Merge {
        source: &source,
        planner: &planner,
        pg_dump: &pg_dump,
        schema_only: request.schema_only,
    };
    let result = merge.run(&mut snapshots, out).await;
    close(snapshots).await;
    result
}

async fn close(snapshots: Vec<ShardSnapshot>) {
    for snapshot in snapshots {
        snapshot.close().await;
    }
}

/// One dump in progress.
struct Merge<'a> {
    source: &'a DumpSource,
    planner: &'a Planner,
    pg_dump: &'a PgDump,
    schema_only: bool,
}

impl Merge<'_> {
    async fn run<W: AsyncWrite + Unpin>(
        &self,
        snapshots: &mut [ShardSnapshot],
        out: &mut W,
    ) -> Result<DumpSummary, DumpError> {
        let mut summary = DumpSummary {
            shards: snapshots.len(),
            ..DumpSummary::default()
        };
        if !self.schema_only {
            for (shard, snapshot) in snapshots.iter_mut().enumerate() {
                let count = snapshot.large_objects().await?;
                if count > 0 {
                    return Err(DumpError::Inexact(format!(
                        "shard {shard} holds {count} large objects; each shard has its own, and \
                         a restore through pgshard cannot place them: keep their contents in \
                         bytea columns of sharded or replicated tables instead"
                    )));
                }
            }
        }
        let pre_data = self.same_section(snapshots, "--section=pre-data").await?;
        let post_data = self.same_section(snapshots, "--section=post-data").await?;
        let header = format!(
            "--\n\
             -- pgshard dump of database \"{}\" ({} shards): shard 0's schema (the same on\n\
             -- every shard) and every shard's rows. Restore it through pgshard, into a\n\
             -- database that shards and replicates the same tables:\n\
             --   psql -v ON_ERROR_STOP=1 -f <this file>\n\
             --\n\n",
            self.source.database.name,
            snapshots.len()
        );
        write(out, header.as_bytes()).await?;
        write(out, &pre_data).await?;
        if !self.schema_only {
            let mut tables: BTreeMap<String, (Placement, Vec<data_section::TableData>)> =
                BTreeMap::new();
            let mut sequences: Vec<Vec<SequenceSet>> = Vec::new();
            for (shard, snapshot) in snapshots.iter().enumerate() {
                let section = self.data(shard, &snapshot.id, out).await?;
                summary.rows += section.rows_written;
                for (table, data) in section.tables {
                    let entry = tables
                        .entry(table)
                        .or_insert_with(|| (data.placement.clone(), Vec::new()));
                    entry.1.push(data);
                }
                sequences.push(section.sequences);
            }
            for (table, (placement, per_shard)) in &tables {
                match placement {
                    Placement::Sharded => summary.sharded_tables += 1,
                    Placement::Replicated => {
                        summary.replicated_tables += 1;
                        let fingerprints: Vec<_> =
                            per_shard.iter().map(|data| data.fingerprint).collect();
                        same_everywhere(table, &fingerprints)?;
                    }
                    Placement::Refused(_) => {}
                }
            }
            let furthest = furthest_values(&mut snapshots[0], sequences).await?;
            summary.sequences = furthest.len();
            if !furthest.is_empty() {
                let mut block = String::from(
                    "--\n\
                     -- Sequences: every shard's copy is set to the value furthest along on\n\
                     -- any shard\n\
                     --\n\n",
                );
                for set in &furthest {
                    block.push_str(&set.to_sql());
                }
                block.push_str("\n\n");
                write(out, block.as_bytes()).await?;
            }
        }
        write(out, &post_data).await?;
        out.flush()
            .await
            .map_err(|e| DumpError::Write(e.to_string()))?;
        Ok(summary)
    }

    /// A schema section of every shard, which must be the same: shard 0's.
    async fn same_section(
        &self,
        snapshots: &[ShardSnapshot],
        section: &str,
    ) -> Result<Vec<u8>, DumpError> {
        let mut first: Option<Vec<u8>> = None;
        for (shard, snapshot) in snapshots.iter().enumerate() {
            let script = self
                .pg_dump
                .start(self.source, shard, &snapshot.id, &[section])?
                .read_all()
                .await?;
            match &first {
                None => first = Some(script),
                Some(first) => {
                    if let Some((line, expected, found)) = schema::first_difference(first, &script)
                    {
                        return Err(DumpError::Inexact(format!(
                            "the schema of shard {shard} differs from shard 0's ({section}, \
                             line {line}: {found:?} where shard 0 has {expected:?}); make \
                             every shard's schema the same (DDL through pgshard runs on \
                             every shard) and dump again"
                        )));
                    }
                }
            }
        }
        Ok(first.unwrap_or_default())
    }

    /// Shard `shard`'s data section, filtered into `out`.
    async fn data<W: AsyncWrite + Unpin>(
        &self,
        shard: usize,
        snapshot: &str,
        out: &mut W,
    ) -> Result<DataSection<'_>, DumpError> {
        let mut run = self
            .pg_dump
            .start(self.source, shard, snapshot, &["--data-only"])?;
        let mut section = DataSection::new(shard, self.planner);
        let mut line = Vec::new();
        let mut chunk = Vec::with_capacity(WRITE_CHUNK + (64 << 10));
        while run.read_line(&mut line).await? {
            section.line(&line, &mut chunk)?;
            if chunk.len() >= WRITE_CHUNK {
                write(out, &chunk).await?;
                chunk.clear();
            }
        }
        section.finish(&mut chunk)?;
        run.finish().await?;
        write(out, &chunk).await?;
        Ok(section)
    }
}

async fn write<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8]) -> Result<(), DumpError> {
    out.write_all(bytes)
        .await
        .map_err(|e| DumpError::Write(e.to_string()))
}
