//! Golden SQL files (`tests/slt/*.slt`, sqllogictest format) run through the
//! query service: the Trino dialect pinned with Trino's documented answers.

use std::path::PathBuf;
use std::sync::Arc;

use sediment_query::{Cancel, QueryRequest, QueryService};
use sqllogictest::{DBOutput, DefaultColumnType};

struct Db(Arc<QueryService>);

#[derive(Debug)]
struct Failure(String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = Failure;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Failure> {
        let req = QueryRequest { sql: sql.to_owned(), ..Default::default() };
        let out = self.0.run(&req, &Cancel::default(), &()).await.map_err(|e| Failure(e.message))?;
        let types = out.schema.fields().iter().map(|_| DefaultColumnType::Any).collect();
        let rows = sediment_query::output::text_rows(&out)
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| match v {
                        None => "NULL".to_owned(),
                        Some(s) if s.is_empty() => "(empty)".to_owned(),
                        Some(s) => s,
                    })
                    .collect()
            })
            .collect();
        Ok(DBOutput::Rows { types, rows })
    }

    fn engine_name(&self) -> &str {
        "sediment"
    }

    async fn shutdown(&mut self) {}
}

/// A small lake for the files that query tables: `events` from a fixed stream.
async fn fixture() -> Arc<QueryService> {
    let lake = sediment_lake::Lake::open("memory://slt-fixture").unwrap();
    let lines = [
        r#"{"event_id":"e1","event_type":"OrderPlaced","aggregate_type":"Order","aggregate_id":"o1","sequence":1,"occurred_at":"2026-11-01T10:00:00.250Z","payload":{"status":"placed","total":10.5,"items":[{"sku":"a"},{"sku":"b"}]}}"#,
        r#"{"event_id":"e2","event_type":"PaymentReceived","aggregate_type":"Order","aggregate_id":"o1","sequence":2,"occurred_at":"2026-11-01T11:30:00Z","payload":{"status":"paid","amount":10.5}}"#,
        r#"{"event_id":"e3","event_type":"OrderPlaced","aggregate_type":"Order","aggregate_id":"o2","sequence":1,"occurred_at":"2026-11-02T09:15:00Z","payload":{"status":"placed","total":4}}"#,
        r#"{"event_id":"e3","event_type":"OrderPlaced","aggregate_type":"Order","aggregate_id":"o2","sequence":1,"occurred_at":"2026-11-02T09:15:00Z","payload":{"status":"placed","total":4}}"#,
        r#"{"eventId":"e4","eventType":"OrderShipped","aggregateType":"Order","aggregateId":"o1","sequence":3,"occurredAt":1793794200000,"payload":{"status":"shipped","carrier":"DHL"}}"#,
    ];
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let r = sediment_ingest::Ingestor::new(lake.clone()).ingest(&sediment_ingest::ndjson_batch("fixture", 0, &refs)).await;
    assert_eq!(r.stored, 5);
    let config = sediment_lake::Config::default();
    // Compact the first day so the fixture mixes curated and raw data.
    sediment_compactor::Compactor::new(lake.clone(), config.clone())
        .run(&sediment_compactor::DaySelection::One("2026-11-01".parse().unwrap()), false, &())
        .await
        .unwrap();
    // A late copy of a curated event arrives after the day was compacted:
    // `events` (and its counts) must still show it once.
    let late = [lines[0].as_bytes()];
    let r = sediment_ingest::Ingestor::new(lake.clone()).ingest(&sediment_ingest::ndjson_batch("fixture-late", 0, &late)).await;
    assert_eq!(r.stored, 1);
    QueryService::new(lake, config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_sql_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let service = fixture().await;
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "slt")).collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for f in &files {
        let svc = Arc::clone(&service);
        let mut runner = sqllogictest::Runner::new(move || {
            let svc = Arc::clone(&svc);
            async move { Ok(Db(svc)) }
        });
        if let Err(e) = runner.run_file_async(f).await {
            failures.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The coverage table (`docs/functions.md`) of Trino's functions
/// (`docs/trino-functions.txt`): each is supported (registered under its
/// Trino name, or rewritten by the dialect) or refused with
/// `NOT_SUPPORTED: function X` — checked here by running it. Regenerate
/// with `SEDIMENT_BLESS=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_coverage_table_is_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let names: Vec<String> = std::fs::read_to_string(root.join("docs/trino-functions.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 400, "{} names", names.len());
    let service = QueryService::new(sediment_lake::Lake::open("memory://coverage").unwrap(), Default::default()).unwrap();
    let state = service.session().state();
    let registered = |n: &str| {
        use datafusion::execution::FunctionRegistry;
        state.udf(n).is_ok()
            || state.udaf(n).is_ok()
            || state.udwf(n).is_ok()
            || state.higher_order_functions().values().any(|f| f.name() == n || f.aliases().iter().any(|a| a == n))
    };
    let dialect = sediment_trino::REWRITTEN;
    let refused = sediment_trino::UNSUPPORTED;
    // Every supported function is pinned by at least one corpus case.
    let corpus: String = std::fs::read_dir(root.join("tests/slt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .map(|p| std::fs::read_to_string(p).unwrap().to_lowercase())
        .collect::<Vec<_>>()
        .join("\n");
    let called = |n: &str| {
        // SQL's special forms are written without parentheses.
        let special = matches!(n, "current_date" | "current_time" | "current_timestamp" | "localtime" | "localtimestamp");
        corpus.match_indices(n).any(|(i, _)| {
            let before = corpus[..i].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let after = corpus[i + n.len()..].chars().next();
            before && (after == Some('(') || (special && after.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))))
        })
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let (mut supported, mut not) = (0, 0);
    for n in &names {
        let status = if refused.contains(&n.as_str()) || !(registered(n) || dialect.contains(&n.as_str())) {
            // SQL's special forms are written without parentheses.
            let call = if n == "current_user" { n.clone() } else { format!("{n}()") };
            let req = QueryRequest { sql: format!("SELECT {call}"), ..Default::default() };
            match service.run(&req, &Cancel::default(), &()).await {
                Err(e) if e.message.starts_with(&format!("NOT_SUPPORTED: function {n}")) => {}
                other => problems.push(format!("{n}: neither supported nor refused: {:?}", other.map(|o| o.rows).map_err(|e| e.message))),
            }
            not += 1;
            "not supported (`NOT_SUPPORTED: function …`)"
        } else {
            if !called(n) {
                problems.push(format!("{n}: supported but no case in tests/slt calls it"));
            }
            supported += 1;
            if dialect.contains(&n.as_str()) { "supported (dialect rewrite)" } else { "supported" }
        };
        rows.push(format!("| `{n}` | {status} |"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let table = format!(
        "# Trino function coverage\n\nGenerated by `tests/it/slt.rs` (`function_coverage_table_is_current`) from\n\
         `docs/trino-functions.txt`: {supported} supported, {not} refused with `NOT_SUPPORTED: function X`.\n\
         Answers are pinned by `tests/slt/*.slt`.\n\n| Function | Status |\n| --- | --- |\n{}\n",
        rows.join("\n")
    );
    let path = root.join("docs/functions.md");
    if std::env::var_os("SEDIMENT_BLESS").is_some() {
        std::fs::write(&path, &table).unwrap();
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), table, "docs/functions.md is stale: rerun with SEDIMENT_BLESS=1");
}
