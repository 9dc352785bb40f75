//! The real Lambda binaries under `cargo lambda watch`, invoked with Kinesis,
//! SQS, DynamoDB Streams and scheduled events, writing to an S3-compatible
//! server (a batch retried, late events after compaction); then boto3's Athena
//! client asks `sediment serve` over the same lake and DuckDB checks the
//! answers from the NDJSON (tests/py/lambda_e2e.py); freshness is measured.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{Moto, Server, free_port, generate, grouped, python, root, run_ok, sediment, venv_bin, wait_for_port};

fn invoke(port: u16, function: &str, event: &Value, dir: &Path) -> Value {
    let file = dir.join(format!("event-{port}-{}.json", uuid_like()));
    std::fs::write(&file, event.to_string()).unwrap();
    let out = run_ok(
        Command::new(venv_bin("cargo-lambda"))
            .args([
                "lambda",
                "invoke",
                function,
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
                "--output-format",
                "json",
                "--data-file",
            ])
            .arg(&file),
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{function} returned non-JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

fn kinesis_event(lines: &[String], first_seq: u64) -> Value {
    let records: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let seq = format!("{:056}", first_seq + i as u64);
            json!({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": seq,
                            "data": base64::engine::general_purpose::STANDARD.encode(l), "approximateArrivalTimestamp": 1793613600.123},
                "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record", "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/events"
            })
        })
        .collect();
    json!({"Records": records})
}

fn sqs_event(lines: &[String], prefix: &str) -> Value {
    let records: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({"messageId": format!("{prefix}-{i}"), "receiptHandle": "h", "body": l,
                   "attributes": {"SentTimestamp": "1793613600000", "ApproximateReceiveCount": "1"}, "messageAttributes": {},
                   "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:events", "awsRegion": "us-east-1"})
        })
        .collect();
    json!({"Records": records})
}

/// DynamoDB Streams records of an event-store table, items in snake_case.
fn dynamodb_event(lines: &[String]) -> Value {
    let records: Vec<Value> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let e: Value = serde_json::from_str(l).ok()?;
            let s = |k: &str, c: &str| e.get(k).or_else(|| e.get(c)).cloned().unwrap_or(Value::Null);
            let occurred = match s("occurred_at", "occurredAt") {
                Value::Number(n) => json!({"N": n.to_string()}),
                Value::String(t) => json!({"S": t}),
                _ => return None,
            };
            let image = json!({
                "event_id": {"S": s("event_id", "eventId")}, "event_type": {"S": s("event_type", "eventType")},
                "aggregate_type": {"S": s("aggregate_type", "aggregateType")}, "aggregate_id": {"S": s("aggregate_id", "aggregateId")},
                "sequence": {"N": s("sequence", "sequence").to_string()}, "occurred_at": occurred,
                "payload": {"S": s("payload", "payload").to_string()},
            });
            Some(json!({"eventID": format!("id-{i}"), "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                        "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/events/stream/2026",
                        "dynamodb": {"ApproximateCreationDateTime": 1793613600.0, "Keys": {"aggregate_id": image["aggregate_id"]},
                                     "NewImage": image, "SequenceNumber": format!("{}", 100 + i), "SizeBytes": 100,
                                     "StreamViewType": "NEW_IMAGE"}}))
        })
        .collect();
    json!({"Records": records})
}

/// `cargo lambda watch` (the Lambda runtime API emulator) with the function
/// binary attached as its one function, `_`. The binaries are the ones this
/// test suite built, so nothing is compiled twice.
fn watch(binary: &std::path::Path, port: u16, lake: &str, config: &Path, moto: &Moto) -> (Server, Server) {
    let emulator = grouped(Command::new(venv_bin("cargo-lambda")))
        .current_dir(root())
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
            "--timeout",
            "300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cargo lambda watch starts");
    let emulator = Server { child: emulator, port };
    wait_for_port(port, Duration::from_secs(60));
    let function = Command::new(binary)
        .envs(moto.env())
        .env("SEDIMENT_LAKE", lake)
        .env("SEDIMENT_CONFIG", config)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the function starts");
    (emulator, Server { child: function, port })
}

