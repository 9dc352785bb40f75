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
