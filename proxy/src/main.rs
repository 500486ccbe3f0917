//! The `pgshard` command: run the proxy, or check a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
}

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
        wait_for_signal().await;
        tracing::info!("shutting down: no new clients; waiting for running transactions");
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
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