/// The ingest Lambda lives in its own crate (it must not link DataFusion):
/// build it with that crate's features, as `cargo lambda build -p` does.
fn ingest_lambda_binary() -> std::path::PathBuf {
    run_ok(Command::new(env!("CARGO")).current_dir(root()).args(["build", "-p", "sediment-ingest", "--bin", "sediment-ingest-lambda"]));
    let target = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| root().join("target"));
    target.join("debug").join("sediment-ingest-lambda")
}

fn count_raw_files(moto: &Moto, lake: &str) -> u64 {
    let out = run_ok(sediment().envs(moto.env()).args(["status", "--json", "--lake", lake]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["days"].as_array().unwrap().iter().map(|d| d["raw_files"].as_u64().unwrap()).sum()
}

#[test]
fn lambda_binaries_ingest_and_compact_under_cargo_lambda_watch() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let lake = "s3://lake/lambda";
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    generate(
        &input,
        &["--events", "1200", "--days", "3", "--start", "2026-09-01", "--seed", "4242", "--malformed", "0.02", "--duplicates", "0.03"],
    );
    let lines: Vec<String> = std::fs::read_to_string(&input).unwrap().lines().map(str::to_owned).collect();
    // Kinesis, a late Kinesis batch after compaction, SQS, and DynamoDB
    // Streams (valid items; an event store holds no malformed rows).
    let (a, rest) = lines.split_at(400);
    let (late, rest) = rest.split_at(100);
    let (b, c) = rest.split_at(400);
    let (c, c_bad): (Vec<String>, Vec<String>) = c.iter().cloned().partition(|l| sediment_lake_valid(l));

    let port = free_port();
    let config = root().join("examples/sediment.toml");
    let _ingest = watch(&ingest_lambda_binary(), port, lake, &config, &moto);
    let cport = free_port();
    let _compact = watch(std::path::Path::new(env!("CARGO_BIN_EXE_sediment-compact-lambda")), cport, lake, &config, &moto);

    // Kinesis, with malformed records quarantined (not failed).
    let kinesis = kinesis_event(a, 1_000);
    let r = invoke(port, "_", &kinesis, dir.path());
    assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    let files = count_raw_files(&moto, lake);
    assert!(files > 0);
    // The same batch retried lands on the same keys.
    let r = invoke(port, "_", &kinesis, dir.path());
    assert_eq!(r["batchItemFailures"], json!([]));
    assert_eq!(count_raw_files(&moto, lake), files, "a retried batch wrote new files");

    let r = invoke(port, "_", &sqs_event(b, "m"), dir.path());
    assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    let r = invoke(port, "_", &dynamodb_event(&c), dir.path());
    assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    let r = invoke(port, "_", &sqs_event(&c_bad, "bad"), dir.path());
    assert_eq!(r["batchItemFailures"], json!([]), "{r}");

    // Scheduled compaction of closed days.
    let scheduled = json!({"version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events", "account": "000000000000",
                           "time": "2026-11-22T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let r = invoke(cport, "_", &scheduled, dir.path());
    assert_eq!(r["committed_days"], 3, "{r}");
    let r = invoke(cport, "_", &scheduled, dir.path());
    assert_eq!(r["committed_days"], 0, "a second scheduled run compacted again: {r}");
    // Late events for compacted days: those days turn dirty and are recompacted.
    let r = invoke(port, "_", &kinesis_event(late, 50_000), dir.path());
    assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    let r = invoke(cport, "_", &scheduled, dir.path());
    assert!(r["committed_days"].as_u64().is_some_and(|n| n >= 1), "late data did not recompact: {r}");
    let r = invoke(cport, "_", &scheduled, dir.path());
    assert_eq!(r["committed_days"], 0, "{r}");

    // Every valid event exactly once, duplicates and retries included (the
    // quarantine is checked by lambda_e2e.py below).
    let q = run_ok(sediment().envs(moto.env()).args([
        "query",
        "--format",
        "json",
        "--lake",
        lake,
        "SELECT count(*), count(DISTINCT event_id) FROM events",
    ]));
    let v: Value = serde_json::from_slice(&q.stdout).unwrap();
    let ids: std::collections::HashSet<String> = lines
        .iter()
        .filter(|l| sediment_lake_valid(l))
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            v.get("event_id").or_else(|| v.get("eventId")).and_then(Value::as_str).map(str::to_owned)
        })
        .collect();
    let valid = ids.len() as i64;
    assert_eq!(v["rows"][0][0].as_i64(), Some(valid), "{v}");
    assert_eq!(v["rows"][0][0], v["rows"][0][1]);

    // Freshness: ingest returns → the event is visible to SQL through the server.
    let serve_port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sediment"))
        .envs(moto.env())
        .args(["serve", "--lake", lake, "--config", config.to_str().unwrap(), "--listen", &format!("127.0.0.1:{serve_port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _serve = Server { child, port: serve_port };
    wait_for_port(serve_port, Duration::from_secs(30));

    // boto3's Athena client against the server, DuckDB from the NDJSON: per-day
    // counts, revenue, current order state, a past snapshot, the quarantine.
    let out =
        python("lambda_e2e.py", &[&format!("http://127.0.0.1:{serve_port}"), lake, input.to_str().unwrap(), "2026-09-02"], &moto.env());
    println!("lambda e2e: {}", out.trim());
    // Read your writes: each batch's token, sent with the very next query,
    // makes that query see the batch; so do its event ids and its Kinesis
    // positions (shard and sequence number, as PutRecord returns them).
    let mut lags = Vec::new();
    for i in 0..5 {
        let id = format!("fresh-{i}-{}", uuid_like());
        let event = json!({"event_id": id, "event_type": "Ping", "aggregate_type": "Probe", "aggregate_id": "p",
                           "occurred_at": chrono_now(), "payload": {}});
        let r = invoke(port, "_", &sqs_event(&[event.to_string()], &id), dir.path());
        assert_eq!(r["batchItemFailures"], json!([]));
        let token = r["token"].as_str().expect("the ingest Lambda returns a token").to_owned();
        let returned = Instant::now();
        let sql = format!("SELECT count(*) FROM events WHERE event_id = '{id}'");
        let resp = ureq_post(serve_port, &json!({"sql": sql, "after": {"token": token}}));
        assert_eq!(resp["rows"][0][0], 1, "the token's event is not in the answer: {resp}");
        lags.push(returned.elapsed());
        let resp = ureq_post(serve_port, &json!({"sql": sql, "after": {"event_ids": [id]}}));
        assert_eq!(resp["rows"][0][0], 1, "{resp}");
    }
    // The same through the Athena API (boto3, the token in X-Sediment-After).
    let id = format!("athena-{}", uuid_like());
    let event = json!({"event_id": id, "event_type": "Ping", "aggregate_type": "Probe", "aggregate_id": "p",
                       "occurred_at": chrono_now(), "payload": {}});
    let r = invoke(port, "_", &sqs_event(&[event.to_string()], &id), dir.path());
    let out = python("athena_after.py", &[&format!("http://127.0.0.1:{serve_port}"), r["token"].as_str().unwrap(), &id], &moto.env());
    assert!(out.contains("\"problems\": []"), "{out}");
    let seq = 90_000u64;
    let probe = json!({"event_id": format!("kinesis-probe-{}", uuid_like()), "event_type": "Ping", "aggregate_type": "Probe",
                       "aggregate_id": "k", "occurred_at": chrono_now(), "payload": {}});
    let r = invoke(port, "_", &kinesis_event(&[probe.to_string()], seq), dir.path());
    assert_eq!(r["batchItemFailures"], json!([]));
    let position = json!({"source": "kinesis", "shard": "shardId-000000000000", "sequence_number": format!("{seq:056}")});
    let sql = format!("SELECT count(*) FROM events WHERE event_id = '{}'", probe["event_id"].as_str().unwrap());
    let resp = ureq_post(serve_port, &json!({"sql": sql, "after": {"positions": [position]}}));
    assert_eq!(resp["rows"][0][0], 1, "{resp}");

    // What never arrives times out, within the bound, with the documented error.
    let never = json!({"sql": "SELECT 1", "after": {"event_ids": ["never-delivered"], "wait": "400ms"}});
    let asked = Instant::now();
    let resp = ureq_post(serve_port, &never);
    let waited = asked.elapsed();
    assert_eq!(resp["error"]["type"], "NotYetVisible", "{resp}");
    assert!(resp["error"]["message"].as_str().unwrap().starts_with("NOT_YET_VISIBLE"), "{resp}");
    assert_eq!(resp["error"]["not_visible"]["event_ids"], json!(["never-delivered"]), "{resp}");
    assert!(resp["error"]["not_visible"]["lag"].as_array().is_some_and(|l| !l.is_empty()), "the error says how far behind: {resp}");
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(5), "waited {waited:?}");
    // A token naming a batch that never landed: the same, naming the file.
    let ghost_key = "raw/events/dt=2026-12-01/hour=00/sqs-never-landed.parquet";
    let ghost = sediment_lake::token::Token::of_keys([ghost_key]).encode();
    let resp = ureq_post(serve_port, &json!({"sql": "SELECT 1", "after": {"token": ghost, "wait": "200ms"}}));
    assert_eq!(resp["error"]["type"], "NotYetVisible", "{resp}");
    assert_eq!(resp["error"]["not_visible"]["files"], json!([ghost_key]), "{resp}");
    let stale = json!({"sql": "SELECT 1", "after": {"event_ids": ["never-delivered"], "wait": "100ms", "on_timeout": "stale"}});
    let resp = ureq_post(serve_port, &stale);
    assert_eq!((resp["stale"].clone(), resp["rows"][0][0].clone()), (json!(true), json!(1)), "{resp}");
    // Lag per source, as GET /v1/lake reports it.
    let lake_status = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{serve_port}/v1/lake")]).output().unwrap();
    let lake_status: Value = serde_json::from_slice(&lake_status.stdout).unwrap();
    let sources = lake_status["sources"].as_array().expect("sources in /v1/lake");
    let kinesis = sources.iter().find(|s| s["source"] == "kinesis" && s["shard"] == "shardId-000000000000").expect("the Kinesis shard");
    assert_eq!(kinesis["newest_position"], format!("shardId-000000000000:{seq:056}"), "{kinesis}");
    assert!(sources.iter().any(|s| s["source"] == "sqs"), "{lake_status}");
    let metrics = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{serve_port}/metrics")]).output().unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    assert!(metrics.contains("sediment_source_lag_seconds{source=\"kinesis\",shard=\"shardId-000000000000\"}"), "{metrics}");
    lags.sort();
    println!("read your writes (ingest return → answer with the token): median {:?}, max {:?}", lags[lags.len() / 2], lags[lags.len() - 1]);
}

fn chrono_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    // RFC 3339 from seconds, UTC (avoids a chrono dependency in the test crate).
    let secs = now.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn ureq_post(port: u16, body: &Value) -> Value {
    let out = Command::new("curl")
        .args(["-s", "-H", "content-type: application/json", "-d", &body.to_string(), &format!("http://127.0.0.1:{port}/v1/query")])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// A line is a valid envelope (the generator's malformed lines are not).
fn sediment_lake_valid(line: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(line) else { return false };
    let id = v.get("event_id").or_else(|| v.get("eventId"));
    let agg = v.get("aggregate_id").or_else(|| v.get("aggregateId"));
    let seq_ok = v.get("sequence").is_none_or(|s| s.is_u64());
    id.and_then(Value::as_str).is_some_and(|s| !s.is_empty()) && agg.and_then(Value::as_str).is_some_and(|s| !s.is_empty()) && seq_ok
}
