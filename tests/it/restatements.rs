//! Late events restate published snapshots and view days: `sediment_restatements`
//! holds exactly the changed (table, day, aggregate) rows — equal to a diff of
//! the derived tables before and after — with the late events that caused them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use crate::support::{generate, root, run_ok, sediment};

fn query(config: &Path, sql: &str) -> Value {
    let out = run_ok(sediment().args(["query", "--format", "json", "--config"]).arg(config).arg(sql));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rows(config: &Path, sql: &str) -> Vec<Vec<Value>> {
    query(config, sql)["rows"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().clone()).collect()
}

/// A derived table as (day, key) → row; keyed by `aggregate_id` when the
/// table has one, else by the row itself (a multiset: the count is the value).
fn table(config: &Path, name: &str) -> BTreeMap<(String, String), String> {
    let v = query(config, &format!("SELECT * FROM {name}"));
    let cols: Vec<&str> = v["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    let key = cols.iter().position(|c| *c == "aggregate_id");
    let mut out: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in v["rows"].as_array().unwrap() {
        let r = r.as_array().unwrap();
        let day = r[0].as_str().unwrap().to_owned();
        match key {
            Some(k) => {
                out.insert((day, r[k].as_str().unwrap().to_owned()), Value::Array(r.clone()).to_string());
            }
            None => {
                let n = out.entry((day, Value::Array(r.clone()).to_string())).or_insert_with(|| "0".into());
                *n = (n.parse::<u64>().unwrap() + 1).to_string();
            }
        }
    }
    out
}

/// (table, day, aggregate id or "", change) of every difference.
fn expected(
    name: &str,
    keyed: bool,
    before: &BTreeMap<(String, String), String>,
    after: &BTreeMap<(String, String), String>,
) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let keys: BTreeSet<&(String, String)> = before.keys().chain(after.keys()).collect();
    for k in keys {
        let (b, a) = (before.get(k), after.get(k));
        let id = if keyed { k.1.clone() } else { String::new() };
        let push = |out: &mut Vec<_>, change: &str, n: u64| {
            for _ in 0..n {
                out.push((name.to_owned(), k.0.clone(), id.clone(), change.to_owned()));
            }
        };
        if keyed {
            match (b, a) {
                (Some(x), Some(y)) if x != y => push(&mut out, "updated", 1),
                (Some(_), None) => push(&mut out, "removed", 1),
                (None, Some(_)) => push(&mut out, "added", 1),
                _ => {}
            }
        } else {
            let count = |v: Option<&String>| v.map_or(0, |n| n.parse::<u64>().unwrap());
            let (nb, na) = (count(b), count(a));
            push(&mut out, "removed", nb.saturating_sub(na));
            push(&mut out, "added", na.saturating_sub(nb));
        }
    }
    out
}

#[test]
fn late_events_restate_exactly_the_changed_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let config = dir.path().join("sediment.toml");
    let sample = std::fs::read_to_string(root().join("examples/sediment.toml")).unwrap();
    std::fs::write(&config, format!("[lake]\nurl = \"{}\"\n{sample}", lake.display())).unwrap();
    let main = dir.path().join("main.ndjson");
    generate(&main, &["--events", "6000", "--days", "4", "--start", "2026-10-05", "--seed", "8181"]);
    run_ok(sediment().args(["ingest", "--config"]).arg(&config).arg("--input").arg(&main));
    run_ok(sediment().args(["compact", "--all", "--config"]).arg(&config));
    assert_eq!(rows(&config, "SELECT count(*) FROM sediment_restatements")[0][0], 0, "first builds restate nothing");

    let tables = [("orders", true), ("products", true), ("customers", true), ("daily_revenue", false), ("daily_funnel", false)];
    let before: Vec<_> = tables.iter().map(|(t, _)| table(&config, t)).collect();

    // Late events: three orders of 2026-10-06 ship (and one pays), and an
    // order nobody saw before is placed on 2026-10-07.
    let late_orders = rows(
        &config,
        "SELECT aggregate_id FROM events WHERE aggregate_type = 'Order' AND dt = DATE '2026-10-06' GROUP BY aggregate_id ORDER BY aggregate_id LIMIT 3",
    );
    let ids: Vec<String> = late_orders.iter().map(|r| r[0].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 3);
    let mut late = String::new();
    let mut late_ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let eid = format!("late-ship-{i}");
        late.push_str(&format!(
            "{}\n",
            json!({"event_id": eid, "event_type": "OrderShipped", "aggregate_type": "Order", "aggregate_id": id,
            "sequence": 9000 + i, "occurred_at": "2026-10-06T23:00:00Z", "payload": {"carrier": "late-carrier"}})
        ));
        late_ids.entry(id.clone()).or_default().push(eid);
    }
    late.push_str(&format!(
        "{}\n",
        json!({"event_id": "late-pay", "event_type": "PaymentReceived", "aggregate_type": "Order",
        "aggregate_id": ids[0], "sequence": 9100, "occurred_at": "2026-10-06T23:30:00Z", "payload": {"amount": 1.5}})
    ));
    late_ids.get_mut(&ids[0]).unwrap().push("late-pay".into());
    late.push_str(&format!(
        "{}\n",
        json!({"event_id": "late-new", "event_type": "OrderPlaced", "aggregate_type": "Order",
        "aggregate_id": "o-late-new", "sequence": 1, "occurred_at": "2026-10-07T08:00:00Z", "payload": {"status": "placed", "total": 10.0}})
    ));
    late_ids.insert("o-late-new".into(), vec!["late-new".into()]);
    let late_path = dir.path().join("late.ndjson");
    std::fs::write(&late_path, late).unwrap();
    run_ok(sediment().args(["ingest", "--config"]).arg(&config).arg("--input").arg(&late_path));
    let out = run_ok(sediment().args(["compact", "--all", "--config"]).arg(&config));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();

    let mut want = Vec::new();
    for (i, (t, keyed)) in tables.iter().enumerate() {
        want.extend(expected(t, *keyed, &before[i], &table(&config, t)));
    }
    want.sort();
    let got_rows = rows(
        &config,
        "SELECT table_name, CAST(snapshot_date AS varchar), coalesce(aggregate_id, ''), change, late_event_ids, cause \
         FROM sediment_restatements ORDER BY 1, 2, 3, 4",
    );
    let mut got: Vec<(String, String, String, String)> = got_rows
        .iter()
        .map(|r| {
            (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into(), r[2].as_str().unwrap().into(), r[3].as_str().unwrap().into())
        })
        .collect();
    got.sort();
    // The views hold no aggregate id: their rows restate as whole rows.
    let strip = |v: &[(String, String, String, String)]| -> Vec<(String, String, String, String)> {
        v.iter()
            .map(|(t, d, k, c)| (t.clone(), d.clone(), if t.starts_with("daily_") { String::new() } else { k.clone() }, c.clone()))
            .collect()
    };
    assert_eq!(strip(&got), strip(&want), "restatements differ from the diff of the tables");
    assert!(report.contains(&format!("restated {} published row(s)", want.len())), "{report}");
    assert!(want.iter().any(|w| w.0 == "orders" && w.1 == "2026-10-06" && w.3 == "updated"), "{want:?}");
    assert!(want.iter().any(|w| w.0 == "orders" && w.1 == "2026-10-08" && w.2 == "o-late-new" && w.3 == "added"), "{want:?}");
    assert!(want.iter().any(|w| w.0 == "daily_revenue" && w.1 == "2026-10-06"), "{want:?}");
    assert!(!want.iter().any(|w| w.0 == "products" || w.0 == "customers" || w.1 == "2026-10-05"), "{want:?}");

    // Each changed order names its own late events.
    for r in &got_rows {
        if r[0] == "orders" {
            let agg = r[2].as_str().unwrap();
            // Arrays render as Trino prints them: `[a, b]`.
            let text = r[4].as_str().unwrap_or_else(|| panic!("{r:?}"));
            let named: BTreeSet<&str> = text.trim_matches(['[', ']']).split(", ").filter(|s| !s.is_empty()).collect();
            let own: BTreeSet<&str> = late_ids[agg].iter().map(String::as_str).collect();
            assert_eq!(named, own, "{r:?}");
            assert!(r[5].as_str().unwrap().contains("late event(s) of 2026-10-06") || agg == "o-late-new", "{r:?}");
        }
    }

    // Nothing new: nothing restated again.
    run_ok(sediment().args(["compact", "--all", "--config"]).arg(&config));
    assert_eq!(rows(&config, "SELECT count(*) FROM sediment_restatements")[0][0], json!(got.len()));
}
