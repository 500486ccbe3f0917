//! The `pgshard` command: run the proxy, or check a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// pgshard: a PostgreSQL-wire-compatible proxy that makes one logical database out of
/// many PostgreSQL servers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "pgshard.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration file and exit (non-zero on errors).
    Check,
    /// Run the proxy (the default).
    Run,
    /// Dump a sharded database into one SQL script that restores through pgshard: runs
    /// pg_dump against every shard's primary (as the configuration names them) and
    /// merges the schema once with every shard's rows.
    Dump(DumpArgs),
}

/// Options of `pgshard dump`.
#[derive(Args)]
struct DumpArgs {
    /// The [[databases]] entry to dump (default: the only one).
    #[arg(long, short = 'd')]
    database: Option<String>,
    /// The [[users]] entry whose server credentials pg_dump logs in with (default: the
    /// first).
    #[arg(long, short = 'U')]
    user: Option<String>,
    /// Write the script to this file (default: standard output). It is written to
    /// FILE.partial and renamed once complete, so FILE is never a partial dump.
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// The pg_dump program: at least the servers' major version.
    #[arg(long, default_value = "pg_dump")]
    pg_dump: PathBuf,
    /// Dump the schema only (no rows, no sequence values).
    #[arg(long, short = 's')]
    schema_only: bool,
    /// No commands setting the ownership of objects (pg_dump's --no-owner).
    #[arg(long, short = 'O')]
    no_owner: bool,
    /// No GRANT or REVOKE commands (pg_dump's --no-privileges).
    #[arg(long, short = 'x')]
    no_privileges: bool,
}

/// jemalloc gives freed memory back to the system (its background threads purge unused
/// pages after a few seconds), so the proxy shrinks again after a burst of clients or
/// large messages; glibc's allocator keeps most of it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start: unused pages go back after a second, and
/// directly (not left to the kernel to take, which RSS would still count).
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match pgshard_config::load(&cli.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Check) = cli.command {
        if let (Some(certificate), Some(key)) =
            (&config.proxy.tls_certificate, &config.proxy.tls_private_key)
        {
            if let Err(e) = pgshard_proxy::check_tls(certificate, key) {
                eprintln!("{}: {e}", cli.config.display());
                return ExitCode::from(2);
            }
        }
        if let Err(e) = pgshard_failover::NodeTls::from_settings(
            config.proxy.server_tls_mode,
            config.proxy.server_tls_ca.as_deref(),
        ) {
            eprintln!("{}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
        println!("{}: configuration is valid", cli.config.display());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Dump(args)) = cli.command {
        return dump(&config, args);
    }
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.proxy.log_level.as_deref().unwrap_or("info")));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let handle = match pgshard_proxy::start(config).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::select! {
            _ = wait_for_signal() => {}
            _ = handle.stop_requested() => tracing::info!("SHUTDOWN from the admin console"),
        }
        tracing::info!("shutting down: no new clients; waiting for running transactions");
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// `pgshard dump`: the script to `--file` (through FILE.partial) or standard output, and
/// a summary or the reason it failed on standard error.
fn dump(config: &pgshard_config::Config, args: DumpArgs) -> ExitCode {
    let request = pgshard_proxy::dump::DumpRequest {
        database: args.database,
        user: args.user,
        pg_dump: args.pg_dump,
        schema_only: args.schema_only,
        no_owner: args.no_owner,
        no_privileges: args.no_privileges,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgshard dump: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &args.file {
            Some(file) => {
                let mut partial = file.clone().into_os_string();
                partial.push(".partial");
                let partial = PathBuf::from(partial);
                let written = async {
                    let handle = tokio::fs::File::create(&partial).await.map_err(|e| {
                        pgshard_proxy::dump::DumpError::Write(format!("{}: {e}", partial.display()))
                    })?;
                    let mut out = tokio::io::BufWriter::new(handle);
                    let summary = pgshard_proxy::dump::dump(config, &request, &mut out).await?;
                    out.into_inner().sync_all().await.map_err(|e| {
                        pgshard_proxy::dump::DumpError::Write(format!("{}: {e}", partial.display()))
                    })?;
                    tokio::fs::rename(&partial, file).await.map_err(|e| {
                        pgshard_proxy::dump::DumpError::Write(format!(
                            "renaming {} to {}: {e}",
                            partial.display(),
                            file.display()
                        ))
                    })?;
                    Ok(summary)
                }
                .await;
                if written.is_err() {
                    let _ = tokio::fs::remove_file(&partial).await;
                }
                written
            }
            None => {
                let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
                pgshard_proxy::dump::dump(config, &request, &mut out).await
            }
        }
    });
    match result {
        Ok(summary) => {
            eprintln!(
                "pgshard dump: {} shards: {} sharded and {} replicated tables, {} rows, {} \
                 sequences",
                summary.shards,
                summary.sharded_tables,
                summary.replicated_tables,
                summary.rows,
                summary.sequences
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgshard dump: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
