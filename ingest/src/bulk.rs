//! Bulk ingest of an NDJSON input (`sediment ingest`): a backfill, a replay
//! or a catch-up, where the whole input is known up front.
//!
//! Unlike a stream batch, which cuts one file per hour partition it touches,
//! bulk ingest groups the input by partition before it cuts files: rows are
//! buffered per partition, a partition's buffer is encoded as a row group of
//! that partition's open file when it reaches the row-group size (or when
//! all buffers together reach the buffer bound, or at the end of the input),
//! and a file is finished only when it reaches the target size or the input
//! ends. A 30-day input therefore writes one file per hour partition per
//! target size, whatever its length.
//!
//! Both cores work, on a pipeline: chunks of the input are parsed and
//! validated in parallel (each line decoded once, straight from the chunk,
//! into an [`Envelope`]) while earlier row groups are sorted, encoded and
//! compressed in parallel, and finished files are written.
//!
//! Exactly once: a file's key is a digest of the input up to the last chunk
//! that contributed rows to it, its partition, its part number and its line
//! numbers. Where the buffer is flushed and files are cut depends only on
//! the input's bytes and the settings, so a re-run of the same input lands
//! on the same keys and, with conditional creates, stores nothing twice; an
//! interrupted run re-run finishes what is missing. Events duplicated across
//! inputs are removed by `event_id` downstream, as for every source.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use arrow::array::RecordBatch;
use base64::Engine as _;
use bytes::Bytes;
use chrono::{NaiveDate, SecondsFormat, Utc};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use parquet::arrow::ArrowWriter;
use sediment_lake::envelope::millis_to_datetime;
use sediment_lake::paths::{RawFile, quarantine_key};
use sediment_lake::schema::raw_schema;
use sediment_lake::storage::Created;
use sediment_lake::{Envelope, Lake};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::ingestor::{IngestReport, QuarantineRecord};
use crate::parquet_out::{Position, Row, record_batch, sort_rows, writer_properties};
use crate::source::SourceKind;

/// How a bulk ingest buffers, cuts files and uses the machine.
#[derive(Debug, Clone)]
pub struct BulkOptions {
    pub zstd_level: i32,
    /// A partition's file is finished once its encoded size reaches this.
    pub target_file_bytes: u64,
    /// A partition's buffered rows are encoded as a row group once they reach this many bytes.
    pub row_group_bytes: usize,
    /// All buffered rows are encoded into row groups once their text reaches this many bytes…
    pub buffer_bytes: usize,
    /// …or this many events.
    pub buffer_events: usize,
    /// Bytes of input parsed per task (cut at a line end).
    pub chunk_bytes: usize,
    /// Parse and encode tasks at once.
    pub threads: usize,
    /// Object writes at once.
    pub uploads: usize,
}

impl Default for BulkOptions {
    fn default() -> Self {
        Self {
            zstd_level: 1,
            target_file_bytes: 128 << 20,
            row_group_bytes: 8 << 20,
            buffer_bytes: 512 << 20,
            buffer_events: 2_000_000,
            chunk_bytes: 8 << 20,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            uploads: 8,
        }
    }
}

/// One chunk of the input: whole lines, the first of them line `first_line` (1-based).
struct Chunk {
    bytes: Vec<u8>,
    first_line: u64,
}

struct Parsed {
    event: Envelope,
    line: u64,
    arrival_ms: i64,
}

impl Parsed {
    /// What the row holds in memory, roughly.
    fn weight(&self) -> usize {
        let e = &self.event;
        96 + e.event_id.len()
            + e.event_type.len()
            + e.aggregate_type.len()
            + e.aggregate_id.len()
            + e.payload.len()
            + e.metadata.as_ref().map_or(0, String::len)
    }
}

struct Invalid {
    line: u64,
    index: usize,
    reason: String,
    raw: Vec<u8>,
}

struct ParsedChunk {
    rows: Vec<Parsed>,
    invalid: Vec<Invalid>,
    digest: blake3::Hash,
    bytes: u64,
    arrival_ms: i64,
}

