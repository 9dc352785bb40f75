//! Property tests: compaction equals the deduplicated union of what was
//! ingested, and every incremental snapshot equals a full replay — over random
//! histories with duplicates, late and out-of-order deliveries and deletes.

use std::collections::BTreeSet;

use arrow::array::Array;
use chrono::{Days, NaiveDate};
use proptest::prelude::*;
use sediment_engine::catalog::LakeCatalog;
use sediment_engine::fold::{FoldEvent, Folder, States};
use sediment_ingest::{Ingestor, ndjson_batch};
use sediment_lake::{Config, Envelope, Lake};

use crate::{Compactor, DaySelection};

const CONFIG: &str = r#"
[[projection]]
name = "things"
aggregate_type = "Thing"
delete_on = ["Deleted"]
columns = [
  { name = "status", fn = "last", path = "$.status" },
  { name = "first_s", fn = "first", path = "$.status" },
  { name = "total", fn = "sum", path = "$.n", type = "bigint" },
  { name = "biggest", fn = "max", path = "$.n", type = "bigint" },
  { name = "touches", fn = "count", when = ["Touched"] },
]
"#;

#[derive(Debug, Clone)]
struct Ev {
    id: String,
    agg: String,
    seq: i64,
    ty: &'static str,
    /// Milliseconds since the start of day 0.
    at: i64,
    payload: String,
}

impl Ev {
    fn line(&self, start: NaiveDate) -> String {
        let base = start.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
        format!(
            r#"{{"event_id":"{}","event_type":"{}","aggregate_type":"Thing","aggregate_id":"{}","sequence":{},"occurred_at":{},"payload":{}}}"#,
            self.id,
            self.ty,
            self.agg,
            self.seq,
            base + self.at,
            self.payload
        )
    }
}

