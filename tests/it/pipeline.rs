//! The pipeline on an S3-compatible server: ingest, compact, late arrivals,
//! idempotent re-runs, verify — checked by Python `deltalake` against answers
//! computed from the NDJSON alone.

use std::path::Path;

use crate::support::{Moto, generate, python, root, run_ok, sediment};

fn status_version(moto: &Moto, config: &Path) -> Option<i64> {
    let out = run_ok(sediment().envs(moto.env()).args(["status", "--json", "--config"]).arg(config));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["events_version"].as_i64()
}

fn query_json(moto: &Moto, config: &Path, sql: &str) -> serde_json::Value {
    let out = run_ok(sediment().envs(moto.env()).args(["query", "--format", "json", "--config"]).arg(config).arg(sql));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn compaction_is_exactly_once_idempotent_and_handles_late_data() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let lake = "s3://lake/pipeline";
    let config = dir.path().join("sediment.toml");
    let sample = std::fs::read_to_string(root().join("examples/sediment.toml")).unwrap();
    std::fs::write(&config, format!("[lake]\nurl = \"{lake}\"\n[ingest]\ncli_batch_events = 2000\n{sample}")).unwrap();

    let main = dir.path().join("main.ndjson");
    generate(
        &main,
        &["--events", "15000", "--days", "4", "--start", "2026-10-05", "--seed", "5151", "--duplicates", "0.03", "--malformed", "0.01"],
    );
    run_ok(sediment().envs(moto.env()).args(["ingest", "--config"]).arg(&config).arg("--input").arg(&main));

    // Before compaction, SQL already sees every event exactly once.
    let before = query_json(&moto, &config, "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events");
    assert_eq!(before["rows"][0][0], before["rows"][0][1], "{before}");

    let out = run_ok(sediment().envs(moto.env()).args(["compact", "--all", "--config"]).arg(&config));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("compacted 4 day(s)"), "{text}");
    let after = query_json(&moto, &config, "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events");
    assert_eq!(before["rows"], after["rows"], "compaction changed what SQL sees");

    // A second run with nothing new commits nothing.
    let version = status_version(&moto, &config);
    let out = run_ok(sediment().envs(moto.env()).args(["compact", "--all", "--config"]).arg(&config));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("compacted 0 day(s)") && text.contains("rebuilt 0 derived"), "{text}");
    assert_eq!(status_version(&moto, &config), version, "the Delta version moved");

    let check = python("check_lake.py", &[lake, "2026-10-06", main.to_str().unwrap()], &moto.env());
    assert!(check.contains("\"problems\": []"), "{check}");

    // Late data for an already compacted day: visible at once, exactly once.
    let late = dir.path().join("late.ndjson");
    generate(&late, &["--events", "800", "--days", "1", "--start", "2026-10-06", "--seed", "77", "--duplicates", "0.05"]);
    run_ok(sediment().envs(moto.env()).args(["ingest", "--config"]).arg(&config).arg("--input").arg(&late));
    // …and replaying the main input again lands on existing keys (nothing new).
    run_ok(sediment().envs(moto.env()).args(["ingest", "--config"]).arg(&config).arg("--input").arg(&main));
    let status = run_ok(sediment().envs(moto.env()).args(["status", "--config"]).arg(&config));
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("2026-10-06  dirty"), "{status}");
    let hot = query_json(&moto, &config, "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events WHERE dt = DATE '2026-10-06'");
    assert_eq!(hot["rows"][0][0], hot["rows"][0][1], "{hot}");

    let out = run_ok(sediment().envs(moto.env()).args(["compact", "--all", "--config"]).arg(&config));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("compacted 1 day(s)"), "{text}");
    let cold = query_json(&moto, &config, "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events WHERE dt = DATE '2026-10-06'");
    assert_eq!(hot["rows"], cold["rows"], "recompaction changed the late day");

    run_ok(sediment().envs(moto.env()).args(["verify", "--config"]).arg(&config));
    for asof in ["2026-10-06", "2026-10-08"] {
        let check = python("check_lake.py", &[lake, asof, main.to_str().unwrap(), late.to_str().unwrap()], &moto.env());
        assert!(check.contains("\"problems\": []"), "as of {asof}: {check}");
    }

    // Current state folded at query time equals the last snapshot when all is compacted.
    let current = query_json(&moto, &config, "SELECT count(*), sum(items), sum(payments) FROM orders_current");
    let snap = query_json(&moto, &config, "SELECT count(*), sum(items), sum(payments) FROM orders WHERE snapshot_date = DATE '2026-10-08'");
    assert_eq!(current["rows"], snap["rows"]);

    // Vacuum: raw files a commit covers and table files no snapshot uses
    // go; raw files of a day not compacted yet stay; SQL, verify and the
    // independent reader see the same lake as before.
    let fresh = dir.path().join("fresh.ndjson");
    generate(&fresh, &["--events", "300", "--days", "1", "--start", "2026-10-09", "--seed", "91"]);
    run_ok(sediment().envs(moto.env()).args(["ingest", "--config"]).arg(&config).arg("--input").arg(&fresh));
    let all = "SELECT dt, count(*) AS n, count(DISTINCT event_id) AS d FROM events GROUP BY dt ORDER BY dt";
    let before = query_json(&moto, &config, all);
    let vacuum = |retain: &str| {
        let out = run_ok(sediment().envs(moto.env()).args(["vacuum", "--retain", retain, "--config"]).arg(&config));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let n = |what: &str| -> u64 {
            let at = text.find(what).unwrap_or_else(|| panic!("{what:?} in {text}"));
            text[..at].split_whitespace().last().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("count before {what:?} in {text}"))
        };
        (n("covered raw files"), n("unreferenced table files"), text)
    };
    let (raw, table, text) = vacuum("7d");
    assert_eq!((raw, table), (0, 0), "files younger than the retention were deleted: {text}");
    let (raw, table, text) = vacuum("0s");
    assert!(raw > 0 && table > 0, "{text}");
    let after = query_json(&moto, &config, all);
    assert_eq!(before["rows"], after["rows"], "vacuum changed what SQL sees");
    assert_eq!(after["rows"].as_array().unwrap().len(), 5, "the uncompacted day is gone: {after}");
    run_ok(sediment().envs(moto.env()).args(["verify", "--config"]).arg(&config));
    let check = python("check_lake.py", &[lake, "2026-10-08", main.to_str().unwrap(), late.to_str().unwrap()], &moto.env());
    assert!(check.contains("\"problems\": []"), "after vacuum: {check}");
    let (raw, _, text) = vacuum("0s");
    assert_eq!(raw, 0, "{text}");
    // The day not yet compacted still compacts from its raw files.
    let out = run_ok(sediment().envs(moto.env()).args(["compact", "--all", "--config"]).arg(&config));
    assert!(String::from_utf8_lossy(&out.stdout).contains("compacted 1 day(s)"));
    assert_eq!(query_json(&moto, &config, all)["rows"], before["rows"]);
}

