use std::process::ExitCode;

use chrono::NaiveDate;
use sediment_compactor::events::DayReport;
use sediment_compactor::{Compactor, DaySelection, Progress};

use super::{LakeArgs, bytes, progress};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    lake: LakeArgs,
    /// Compact one day (UTC), YYYY-MM-DD.
    #[arg(long, conflicts_with_all = ["from", "to", "all"])]
    date: Option<NaiveDate>,
    /// First day of a range (with --to).
    #[arg(long, requires = "to")]
    from: Option<NaiveDate>,
    /// Last day of a range (with --from).
    #[arg(long, requires = "from")]
    to: Option<NaiveDate>,
    /// Every day with data. Without --date/--from/--all: closed days (ended
    /// more than the grace period ago) and dirty days, as the scheduled Lambda does.
    #[arg(long)]
    all: bool,
    /// Rewrite the selected days and rebuild every projection and view from the start.
    #[arg(long)]
    rebuild: bool,
}

struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&self, days: usize) {
        self.0.set_length(days as u64);
    }
    fn day_done(&self, r: &DayReport) {
        self.0.inc(1);
        if r.committed {
            self.0.set_message(format!("{}: {} rows, {}", r.dt, r.rows_out, bytes(r.bytes_written)));
        }
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (config, lake) = args.lake.load().await?;
    let selection = match (args.date, args.from, args.to, args.all) {
        (Some(d), ..) => DaySelection::One(d),
        (None, Some(a), Some(b), _) => DaySelection::Range(a, b),
        (None, _, _, true) => DaySelection::All,
        _ => DaySelection::Closed { now: chrono::Utc::now() },
    };
    let compactor = Compactor::new(lake, config);
    let bar = Bar(progress(Some(0), "{spinner} compact [{elapsed_precise}] {wide_bar} {pos}/{len} days (eta {eta}) {msg}"));
    let report = compactor.run(&selection, args.rebuild, &bar).await?;
    bar.0.finish_and_clear();
    println!("{}", report.summary());
    Ok(ExitCode::SUCCESS)
}
