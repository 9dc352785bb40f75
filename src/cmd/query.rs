use std::io::IsTerminal;
use std::process::ExitCode;

use sediment_query::after::{After, OnTimeout};
use sediment_query::output;
use sediment_query::{Cancel, QueryRequest, QueryService};

use super::LakeArgs;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    lake: LakeArgs,
    /// Output format; default: a table on a terminal, CSV otherwise.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Values for `?` placeholders, as SQL literals (repeatable): --param "'2026-11-02'".
    #[arg(long = "param")]
    params: Vec<String>,
    /// Run only once these writes are visible: a token `sediment ingest` or
    /// the ingest Lambda returned, or the JSON `after` object of REST
    /// (`{"event_ids": […], "wait": "5s"}`). Repeatable; all must be visible.
    #[arg(long = "after")]
    after: Vec<String>,
    /// Longest wait for `--after` (default and most: query.max_after_wait).
    #[arg(long, value_parser = humantime::parse_duration)]
    wait: Option<std::time::Duration>,
    /// When the wait runs out, answer anyway (exit 3, "stale" on stderr)
    /// instead of failing NOT_YET_VISIBLE.
    #[arg(long)]
    stale_ok: bool,
    /// The SQL (Athena / Trino dialect).
    sql: String,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (config, lake) = args.lake.load().await?;
    let max_wait = args.wait.unwrap_or(config.query.max_after_wait).min(config.query.max_after_wait);
    let mut after: Option<After> = None;
    for a in &args.after {
        let next = After::parse(a, max_wait).map_err(|e| anyhow::anyhow!("--after: {e}"))?;
        after = Some(match after.take() {
            None => next,
            Some(mut all) => {
                all.token.merge(next.token);
                all.event_ids.extend(next.event_ids);
                all.positions.extend(next.positions);
                all.wait = all.wait.min(next.wait);
                all
            }
        });
    }
    if let Some(a) = after.as_mut() {
        a.wait = a.wait.min(max_wait);
        if args.stale_ok {
            a.on_timeout = OnTimeout::Stale;
        }
    }
    let service = QueryService::new(lake, config)?;
    let client = sediment_query::Client { interface: "cli", ..Default::default() };
    let req = QueryRequest { sql: args.sql, params: args.params, client, after, ..Default::default() };
    let out = match service.run(&req, &Cancel::default(), &()).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("query failed: {}", e.message);
            return Ok(ExitCode::from(2));
        }
    };
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() { Format::Table } else { Format::Csv });
    match format {
        Format::Table => {
            print!("{}", output::to_table(&out));
            eprintln!("{} rows, {} scanned, {} ms", out.rows, super::bytes(out.bytes_scanned), (out.planning + out.execution).as_millis());
        }
        Format::Csv => print!("{}", output::to_csv(&out)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&output::to_json(&out))?),
    }
    if let Some(nv) = &out.stale {
        eprintln!("stale: {}", nv.message().trim_start_matches("NOT_YET_VISIBLE: "));
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