/// A lake whose days were compacted before manifests recorded counts (the
/// counts removed from one day's manifest here) counts from the files, and
/// every grouped count still equals a count of a non-null column, which no
/// rewrite touches (ADR 0010).
#[test]
fn counts_are_exact_with_and_without_manifest_counts() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    run_ok(sediment().args(["demo", "--no-serve", "--events", "3000", "--days", "3", "--dir"]).arg(&demo));
    let lake = demo.join("lake");
    let query = |sql: &str| {
        let out = run_ok(sediment().args(["query", "--format", "csv", "--lake"]).arg(&lake).arg(sql));
        String::from_utf8(out.stdout).unwrap()
    };
    let grouped = "SELECT dt, event_type, aggregate_type, count(*) FROM events GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let oracle = "SELECT dt, event_type, aggregate_type, count(event_id) FROM events GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let total = "SELECT count(*) FROM events";
    let total_oracle = "SELECT count(event_id) FROM events";
    let header = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    let (expected, expected_total) = (header(&query(oracle)), header(&query(total_oracle)));
    assert!(expected.lines().count() > 3, "{expected}");
    assert!(query(&format!("EXPLAIN {grouped}")).contains("__rows"), "the counts are not taken from the manifests");
    assert_eq!(header(&query(grouped)), expected);
    assert_eq!(header(&query(total)), expected_total);

    // Counts taken out of every manifest that has them.
    let mut stripped = 0;
    for day in std::fs::read_dir(lake.join("_manifests/events")).unwrap() {
        for file in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if m.as_object_mut().unwrap().remove("counts").is_some() {
                stripped += 1;
            }
            std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        }
    }
    assert!(stripped > 0, "no manifest had counts");
    assert_eq!(header(&query(grouped)), expected);
    assert_eq!(header(&query(total)), expected_total);
}
