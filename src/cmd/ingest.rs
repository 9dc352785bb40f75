use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use sediment_ingest::{IngestReport, Ingestor, ndjson_batch};
use tokio::task::JoinSet;

use super::{LakeArgs, bytes, progress};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    lake: LakeArgs,
    /// NDJSON file of envelopes, or - for stdin.
    #[arg(long, default_value = "-")]
    input: String,
}

/// Bytes read from the input per chunk (batches never straddle chunks).
const CHUNK: usize = 32 << 20;

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (config, lake) = args.lake.load_or_create().await?;
    let ingestor = Ingestor::new(lake).with_zstd_level(config.ingest.zstd_level);
    let report = ingest_input(&ingestor, &args.input, config.ingest.cli_batch_events).await?;
    let code = if report.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    for e in report.errors.iter().take(5) {
        eprintln!("storage error: {e}");
    }
    Ok(code)
}

/// Ingests NDJSON from a file or stdin in batches of `batch_events` lines,
/// as many batches at once as there are cores. Prints the summary line.
pub(crate) async fn ingest_input(ingestor: &Ingestor, input: &str, batch_events: usize) -> anyhow::Result<IngestReport> {
    let started = Instant::now();
    let (mut reader, name, len): (Box<dyn Read + Send>, String, Option<u64>) = if input == "-" {
        (Box::new(std::io::stdin()), "stdin".to_owned(), None)
    } else {
        let path = PathBuf::from(input);
        let file = std::fs::File::open(&path).with_context(|| format!("opening {input}"))?;
        let len = file.metadata().ok().map(|m| m.len());
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| input.to_owned());
        (Box::new(file), name, len)
    };
    let bar = progress(len, "{spinner} ingest [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}");
    let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let mut tasks: JoinSet<IngestReport> = JoinSet::new();
    let mut total = IngestReport::default();
    let mut carry: Vec<u8> = Vec::new();
    let mut line_no = 0usize;
    let mut eof = false;
    while !eof {
        // Read a chunk and cut it at the last newline.
        let mut buf = std::mem::take(&mut carry);
        let start = buf.len();
        buf.resize(start + CHUNK, 0);
        let mut filled = start;
        while filled < buf.len() {
            let n = reader.read(&mut buf[filled..]).context("reading input")?;
            if n == 0 {
                eof = true;
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        bar.inc((filled - start) as u64);
        if !eof {
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(cut) => carry = buf.split_off(cut + 1),
                None => {
                    carry = buf;
                    continue;
                }
            }
        }
        let chunk = std::sync::Arc::new(buf);
        let lines: Vec<(usize, usize)> = line_ranges(&chunk);
        for group in lines.chunks(batch_events.max(1)) {
            let first_line = line_no;
            line_no += group.len();
            let (chunk, group, ingestor, name) = (chunk.clone(), group.to_vec(), ingestor.clone(), name.clone());
            while tasks.len() >= parallel {
                if let Some(r) = tasks.join_next().await {
                    absorb(&mut total, r?, &bar, started);
                }
            }
            tasks.spawn(async move {
                let slices: Vec<&[u8]> = group.iter().map(|&(a, b)| &chunk[a..b]).collect();
                let batch = ndjson_batch(&name, first_line, &slices);
                ingestor.ingest(&batch).await
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        absorb(&mut total, r?, &bar, started);
    }
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
    Ok(total)
}

fn absorb(total: &mut IngestReport, r: IngestReport, bar: &indicatif::ProgressBar, started: Instant) {
    total.absorb(r);
    let rate = total.input as f64 / started.elapsed().as_secs_f64().max(1e-9);
    bar.set_message(format!("{} events, {:.0}/s", total.input, rate));
}

/// Non-empty lines of a buffer as byte ranges (without the newline or a trailing `\r`).
fn line_ranges(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(buf.len() / 256);
    let mut start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            push_line(buf, start, i, &mut out);
            start = i + 1;
        }
    }
    push_line(buf, start, buf.len(), &mut out);
    out
}

fn push_line(buf: &[u8], start: usize, mut end: usize, out: &mut Vec<(usize, usize)>) {
    if end > start && buf[end - 1] == b'\r' {
        end -= 1;
    }
    if buf[start..end].iter().any(|b| !b.is_ascii_whitespace()) {
        out.push((start, end));
    }
}
