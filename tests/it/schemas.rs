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
    let ingest = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.concat()).unwrap();
        run_ok(sediment().args(["ingest", "--config"]).arg(&config).arg("--input").arg(&path));
    };
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
    run_ok(sediment().args(["compact", "--all", "--config"]).arg(&config));
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