fn history() -> impl Strategy<Value = Vec<Ev>> {
    let step = (
        prop::sample::select(vec!["Created", "Touched", "Touched", "Renamed", "Deleted"]),
        prop::option::of(prop::sample::select(vec!["a", "b", "c"])),
        prop::option::of(prop_oneof![(-5i64..50).prop_map(|n| n.to_string()), Just("\"x\"".to_owned())]),
        1i64..30 * 3_600_000,
    );
    prop::collection::vec((0usize..4, step), 1..40).prop_map(|steps| {
        let mut clock = [0i64; 4];
        let mut seqs = [0i64; 4];
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (agg, (ty, status, n, gap)))| {
                clock[agg] += gap;
                seqs[agg] += 1;
                let mut fields = Vec::new();
                if let Some(s) = status {
                    fields.push(format!(r#""status":"{s}""#));
                }
                if let Some(n) = n {
                    fields.push(format!(r#""n":{n}"#));
                }
                Ev {
                    id: format!("e{i}"),
                    agg: format!("t{agg}"),
                    seq: seqs[agg],
                    ty,
                    at: clock[agg],
                    payload: format!("{{{}}}", fields.join(",")),
                }
            })
            .collect()
    })
}

/// Deliveries: each event once or twice, in shuffled batches; `late` ones
/// only after the first compaction.
fn deliveries(n: usize) -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<usize>)> {
    (Just((0..n).collect::<Vec<_>>()).prop_shuffle(), prop::collection::vec(any::<bool>(), n), prop::collection::vec(0u8..4, n), 1usize..4)
        .prop_map(|(order, dup, route, nbatches)| {
            let mut batches = vec![Vec::new(); nbatches];
            let mut late = Vec::new();
            for (k, &i) in order.iter().enumerate() {
                match route[k] {
                    0 => late.push(i),
                    r => batches[(r as usize + k) % nbatches].push(i),
                }
                if dup[k] {
                    batches[k % nbatches].push(i);
                }
            }
            (batches, late)
        })
}

async fn ingest(lake: &Lake, events: &[Ev], idx: &[usize], start: NaiveDate, name: &str) {
    let lines: Vec<String> = idx.iter().map(|&i| events[i].line(start)).collect();
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let r = Ingestor::new(lake.clone()).ingest(&ndjson_batch(name, 0, &refs)).await;
    assert_eq!(r.failed + r.quarantined, 0, "{r:?}");
}

async fn query(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<arrow::array::RecordBatch> {
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

fn replay(folder: &Folder, events: &[Ev], start: NaiveDate, upto: NaiveDate) -> States {
    let mut evs: Vec<(NaiveDate, &Ev)> =
        events.iter().map(|e| (Envelope::parse(e.line(start).as_bytes()).unwrap().dt(), e)).filter(|(d, _)| *d <= upto).collect();
    evs.sort_by(|a, b| (a.0, a.1.seq, a.1.at, &a.1.id).cmp(&(b.0, b.1.seq, b.1.at, &b.1.id)));
    let base = start.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros();
    let mut states = States::new();
    for (_, e) in evs {
        let fe = FoldEvent {
            event_id: &e.id,
            event_type: e.ty,
            event_version: 1,
            aggregate_type: "Thing",
            aggregate_id: &e.agg,
            sequence: Some(e.seq),
            occurred_at: base + e.at * 1000,
            ingested_at: 0,
            source: "cli",
            payload: &e.payload,
        };
        folder.apply(&mut states, &fe);
    }
    states
}

async fn check(events: Vec<Ev>, batches: Vec<Vec<usize>>, late: Vec<usize>, case: u64) {
    let start = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let lake = Lake::open(&format!("memory://props-{case}-{}", std::process::id())).unwrap();
    let config = Config::parse(CONFIG).unwrap();
    for (i, b) in batches.iter().enumerate() {
        ingest(&lake, &events, b, start, &format!("b{i}")).await;
    }
    let compactor = Compactor::new(lake.clone(), config.clone());
    compactor.run(&DaySelection::All, false, &()).await.unwrap();
    ingest(&lake, &events, &late, start, "late").await;
    let catalog = LakeCatalog::new(lake.clone(), config.clone());
    let ctx = sediment_engine::session::session(&lake, &Default::default()).unwrap();
    sediment_trino::register(&ctx);
    ctx.register_table("events", catalog_table(&catalog, "events").await).unwrap();
    // Curated days (from their typed copies or their payloads) and late raw files.
    typed_tables_equal_json(&catalog, &ctx, true).await;
    payload_reads_equal_json(&ctx).await;
    compactor.run(&DaySelection::All, false, &()).await.unwrap();
    // Recompacted: every day curated.
    typed_tables_equal_json(&catalog, &ctx, false).await;
    payload_reads_equal_json(&ctx).await;
    // Nothing new: a further run commits nothing.
    let again = compactor.run(&DaySelection::All, false, &()).await.unwrap();
    assert_eq!(again.committed_days(), 0);
    assert!(again.derived.is_empty());

    ctx.register_table("things", catalog_table(&catalog, "things").await).unwrap();
    ctx.register_table("things_current", catalog_table(&catalog, "things_current").await).unwrap();

    // Delivered = union of every batch; compacted events = its distinct ids.
    let delivered: BTreeSet<&str> = batches.iter().flatten().chain(&late).map(|&i| events[i].id.as_str()).collect();
    let got = query(&ctx, "SELECT event_id FROM events").await;
    let ids: Vec<String> = got
        .iter()
        .flat_map(|b| {
            let a = b.column(0).as_any().downcast_ref::<arrow::array::StringArray>().unwrap().clone();
            (0..a.len()).map(move |i| a.value(i).to_owned()).collect::<Vec<_>>()
        })
        .collect();
    let distinct: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(ids.len(), distinct.len(), "an event shows twice");
    assert_eq!(distinct, delivered, "compacted events ≠ distinct union of deliveries");

    // Each snapshot day equals a full replay up to that day.
    let folder = Folder::new(&config.projections[0]).unwrap();
    let delivered_events: Vec<Ev> = events.iter().filter(|e| delivered.contains(e.id.as_str())).cloned().collect();
    let days: Vec<NaiveDate> = delivered_events
        .iter()
        .map(|e| Envelope::parse(e.line(start).as_bytes()).unwrap().dt())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (first, last) = (days[0], days[days.len() - 1]);
    let mut d = first;
    while d <= last {
        let want = folder.to_batch(&replay(&folder, &delivered_events, start, d)).unwrap();
        let sql = format!(
            "SELECT aggregate_id, version, CAST(first_event_at AS TIMESTAMP) , status, first_s, total, biggest, touches FROM things WHERE snapshot_date = DATE '{d}' ORDER BY aggregate_id"
        );
        let batches = query(&ctx, &sql).await;
        if batches.iter().all(|b| b.num_rows() == 0) {
            // Every aggregate deleted (or none born yet) by the end of the day.
            assert_eq!(want.num_rows(), 0, "snapshot {d} is empty, the replay is not");
            d = d.checked_add_days(Days::new(1)).unwrap();
            continue;
        }
        let got = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let want_text = arrow::util::pretty::pretty_format_columns(
            "x",
            &[
                want.column(0).clone(),
                want.column(1).clone(),
                want.column(4).clone(),
                want.column(5).clone(),
                want.column(6).clone(),
                want.column(7).clone(),
                want.column(8).clone(),
            ],
        )
        .unwrap()
        .to_string();
        let got_text = arrow::util::pretty::pretty_format_columns(
            "x",
            &[
                got.column(0).clone(),
                got.column(1).clone(),
                got.column(3).clone(),
                got.column(4).clone(),
                got.column(5).clone(),
                got.column(6).clone(),
                got.column(7).clone(),
            ],
        )
        .unwrap()
        .to_string();
        assert_eq!(got_text, want_text, "snapshot {d} ≠ replay");
        d = d.checked_add_days(Days::new(1)).unwrap();
    }
    // Current state equals the replay of everything.
    let all = folder.to_batch(&replay(&folder, &delivered_events, start, last)).unwrap();
    let current = query(&ctx, "SELECT count(*) FROM things_current").await;
    let n = current[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0);
    assert_eq!(n as usize, all.num_rows());
}

/// Every typed table holds the rows of `events` of its type, each column
/// the JSON evaluation of the payload; a hot value the curated shape cannot
/// hold may fail the query instead, naming the field — never a different
/// answer.
async fn typed_tables_equal_json(catalog: &std::sync::Arc<LakeCatalog>, ctx: &datafusion::prelude::SessionContext, hot: bool) {
    use sediment_lake::payload_schema::Shape;
    let typed = catalog.typed().await.unwrap();
    assert!(typed.problems.is_empty(), "{:?}", typed.problems);
    for (name, def) in &typed.tables {
        let _ = ctx.deregister_table(name.as_str());
        ctx.register_table(name.as_str(), catalog_table(catalog, name).await).unwrap();
        // Parenthesized: the generic dialect's `IS DISTINCT FROM` takes the rest.
        let mut differs = vec!["(t.payload IS DISTINCT FROM e.payload)".to_owned()];
        for c in &def.columns {
            let path = format!("$.{}", c.field);
            let json = match &c.shape {
                Shape::Bigint => format!("CAST(json_extract_scalar(e.payload, '{path}') AS BIGINT)"),
                Shape::Double => format!("CAST(json_extract_scalar(e.payload, '{path}') AS DOUBLE)"),
                Shape::Varchar => format!("json_extract_scalar(e.payload, '{path}')"),
                Shape::Json => format!("nullif(json_extract(e.payload, '{path}'), 'null')"),
                other => panic!("{name}.{}: no payload of the histories has {other:?}", c.name),
            };
            differs.push(format!("(t.\"{}\" IS DISTINCT FROM {json})", c.name));
        }
        let sql = format!(
            "SELECT t.event_id, e.event_id, e.payload FROM \"{name}\" t FULL JOIN (SELECT * FROM events WHERE event_type = '{}') e \
             ON t.event_id = e.event_id AND t.dt = e.dt WHERE t.event_id IS NULL OR e.event_id IS NULL OR {}",
            def.event_type,
            differs.join(" OR ")
        );
        match ctx.sql(&sql).await.unwrap().collect().await {
            Ok(rows) => {
                let shown = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
                assert!(rows.iter().all(|b| b.num_rows() == 0), "{name} ≠ the JSON evaluation of events ({}):\n{shown}", def.event_type);
            }
            Err(e) if hot && e.to_string().contains("payload field") => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

/// JSON paths over `events` of one type (served from the typed copies
/// where they hold the field as the read needs it) give what evaluating the
/// same JSON on every payload gives — the same rows, or both an error.
async fn payload_reads_equal_json(ctx: &datafusion::prelude::SessionContext) {
    async fn run(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Result<String, String> {
        let rows = ctx.sql(sql).await.map_err(|e| e.to_string())?.collect().await.map_err(|e| e.to_string())?;
        Ok(arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string())
    }
    let reads = [
        "json_extract_scalar({p}, '$.status')",
        "json_extract_scalar({p}, '$.n')",
        "CAST(json_extract_scalar({p}, '$.n') AS BIGINT)",
        "CAST(json_extract_scalar({p}, '$.n') AS DOUBLE)",
    ];
    for event_type in ["Created", "Touched", "Renamed", "Deleted"] {
        for read in reads {
            let served = read.replace("{p}", "payload");
            // Not a plain `payload` column: evaluated on every payload.
            let evaluated = read.replace("{p}", "concat(payload, '')");
            for shape in [
                "SELECT event_id, dt, {r} AS v FROM events WHERE event_type = '{t}' ORDER BY event_id, dt",
                "SELECT dt, count({r}) AS c, max({r}) AS hi, min({r}) AS lo FROM events e WHERE e.event_type = '{t}' GROUP BY dt ORDER BY dt",
            ] {
                let sql = |r: &str| shape.replace("{t}", event_type).replace("{r}", r);
                let (got, want) = (run(ctx, &sql(&served)).await, run(ctx, &sql(&evaluated)).await);
                match (&got, &want) {
                    (Ok(g), Ok(w)) => assert_eq!(g, w, "{}", sql(&served)),
                    (Err(_), Err(_)) => {}
                    _ => panic!("{}: {got:?} ≠ {want:?}", sql(&served)),
                }
            }
        }
    }
}

async fn catalog_table(c: &std::sync::Arc<LakeCatalog>, name: &str) -> std::sync::Arc<dyn datafusion::catalog::TableProvider> {
    use datafusion::catalog::SchemaProvider;
    c.schema_provider().table(name).await.unwrap().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn compaction_and_snapshots_match_replay((events, (batches, late)) in history().prop_flat_map(|h| { let n = h.len(); (Just(h), deliveries(n)) })) {
        static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let case = CASE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(check(events, batches, late, case));
    }
}
