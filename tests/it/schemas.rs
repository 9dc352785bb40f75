//! Payload schemas inferred by the compactor: per event type and version,
//! the merged shape of the curated days and the day each change began, as
//! `sediment status --json` reports them — the same whatever order the days
//! are compacted in, and unchanged by a recompaction.

use serde_json::{Value, json};

use crate::support::{run_ok, sediment};

fn event(id: &str, etype: &str, version: i32, day: u32, payload: Value) -> String {
    format!(
        "{}\n",
        json!({"event_id": id, "event_type": etype, "event_version": version, "aggregate_type": "Order",
               "aggregate_id": format!("o-{id}"), "sequence": 1, "occurred_at": format!("2026-10-0{day}T08:00:00Z"),
               "payload": payload})
    )
}

/// Writes `lines` to `name` beside the config and ingests them.
fn ingest(config: &std::path::Path, name: &str, lines: &[String]) {
    let path = config.with_file_name(name);
    std::fs::write(&path, lines.concat()).unwrap();
    run_ok(sediment().args(["ingest", "--config"]).arg(config).arg("--input").arg(&path));
}

fn schemas(config: &std::path::Path) -> Value {
    let out = run_ok(sediment().args(["status", "--json", "--config"]).arg(config));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    status["payload_schemas"].clone()
}

#[test]
fn the_compactor_records_each_types_payload_shape_and_its_drift_by_day() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sediment.toml");
    std::fs::write(&config, format!("[lake]\nurl = \"{}\"\n", dir.path().join("lake").display())).unwrap();
    let ingest = |name: &str, lines: &[String]| ingest(&config, name, lines);
    // Day 3 lands and is compacted first: the history is still by day.
    ingest(
        "d3.ndjson",
        &[event("c1", "OrderPlaced", 1, 3, json!({"total": "ten"})), event("c2", "OrderPlaced", 2, 3, json!({"total_cents": 1000}))],
    );
    run_ok(sediment().args(["compact", "--all", "--config"]).arg(&config));
    ingest(
        "d12.ndjson",
        &[
            event("a1", "OrderPlaced", 1, 1, json!({"total": 10, "items": [{"sku": "a"}]})),
            event("a2", "PaymentReceived", 1, 1, json!({"amount": 5})),
            event("b1", "OrderPlaced", 1, 2, json!({"total": 10.5, "coupon": "X", "items": [{"sku": "b", "qty": 2}]})),
            // A duplicate delivery changes nothing.
            event("b1", "OrderPlaced", 1, 2, json!({"total": 10.5, "coupon": "X", "items": [{"sku": "b", "qty": 2}]})),
        ],
    );
    // The run reports the drift that began on the days it compacted.
    let out = run_ok(sediment().args(["compact", "--all", "--config"]).arg(&config));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "2026-10-01  payload of OrderPlaced v1: first events of this version, row(",
        "2026-10-01  payload of PaymentReceived v1: first events of this version, row(amount integer)",
        "2026-10-02  payload of OrderPlaced v1: $.coupon appeared as varchar",
        "2026-10-02  payload of OrderPlaced v1: $.total widened integer -> double",
    ] {
        assert!(printed.contains(line), "{line}\n{printed}");
    }
    assert!(!printed.contains("2026-10-03  payload"), "day 3 was not compacted by this run:\n{printed}");
    let got = schemas(&config);
    let placed = got.as_array().unwrap().iter().find(|r| r["event_type"] == "OrderPlaced").expect("OrderPlaced").clone();
    let v1 = &placed["versions"][0];
    assert_eq!(v1["event_version"], 1, "{placed}");
    let fields = &v1["shape"]["fields"];
    assert_eq!(fields["total"]["kind"], "json", "{v1}");
    assert_eq!(fields["coupon"]["kind"], "varchar", "{v1}");
    assert_eq!(fields["items"]["element"]["fields"]["qty"]["kind"], "integer", "{v1}");
    let history: Vec<(String, Vec<String>)> = v1["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let changes = d["changes"].as_array().unwrap().iter().map(|c| format!("{} {}", c["path"], c["change"])).collect();
            (d["dt"].as_str().unwrap().to_owned(), changes)
        })
        .collect();
    assert_eq!(
        history,
        [
            ("2026-10-01".to_owned(), vec!["\"$\" \"appeared\"".to_owned()]),
            (
                "2026-10-02".to_owned(),
                vec![
                    "\"$.coupon\" \"appeared\"".to_owned(),
                    "\"$.items[*].qty\" \"appeared\"".to_owned(),
                    "\"$.total\" \"widened\"".to_owned()
                ]
            ),
            (
                "2026-10-03".to_owned(),
                vec![
                    "\"$.total\" \"mixed\"".to_owned(),
                    "\"$.coupon\" \"disappeared\"".to_owned(),
                    "\"$.items\" \"disappeared\"".to_owned()
                ]
            ),
        ],
        "{v1}"
    );
    assert_eq!(placed["versions"][1]["event_version"], 2, "{placed}");
    assert_eq!(placed["versions"][1]["shape"]["fields"]["total_cents"]["kind"], "integer", "{placed}");
    assert!(got.as_array().unwrap().iter().any(|r| r["event_type"] == "PaymentReceived"), "{got}");

    // Recompacting every day records the same schemas.
    run_ok(sediment().args(["compact", "--all", "--rebuild", "--config"]).arg(&config));
    assert_eq!(schemas(&config), got);
    let text = run_ok(sediment().args(["status", "--config"]).arg(&config));
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("payload OrderPlaced v1 (since 2026-10-01): row(coupon varchar,"), "{text}");
    assert!(text.contains("2026-10-03  $.total was double, now mixed kinds (json text)"), "{text}");
}