fn parse_chunk(chunk: Chunk) -> ParsedChunk {
    let arrival_ms = Utc::now().timestamp_millis();
    let bytes = &chunk.bytes;
    let mut rows = Vec::with_capacity(bytes.len() / 256);
    let mut invalid = Vec::new();
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
    for (index, end) in ends.enumerate() {
        let line = chunk.first_line + index as u64;
        let mut stop = end;
        if stop > start && bytes[stop - 1] == b'\r' {
            stop -= 1;
        }
        let text = &bytes[start..stop];
        if text.iter().any(|b| !b.is_ascii_whitespace()) {
            match Envelope::parse(text) {
                Ok(event) => rows.push(Parsed { event, line, arrival_ms }),
                Err(why) => invalid.push(Invalid { line, index, reason: why.to_string(), raw: text.to_vec() }),
            }
        }
        start = end + 1;
    }
    ParsedChunk { rows, invalid, digest: blake3::hash(bytes), bytes: bytes.len() as u64, arrival_ms }
}

/// Reads the input in chunks of whole lines and hands them on in order.
fn read_chunks(mut reader: Box<dyn Read + Send>, chunk_bytes: usize, tx: mpsc::Sender<std::io::Result<Chunk>>) {
    let mut carry: Vec<u8> = Vec::new();
    let mut first_line = 1u64;
    let mut eof = false;
    while !eof {
        let mut buf = std::mem::take(&mut carry);
        let want = buf.len() + chunk_bytes.max(1);
        buf.reserve(want - buf.len());
        // Fill to `want` or the end of the input, growing past it until a line ends.
        loop {
            let filled = buf.len();
            let room = want.max(filled + 64 * 1024) - filled;
            buf.resize(filled + room, 0);
            let n = match read_full(&mut reader, &mut buf[filled..]) {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            buf.truncate(filled + n);
            if n < room {
                eof = true;
                break;
            }
            if let Some(cut) = memchr::memrchr(b'\n', &buf) {
                carry = buf.split_off(cut + 1);
                break;
            }
        }
        if buf.is_empty() {
            break;
        }
        let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
        let chunk = Chunk { bytes: buf, first_line };
        first_line += lines;
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A partition's file being written: finished row groups in memory.
struct OpenFile {
    writer: ArrowWriter<Vec<u8>>,
    /// Digest of what determines the file: see the module notes.
    key: blake3::Hasher,
    lines: Vec<u64>,
    newest_ms: i64,
    oldest_ms: i64,
}

#[derive(Default)]
struct Partition {
    pending: Vec<Parsed>,
    pending_bytes: usize,
    file: Option<OpenFile>,
    /// A row group of this partition is being encoded (its file is with the encoder).
    busy: bool,
    /// Files of this partition finished so far.
    parts: u32,
    /// While `busy`: the lines of the open file and of the rows being
    /// encoded, which fail together if the encoder dies.
    in_flight: Vec<u64>,
}

type PartitionKey = (NaiveDate, u32);

/// One partition's pending rows on their way into a row group.
struct EncodeJob {
    partition: PartitionKey,
    rows: Vec<Parsed>,
    file: Option<OpenFile>,
    /// Lines of a file that failed to encode (all its rows fail).
    failed: Vec<u64>,
    error: Option<String>,
}

enum Upload {
    Raw { key: String, len: u64, lines: Vec<u64>, newest_ms: i64, oldest_ms: i64 },
    Quarantine { key: String, lines: Vec<u64> },
}

/// Writes NDJSON inputs into a lake in partition-sized files.
#[derive(Debug, Clone)]
pub struct BulkIngest {
    lake: Lake,
    options: BulkOptions,
}

/// Progress of a bulk ingest: input bytes parsed and events seen so far.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

impl BulkIngest {
    pub fn new(lake: Lake, options: BulkOptions) -> Self {
        Self { lake, options }
    }

    /// Ingests an NDJSON input named `input` (the name goes into each row's
    /// `source_position` as `<input>:<line>`). Never fails part-way silently:
    /// what could not be stored is counted in `failed` with its positions;
    /// an error reading the input is returned after what was read is stored.
    pub async fn ingest(&self, reader: Box<dyn Read + Send>, input: &str, progress: Progress<'_>) -> std::io::Result<IngestReport> {
        let threads = self.options.threads.max(1);
        let (tx, mut rx) = mpsc::channel(threads + 1);
        let chunk_bytes = self.options.chunk_bytes;
        let reader_task = tokio::task::spawn_blocking(move || read_chunks(reader, chunk_bytes, tx));
        let mut run = Run::new(self, input);
        let mut parsing = FuturesOrdered::new();
        let mut read_error = None;
        let mut more = true;
        loop {
            while more && parsing.len() < threads {
                match rx.recv().await {
                    Some(Ok(chunk)) => parsing.push_back(tokio::task::spawn_blocking(move || parse_chunk(chunk))),
                    Some(Err(e)) => {
                        read_error = Some(e);
                        more = false;
                    }
                    None => more = false,
                }
            }
            let Some(parsed) = parsing.next().await else { break };
            let parsed = parsed.map_err(std::io::Error::other)?;
            run.absorb(parsed).await;
            progress(run.bytes, run.report.input);
        }
        reader_task.await.map_err(std::io::Error::other)?;
        let report = run.finish().await;
        match read_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

/// The state of one bulk ingest.
struct Run<'a> {
    bulk: &'a BulkIngest,
    input: String,
    /// Digest of the input read so far.
    rolling: blake3::Hash,
    chunks: u64,
    bytes: u64,
    partitions: BTreeMap<PartitionKey, Partition>,
    pending_bytes: usize,
    pending_events: usize,
    encoding: JoinSet<EncodeJob>,
    /// The partition each encoder task works on.
    encoders: HashMap<tokio::task::Id, PartitionKey>,
    uploads: JoinSet<(Upload, Result<Created, String>)>,
    report: IngestReport,
}

impl<'a> Run<'a> {
    fn new(bulk: &'a BulkIngest, input: &str) -> Self {
        Self {
            bulk,
            input: input.to_owned(),
            rolling: blake3::hash(b"sediment bulk ingest v1"),
            chunks: 0,
            bytes: 0,
            partitions: BTreeMap::new(),
            pending_bytes: 0,
            pending_events: 0,
            encoding: JoinSet::new(),
            encoders: HashMap::new(),
            uploads: JoinSet::new(),
            report: IngestReport::default(),
        }
    }

    fn position(&self, line: u64) -> String {
        format!("{}:{line}", self.input)
    }

    async fn absorb(&mut self, chunk: ParsedChunk) {
        let mut h = blake3::Hasher::new();
        h.update(self.rolling.as_bytes());
        h.update(chunk.digest.as_bytes());
        self.rolling = h.finalize();
        self.chunks += 1;
        self.bytes += chunk.bytes;
        self.report.input += (chunk.rows.len() + chunk.invalid.len()) as u64;
        if !chunk.invalid.is_empty() {
            self.quarantine(&chunk).await;
        }
        for row in chunk.rows {
            let weight = row.weight();
            self.pending_bytes += weight;
            self.pending_events += 1;
            let p = self.partitions.entry((row.event.dt(), row.event.hour())).or_default();
            p.pending_bytes += weight;
            p.pending.push(row);
        }
        let all = self.pending_bytes >= self.bulk.options.buffer_bytes || self.pending_events >= self.bulk.options.buffer_events;
        let due: Vec<PartitionKey> = self
            .partitions
            .iter()
            .filter(|(_, p)| !p.pending.is_empty() && (all || p.pending_bytes >= self.bulk.options.row_group_bytes))
            .map(|(k, _)| *k)
            .collect();
        for partition in due {
            self.schedule(partition).await;
        }
    }

    /// The chunk's invalid lines, one quarantine file named by the input digest so far.
    async fn quarantine(&mut self, chunk: &ParsedChunk) {
        let name = format!("{}-{}", SourceKind::Cli.name(), hex::encode(&self.rolling.as_bytes()[..16]));
        let key = quarantine_key(millis_to_datetime(chunk.arrival_ms).date_naive(), &name);
        let time = millis_to_datetime(chunk.arrival_ms).to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut body = Vec::new();
        for bad in &chunk.invalid {
            let record = QuarantineRecord {
                reason: bad.reason.clone(),
                raw_base64: base64::engine::general_purpose::STANDARD.encode(&bad.raw),
                source: SourceKind::Cli.name().to_owned(),
                position: self.position(bad.line),
                batch_position: format!("{}|{}", SourceKind::Cli.name(), self.rolling.to_hex()),
                index: bad.index,
                time: time.clone(),
            };
            // A struct of strings and integers always serialises.
            body.extend(serde_json::to_vec(&record).unwrap_or_default());
            body.push(b'\n');
        }
        let lines = chunk.invalid.iter().map(|b| b.line).collect();
        self.upload(Upload::Quarantine { key, lines }, Bytes::from(body)).await;
    }

    /// Hands a partition's pending rows to an encoder, which appends them
    /// to the partition's open file as a row group while reading goes on.
    /// One row group of a partition is encoded at a time.
    async fn schedule(&mut self, partition: PartitionKey) {
        while self.partitions.get(&partition).is_some_and(|p| p.busy) || self.encoding.len() >= self.bulk.options.threads.max(1) {
            self.settle_encode().await;
        }
        let Some(p) = self.partitions.get_mut(&partition) else { return };
        let rows = std::mem::take(&mut p.pending);
        self.pending_bytes -= std::mem::take(&mut p.pending_bytes);
        self.pending_events -= rows.len();
        let mut file = p.file.take();
        if let Some(f) = file.as_mut() {
            f.key.update(self.rolling.as_bytes());
        }
        p.busy = true;
        p.in_flight = file.iter().flat_map(|f| f.lines.iter().copied()).chain(rows.iter().map(|r| r.line)).collect();
        let job = EncodeJob { partition, rows, file, failed: Vec::new(), error: None };
        let (input, zstd, rolling) = (self.input.clone(), self.bulk.options.zstd_level, self.rolling);
        let task = self.encoding.spawn_blocking(move || encode(job, &input, zstd, &rolling));
        self.encoders.insert(task.id(), partition);
    }

    /// Takes back one encoded row group's file; finishes it at the target size.
    async fn settle_encode(&mut self) {
        let Some(res) = self.encoding.join_next_with_id().await else { return };
        let job = match res {
            Ok((id, job)) => {
                self.encoders.remove(&id);
                job
            }
            // A panicking encoder is a bug: its file and rows fail, loudly.
            Err(e) => {
                self.report.errors.push(format!("encoder task failed: {e}"));
                let lost = self.encoders.remove(&e.id()).and_then(|k| self.partitions.get_mut(&k)).map(|p| {
                    p.busy = false;
                    p.file = None;
                    std::mem::take(&mut p.in_flight)
                });
                self.fail_lines(lost.unwrap_or_default());
                return;
            }
        };
        if let Some(error) = job.error {
            self.report.errors.push(error);
            self.fail_lines(job.failed);
        }
        let p = self.partitions.entry(job.partition).or_default();
        p.busy = false;
        p.in_flight = Vec::new();
        p.file = job.file;
        if p.file.as_ref().is_some_and(|f| f.writer.bytes_written() as u64 >= self.bulk.options.target_file_bytes) {
            self.finish_file(job.partition).await;
        }
    }

    async fn finish_file(&mut self, partition: PartitionKey) {
        let p = self.partitions.entry(partition).or_default();
        let Some(file) = p.file.take() else { return };
        let mut key = file.key;
        key.update(&p.parts.to_le_bytes());
        p.parts += 1;
        let name = format!("{}-{}", SourceKind::Cli.name(), hex::encode(&key.finalize().as_bytes()[..16]));
        let key = RawFile::new(partition.0, partition.1, name).key();
        match file.writer.into_inner() {
            Ok(bytes) => {
                let upload =
                    Upload::Raw { key, len: bytes.len() as u64, lines: file.lines, newest_ms: file.newest_ms, oldest_ms: file.oldest_ms };
                self.upload(upload, Bytes::from(bytes)).await;
            }
            Err(e) => {
                self.report.errors.push(format!("encode {key}: {e}"));
                self.fail_lines(file.lines);
            }
        }
    }

    async fn upload(&mut self, upload: Upload, bytes: Bytes) {
        while self.uploads.len() >= self.bulk.options.uploads.max(1) {
            self.settle_one().await;
        }
        let lake = self.bulk.lake.clone();
        self.uploads.spawn(async move {
            let key = match &upload {
                Upload::Raw { key, .. } | Upload::Quarantine { key, .. } => key.clone(),
            };
            let res = lake.put_if_absent(&key, bytes).await.map_err(|e| e.to_string());
            (upload, res)
        });
    }

    async fn settle_one(&mut self) {
        let Some(res) = self.uploads.join_next().await else { return };
        match res {
            Ok((Upload::Raw { key, len, lines, newest_ms, oldest_ms }, Ok(created))) => {
                if created == Created::New {
                    self.report.bytes += len;
                } else {
                    self.report.existing_files += 1;
                }
                self.report.stored += lines.len() as u64;
                self.report.newest_event_ms = self.report.newest_event_ms.max(Some(newest_ms));
                self.report.oldest_event_ms = Some(self.report.oldest_event_ms.map_or(oldest_ms, |o| o.min(oldest_ms)));
                self.report.files.push(key);
            }
            Ok((Upload::Quarantine { key, lines }, Ok(_))) => {
                self.report.quarantined += lines.len() as u64;
                self.report.quarantine_files.push(key);
            }
            Ok((Upload::Raw { lines, .. } | Upload::Quarantine { lines, .. }, Err(e))) => {
                self.report.errors.push(e);
                self.fail_lines(lines);
            }
            Err(e) => self.report.errors.push(format!("upload task failed: {e}")),
        }
    }

    fn fail_lines(&mut self, lines: Vec<u64>) {
        self.report.failed += lines.len() as u64;
        let ids: Vec<String> = lines.into_iter().map(|l| self.position(l)).collect();
        self.report.failed_ids.extend(ids);
    }

    async fn finish(mut self) -> IngestReport {
        let pending: Vec<PartitionKey> = self.partitions.iter().filter(|(_, p)| !p.pending.is_empty()).map(|(k, _)| *k).collect();
        for partition in pending {
            self.schedule(partition).await;
        }
        while !self.encoding.is_empty() {
            self.settle_encode().await;
        }
        let open: Vec<PartitionKey> = self.partitions.iter().filter(|(_, p)| p.file.is_some()).map(|(k, _)| *k).collect();
        for partition in open {
            self.finish_file(partition).await;
        }
        while !self.uploads.is_empty() {
            self.settle_one().await;
        }
        let mut report = self.report;
        report.files.sort();
        report.quarantine_files.sort();
        report
    }
}

/// Sorts one partition's rows and appends them to its file as a row group.
fn encode(mut job: EncodeJob, input: &str, zstd_level: i32, rolling: &blake3::Hash) -> EncodeJob {
    let mut file = match job.file.take() {
        Some(f) => f,
        None => match ArrowWriter::try_new(Vec::new(), raw_schema(), Some(writer_properties(zstd_level))) {
            Ok(writer) => {
                let mut key = blake3::Hasher::new();
                key.update(format!("{}/{:02}", job.partition.0, job.partition.1).as_bytes());
                key.update(rolling.as_bytes());
                OpenFile { writer, key, lines: Vec::new(), newest_ms: i64::MIN, oldest_ms: i64::MAX }
            }
            Err(e) => {
                job.error = Some(format!("encode raw/{}/{:02}: {e}", job.partition.0, job.partition.1));
                job.failed = job.rows.iter().map(|r| r.line).collect();
                return job;
            }
        },
    };
    let mut rows: Vec<Row<'_>> =
        job.rows.iter().map(|r| Row { event: &r.event, ingested_at_ms: r.arrival_ms, position: Position::Line(input, r.line) }).collect();
    sort_rows(&mut rows);
    let written = record_batch(&rows, SourceKind::Cli.name())
        .map_err(|e| e.to_string())
        .and_then(|batch: RecordBatch| file.writer.write(&batch).and_then(|()| file.writer.flush()).map_err(|e| e.to_string()));
    match written {
        Ok(()) => {
            for r in &rows {
                file.newest_ms = file.newest_ms.max(r.event.occurred_at_ms);
                file.oldest_ms = file.oldest_ms.min(r.event.occurred_at_ms);
            }
            // Lines in file order: the key covers which lines, in which row group.
            let start = file.lines.len();
            file.lines.extend(job.rows.iter().map(|r| r.line));
            for line in &file.lines[start..] {
                file.key.update(&line.to_le_bytes());
            }
            job.file = Some(file);
        }
        Err(e) => {
            // The file's earlier row groups go with it: their rows fail too.
            job.error = Some(format!("encode raw/{}/{:02}: {e}", job.partition.0, job.partition.1));
            job.failed = file.lines.into_iter().chain(job.rows.iter().map(|r| r.line)).collect();
        }
    }
    job.rows = Vec::new();
    job
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::generate::{GenerateOptions, generate};

    fn input() -> Vec<u8> {
        let opts = GenerateOptions {
            events: 6000,
            days: 2,
            start: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            seed: 31,
            duplicates: 0.05,
            malformed: 0.02,
        };
        let mut out = Vec::new();
        generate(&opts, &mut out).unwrap();
        // A blank line and a CRLF line end: skipped, and stripped.
        out.splice(0..0, b"\n".iter().copied());
        let first_end = out.iter().skip(1).position(|&b| b == b'\n').unwrap() + 1;
        out.insert(first_end, b'\r');
        out
    }

    const TARGET: u64 = 6 << 10;

    fn options() -> BulkOptions {
        BulkOptions {
            zstd_level: 1,
            target_file_bytes: TARGET,
            row_group_bytes: 20 << 10,
            buffer_bytes: 1 << 30,
            buffer_events: 700,
            chunk_bytes: 5000,
            threads: 2,
            uploads: 4,
        }
    }

    async fn run(lake: &Lake, data: &[u8], options: BulkOptions) -> IngestReport {
        let bulk = BulkIngest::new(lake.clone(), options);
        bulk.ingest(Box::new(std::io::Cursor::new(data.to_vec())), "in.ndjson", &|_, _| {}).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_are_cut_per_partition_by_size_and_reruns_write_nothing() {
        let data = input();
        let lake = Lake::open("memory://bulk-unit-1").unwrap();
        let report = run(&lake, &data, options()).await;
        let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').filter(|l| l.iter().any(|b| !b.is_ascii_whitespace())).collect();
        let valid: Vec<(u64, Envelope)> = data
            .split(|&b| b == b'\n')
            .enumerate()
            .filter_map(|(i, l)| Envelope::parse(l.strip_suffix(b"\r").unwrap_or(l)).ok().map(|e| (i as u64 + 1, e)))
            .collect();
        assert_eq!(report.input, lines.len() as u64);
        assert_eq!((report.stored, report.failed), (valid.len() as u64, 0));
        assert_eq!(report.quarantined, report.input - report.stored);
        assert!(report.errors.is_empty(), "{:?}", report.errors);

        // Every stored row is its line's event, in its own partition, once.
        let mut seen: BTreeMap<u64, (String, NaiveDate, u32)> = BTreeMap::new();
        let mut files_per_partition: BTreeMap<PartitionKey, Vec<u64>> = BTreeMap::new();
        for key in &report.files {
            let file = RawFile::parse(key).unwrap();
            let bytes = lake.get(key).await.unwrap();
            files_per_partition.entry((file.dt, file.hour)).or_default().push(bytes.len() as u64);
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
            assert!(reader.metadata().num_row_groups() >= 1);
            for batch in reader.build().unwrap() {
                let batch = batch.unwrap();
                let col = |name: &str| batch.column_by_name(name).unwrap().clone();
                let ids = col("event_id");
                let ids = ids.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
                let pos = col("source_position");
                let pos = pos.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
                for i in 0..batch.num_rows() {
                    let line: u64 = pos.value(i).strip_prefix("in.ndjson:").unwrap().parse().unwrap();
                    let previous = seen.insert(line, (ids.value(i).to_owned(), file.dt, file.hour));
                    assert!(previous.is_none(), "line {line} stored twice");
                }
            }
        }
        let expected: BTreeMap<u64, (String, NaiveDate, u32)> =
            valid.iter().map(|(line, e)| (*line, (e.event_id.clone(), e.dt(), e.hour()))).collect();
        assert_eq!(seen, expected);

        // Files are cut by size: every file of a partition but its last reached the target.
        assert!(files_per_partition.values().any(|sizes| sizes.len() > 1), "no partition reached the target size");
        assert_eq!(files_per_partition.len(), valid.iter().map(|(_, e)| (e.dt(), e.hour())).collect::<BTreeSet<_>>().len());
        for sizes in files_per_partition.values() {
            assert!(sizes.iter().filter(|&&s| s < TARGET).count() <= 1, "{files_per_partition:?}");
        }

        // The same input again lands on the same keys and writes nothing.
        let again = run(&lake, &data, options()).await;
        assert_eq!(again.files, report.files);
        assert_eq!(again.quarantine_files, report.quarantine_files);
        assert_eq!((again.existing_files, again.bytes, again.stored), (report.files.len() as u64, 0, report.stored));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_buffer_writes_one_file_per_partition() {
        let data = input();
        let lake = Lake::open("memory://bulk-unit-2").unwrap();
        let report = run(&lake, &data, BulkOptions { target_file_bytes: 1 << 30, ..options() }).await;
        let partitions: BTreeSet<(NaiveDate, u32)> =
            report.files.iter().map(|k| RawFile::parse(k).map(|f| (f.dt, f.hour)).unwrap()).collect();
        assert_eq!(partitions.len(), report.files.len());
        assert_eq!(partitions.len(), 48);
    }
}
