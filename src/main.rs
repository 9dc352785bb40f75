//! `sediment`: the one user-facing binary. Each subcommand lives in
//! `cmd/<name>.rs`; this file only parses arguments and sets up logging.

use clap::{Parser, Subcommand};

mod cmd;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Analytics read models on S3: ingest events, compact them into Delta Lake
/// tables and daily snapshots, and query them with Athena-style SQL.
#[derive(Debug, Parser)]
#[command(name = "sediment", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a deterministic e-commerce event stream as NDJSON to stdout.
    Generate(cmd::generate::Args),
    /// Ingest NDJSON envelopes into the lake's raw zone.
    Ingest(cmd::ingest::Args),
    /// Compact raw events into curated tables, snapshots and views.
    Compact(cmd::compact::Args),
    /// Delete covered raw files, unreferenced table files and stale manifests.
    Vacuum(cmd::maint::VacuumArgs),
    /// Recompute counts and checksums from raw and compare with the tables (exit 2 on drift).
    Verify(cmd::maint::VerifyArgs),
    /// Per day: raw files, compacted or dirty, last compaction, freshness.
    Status(cmd::maint::StatusArgs),
    /// Run one Athena-style (Trino dialect) SQL statement.
    Query(cmd::query::Args),
    /// Serve the Athena API, REST and metrics over HTTP.
    Serve(cmd::serve::Args),
    /// Build a demo lake from a generated e-commerce stream and serve it.
    Demo(cmd::demo::Args),
}

/// Logs on stderr. A server writes JSON lines, the query log among them
/// (one line per query, target `sediment::query`); other commands write
/// text and only warnings unless `SEDIMENT_LOG` asks for more.
fn init_logging(serving: bool) {
    let quiet = "warn,buoyant_kernel=off,delta_kernel=off";
    let default = if serving { format!("{quiet},sediment::query=info") } else { quiet.to_owned() };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEDIMENT_LOG").unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if serving {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Serve(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Generate(args) => cmd::generate::run(args),
            Command::Ingest(args) => cmd::ingest::run(args).await,
            Command::Compact(args) => cmd::compact::run(args).await,
            Command::Vacuum(args) => cmd::maint::vacuum(args).await,
            Command::Verify(args) => cmd::maint::verify(args).await,
            Command::Status(args) => cmd::maint::status(args).await,
            Command::Query(args) => cmd::query::run(args).await,
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Demo(args) => cmd::demo::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
