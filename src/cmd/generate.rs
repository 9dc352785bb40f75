use std::process::ExitCode;

use chrono::NaiveDate;
use sediment_ingest::generate::{GenerateOptions, generate};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Distinct valid events to write.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Days the stream spans.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// First day (UTC), YYYY-MM-DD.
    #[arg(long, default_value = "2026-11-01")]
    start: NaiveDate,
    /// Random seed: the same options give the same bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fraction of events delivered twice.
    #[arg(long, default_value_t = 0.0)]
    duplicates: f64,
    /// Fraction of extra lines that are not valid events.
    #[arg(long, default_value_t = 0.0)]
    malformed: f64,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = GenerateOptions {
        events: args.events,
        days: args.days,
        start: args.start,
        seed: args.seed,
        duplicates: args.duplicates,
        malformed: args.malformed,
    };
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let s = generate(&opts, &mut lock)?;
    eprintln!("generated {} events, {} duplicates, {} malformed lines ({} lines)", s.events, s.duplicates, s.malformed, s.lines);
    Ok(ExitCode::SUCCESS)
}
