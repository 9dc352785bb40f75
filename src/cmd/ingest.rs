use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use sediment_ingest::{BulkIngest, BulkOptions, IngestReport};
use sediment_lake::Lake;
use sediment_lake::config::IngestSection;

use super::{LakeArgs, bytes, progress};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    lake: LakeArgs,
    /// NDJSON file of envelopes, or - for stdin.
    #[arg(long, default_value = "-")]
    input: String,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (config, lake) = args.lake.load_or_create().await?;
    let report = ingest_input(&lake, &config.ingest, &args.input).await?;
    let code = if report.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    for e in report.errors.iter().take(5) {
        eprintln!("storage error: {e}");
    }
    Ok(code)
}

/// The bulk-ingest settings of the `[ingest]` section.
pub(crate) fn bulk_options(config: &IngestSection) -> BulkOptions {
    BulkOptions {
        zstd_level: config.zstd_level,
        target_file_bytes: config.cli_target_file_mb.max(1) << 20,
        buffer_bytes: (config.cli_buffer_mb.max(1) << 20) as usize,
        buffer_events: config.cli_batch_events.max(1),
        ..BulkOptions::default()
    }
}

/// Ingests NDJSON from a file or stdin, grouped by partition (see
/// [`BulkIngest`]). Prints the summary line.
pub(crate) async fn ingest_input(lake: &Lake, config: &IngestSection, input: &str) -> anyhow::Result<IngestReport> {
    let started = Instant::now();
    let (reader, name, len): (Box<dyn Read + Send>, String, Option<u64>) = if input == "-" {
        (Box::new(std::io::stdin()), "stdin".to_owned(), None)
    } else {
        let path = PathBuf::from(input);
        let file = std::fs::File::open(&path).with_context(|| format!("opening {input}"))?;
        let len = file.metadata().ok().map(|m| m.len());
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| input.to_owned());
        (Box::new(file), name, len)
    };
    let bar = progress(len, "{spinner} ingest [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}");
    let bulk = BulkIngest::new(lake.clone(), bulk_options(config));
    let show = |bytes: u64, events: u64| {
        bar.set_position(bytes);
        let rate = events as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{events} events, {rate:.0}/s"));
    };
    let total = bulk.ingest(reader, &name, &show).await.context("reading input")?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "stored {} events in {} files ({} written, {} already present), quarantined {}, failed {}, {} parquet, {:.0} events/s",
        total.stored,
        total.files.len(),
        total.files.len() as u64 - total.existing_files,
        total.existing_files,
        total.quarantined,
        total.failed,
        bytes(total.bytes),
        total.input as f64 / secs.max(1e-9),
    );
    // What a later `sediment query --after` (or REST's `after`) names to see these events.
    println!("token: {}", total.token());
    Ok(total)
}
