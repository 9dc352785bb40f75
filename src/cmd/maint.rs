//! `vacuum`, `verify` and `status`.

use std::process::ExitCode;

use chrono::NaiveDate;
use sediment_compactor::maintenance;

use super::{LakeArgs, bytes};

#[derive(Debug, clap::Args)]
pub(crate) struct VacuumArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Keep files younger than this (e.g. 7d, 12h, 30m).
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    retain: std::time::Duration,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    sediment_lake::config::parse_duration(s)
}

pub(crate) async fn vacuum(args: VacuumArgs) -> anyhow::Result<ExitCode> {
    let (config, lake) = args.lake.load().await?;
    let r = maintenance::vacuum(&lake, &config, args.retain).await?;
    println!(
        "deleted {} covered raw files ({}), {} unreferenced table files, {} stale manifests, {} stale typed files",
        r.raw_files_deleted,
        bytes(r.raw_bytes_deleted),
        r.table_files_deleted,
        r.manifests_deleted,
        r.typed_files_deleted
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Verify one day only.
    #[arg(long)]
    date: Option<NaiveDate>,
}

pub(crate) async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (config, lake) = args.lake.load().await?;
    let checks = maintenance::verify(&lake, &config, args.date).await?;
    let mut drift = false;
    for c in &checks {
        if c.problems.is_empty() {
            println!(
                "{}  ok     curated {:>9} rows, checksum {}, {} raw files present{}",
                c.dt,
                c.curated_rows,
                if c.checksum_matches { "matches" } else { "differs" },
                c.raw_files_present,
                if c.pending_raw_files > 0 { format!(", {} raw files pending compaction", c.pending_raw_files) } else { String::new() }
            );
        } else {
            drift = true;
            println!("{}  DRIFT", c.dt);
            for p in &c.problems {
                println!("    - {p}");
            }
        }
    }
    if checks.is_empty() {
        println!("nothing to verify: the lake has no events");
    }
    Ok(if drift { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (config, lake) = args.lake.load().await?;
    let s = maintenance::status(&lake).await?;
    // Per-source lag is read from `events`, as a query sees it.
    let service = sediment_query::QueryService::new(lake, config)?;
    let sources = service.source_lag().await.map_err(|e| anyhow::anyhow!("reading per-source lag: {}", e.message))?;
    let typed = service.catalog().typed().await.map_err(|e| anyhow::anyhow!("reading the typed event tables: {e}"))?;
    if args.json {
        let mut body = serde_json::to_value(&s)?;
        body["sources"] = serde_json::to_value(&sources)?;
        body["typed_tables"] = typed.summary();
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("lake {}  (events table version {})", s.lake, s.events_version.map_or("none".into(), |v| v.to_string()));
    println!(
        "{:<10}  {:<9}  {:>9}  {:>10}  {:>9}  {:>11}  {:<20}  {:<20}",
        "dt", "state", "raw files", "raw bytes", "uncovered", "curated rows", "last compaction", "newest raw file"
    );
    for d in &s.days {
        println!(
            "{:<10}  {:<9}  {:>9}  {:>10}  {:>9}  {:>11}  {:<20}  {:<20}",
            d.dt,
            d.state,
            d.raw_files,
            bytes(d.raw_bytes),
            d.uncovered_files,
            d.curated_rows.map_or("-".into(), |r| r.to_string()),
            d.last_compaction.map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
            d.newest_raw.map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
        );
    }
    for r in &s.payload_schemas {
        for v in &r.versions {
            let since = v.history.first().map_or("-".into(), |d| d.dt.to_string());
            println!("payload {} v{} (since {since}): {}", r.event_type, v.event_version, v.shape.trino_type());
            for day in v.history.iter().skip(1) {
                for c in &day.changes {
                    println!("  {}  {c}", day.dt);
                }
            }
        }
    }
    for t in typed.tables.values() {
        let columns: Vec<String> = t.columns.iter().map(|c| format!("{} {}", c.name, c.shape.trino_type())).collect();
        println!(
            "table {} ({}): {}",
            t.name,
            t.event_type,
            if columns.is_empty() { "no payload columns".into() } else { columns.join(", ") }
        );
    }
    for p in &typed.problems {
        println!("no typed table for {}: {}", p.event_type, p.problem);
    }
    if let Some(t) = s.newest_raw {
        let lag = chrono::Utc::now() - t;
        println!(
            "freshness: newest raw file landed {} ago; {} raw files await compaction (visible to SQL now)",
            humantime::format_duration(lag.to_std().unwrap_or_default()),
            s.uncovered_files
        );
    }
    if !sources.is_empty() {
        println!("{:<12}  {:<24}  {:<24}  {:>12}  newest visible position", "source", "shard", "newest arrival", "lag");
        for l in &sources {
            println!(
                "{:<12}  {:<24}  {:<24}  {:>12}  {}",
                l.source,
                l.shard.as_deref().unwrap_or("-"),
                l.newest_arrival.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                humantime::format_duration(std::time::Duration::from_millis(l.age_ms as u64 / 1000 * 1000)).to_string(),
                l.newest_position
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