fn query(config: &std::path::Path, sql: &str) -> Value {
    let out = run_ok(sediment().args(["query", "--format", "json", "--config"]).arg(config).arg(sql));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rows(config: &std::path::Path, sql: &str) -> Vec<Value> {
    query(config, sql)["rows"].as_array().unwrap().clone()
}

/// A typed table per event type: envelope columns and the payload's fields
/// typed by the curated shape, curated and hot days exactly once, equal to
/// the JSON evaluation, listed with the lake's tables; a hot value the
/// shape cannot hold is an error naming the field, never a NULL.
#[test]
fn each_event_type_is_a_typed_table_over_curated_and_hot_days() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sediment.toml");
    std::fs::write(
        &config,
        format!(
            "[lake]\nurl = \"{}\"\n\n[[event_table]]\nevent_type = \"PaymentReceived\"\nname = \"payments\"\n",
            dir.path().join("lake").display()
        ),
    )
    .unwrap();
    let ingest = |name: &str, lines: &[String]| ingest(&config, name, lines);
    ingest(
        "curated.ndjson",
        &[
            event("a1", "OrderPlaced", 1, 1, json!({"total": 10, "items": [{"sku": "a"}], "Channel": "web"})),
            event("b1", "OrderPlaced", 1, 2, json!({"total": 10.5, "coupon": "X", "items": [{"sku": "b", "qty": 2}]})),
            event("b1", "OrderPlaced", 1, 2, json!({"total": 10.5, "coupon": "X", "items": [{"sku": "b", "qty": 2}]})),
            event("b2", "OrderPlaced", 2, 2, json!({"total": 3, "coupon": null, "event_id": "inner"})),
            event("p1", "PaymentReceived", 1, 1, json!({"amount": 5})),
        ],
    );
    run_ok(sediment().args(["compact", "--all", "--config"]).arg(&config));
    // A hot day, never compacted: parsed at query time with the curated shape.
    ingest("hot.ndjson", &[event("h1", "OrderPlaced", 1, 3, json!({"total": 7, "coupon": "Z", "items": []}))]);

    let tables: Vec<Value> = rows(&config, "SHOW TABLES").into_iter().map(|r| r[0].clone()).collect();
    assert!(tables.contains(&json!("order_placed")) && tables.contains(&json!("payments")), "{tables:?}");
    let got = rows(
        &config,
        "SELECT event_id, event_version, dt, total, coupon, channel, payload_event_id, cardinality(items) \
         FROM order_placed ORDER BY event_id",
    );
    assert_eq!(
        got,
        vec![
            json!(["a1", 1, "2026-10-01", 10.0, null, "web", null, 1]),
            json!(["b1", 1, "2026-10-02", 10.5, "X", null, null, 1]),
            json!(["b2", 2, "2026-10-02", 3.0, null, null, "inner", null]),
            json!(["h1", 1, "2026-10-03", 7.0, "Z", null, null, 0]),
        ]
    );
    let items = rows(&config, "SELECT event_id, items[1].sku, items[1].qty FROM order_placed WHERE cardinality(items) > 0 ORDER BY 1");
    assert_eq!(items, vec![json!(["a1", "a", null]), json!(["b1", "b", 2])]);
    let types: Vec<Value> = rows(
        &config,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'sediment' AND table_name = 'order_placed' \
         AND column_name IN ('total', 'coupon', 'items', 'payload') ORDER BY column_name",
    );
    assert_eq!(
        types,
        vec![
            json!(["coupon", "varchar"]),
            json!(["items", "array(row(qty bigint, sku varchar))"]),
            json!(["payload", "varchar"]),
            json!(["total", "double"]),
        ]
    );
    // Every typed value is the JSON evaluation of the payload.
    let differing = rows(
        &config,
        "SELECT count(*) FROM order_placed o JOIN events e ON o.event_id = e.event_id AND o.dt = e.dt \
         WHERE o.coupon IS DISTINCT FROM json_extract_scalar(e.payload, '$.coupon') \
            OR o.total IS DISTINCT FROM CAST(json_extract_scalar(e.payload, '$.total') AS DOUBLE) \
            OR o.payload IS DISTINCT FROM e.payload",
    );
    assert_eq!(differing, vec![json!([0])]);
    assert_eq!(rows(&config, "SELECT event_id, amount FROM payments"), vec![json!(["p1", 5])]);
    // A curated day is read from its typed copy when the copy types the
    // wanted fields as the table does (day 2's totals are doubles), and
    // from the payloads when not (day 1's items lack `qty`).
    let plan = |sql: &str| query(&config, &format!("EXPLAIN {sql}")).to_string();
    let copied = plan("SELECT sum(total), max(coupon) FROM order_placed WHERE dt = DATE '2026-10-02'");
    assert!(copied.contains("typed/events/dt=2026-10-02/") && !copied.contains("payload_columns"), "{copied}");
    let parsed = plan("SELECT items FROM order_placed WHERE dt = DATE '2026-10-01'");
    assert!(parsed.contains("payload_columns") && !parsed.contains("typed/events/"), "{parsed}");
    // JSON paths over `events` of one type read the copies too, and the hot
    // day's payloads: the same answer as the typed table's.
    let json = "SELECT sum(CAST(json_extract_scalar(payload, '$.total') AS DOUBLE)), max(json_extract_scalar(payload, '$.coupon')) \
                FROM events WHERE event_type = 'OrderPlaced'";
    assert_eq!(rows(&config, json), vec![json!([30.5, "Z"])]);
    assert_eq!(rows(&config, "SELECT sum(total), max(coupon) FROM order_placed"), vec![json!([30.5, "Z"])]);
    let read = plan(&format!("{json} AND dt = DATE '2026-10-02'"));
    assert!(read.contains("typed/events/dt=2026-10-02/") && read.contains("__payload_read_1"), "{read}");

    let status: Value = serde_json::from_slice(&run_ok(sediment().args(["status", "--json", "--config"]).arg(&config)).stdout).unwrap();
    let typed = &status["typed_tables"]["tables"];
    assert!(typed.as_array().unwrap().iter().any(|t| t["name"] == "payments" && t["event_type"] == "PaymentReceived"), "{typed}");

    // A hot value the curated shape cannot hold fails the query, naming the field.
    ingest("bad.ndjson", &[event("p2", "PaymentReceived", 1, 3, json!({"amount": "lots"}))]);
    let out = sediment().args(["query", "--config"]).arg(&config).arg("SELECT sum(amount) FROM payments").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("payload field \"amount\"") && err.contains("\"lots\" is not bigint"), "{err}");
    // Compacting the day widens the shape: the value is then JSON text.
    run_ok(sediment().args(["compact", "--all", "--config"]).arg(&config));
    let amounts = vec![json!(["p1", "5"]), json!(["p2", "\"lots\""])];
    assert_eq!(rows(&config, "SELECT event_id, amount FROM payments ORDER BY event_id"), amounts);
    // Recompaction replaces the copies; vacuum deletes the replaced ones.
    run_ok(sediment().args(["compact", "--all", "--rebuild", "--config"]).arg(&config));
    let out = run_ok(sediment().args(["vacuum", "--retain", "0s", "--config"]).arg(&config));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(", 5 stale typed files"), "{printed}");
    assert_eq!(rows(&config, "SELECT event_id, amount FROM payments ORDER BY event_id"), amounts);
    assert_eq!(rows(&config, "SELECT count(*), sum(total) FROM order_placed WHERE dt < DATE '2026-10-03'"), vec![json!([3, 23.5])]);
}
