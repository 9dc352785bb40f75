use std::io::IsTerminal;
use std::process::ExitCode;

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
    /// The SQL (Athena / Trino dialect).
    sql: String,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (config, lake) = args.lake.load().await?;
    let service = QueryService::new(lake, config)?;
    let client = sediment_query::Client { interface: "cli", ..Default::default() };
    let req = QueryRequest { sql: args.sql, params: args.params, bytes_scanned_cutoff: None, client };
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
    Ok(ExitCode::SUCCESS)
}
