//! Ingest through the real binary into an S3-compatible server.

use crate::support::{Moto, generate, python, run_ok, sediment};

fn summary_numbers(stdout: &str) -> (u64, u64, u64, u64, u64) {
    // "stored N events in F files (W written, E already present), quarantined Q, failed X, …"
    let nums: Vec<u64> =
        stdout.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).take(6).map(|s| s.parse().unwrap()).collect();
    (nums[0], nums[2], nums[3], nums[4], nums[5])
}

#[test]
fn ingest_to_s3_is_complete_deterministic_and_checked_by_pyarrow() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    // A seed no other test uses, with duplicates and malformed lines.
    generate(&input, &["--events", "12000", "--days", "3", "--seed", "9173", "--duplicates", "0.04", "--malformed", "0.02"]);
    let lines = std::fs::read_to_string(&input).unwrap().lines().filter(|l| !l.trim().is_empty()).count() as u64;
    let lake = "s3://lake/prod";
    // Small batches so many files and positions are exercised.
    let config = dir.path().join("sediment.toml");
    std::fs::write(&config, "[ingest]\ncli_batch_events = 1500\n").unwrap();

    let first = run_ok(sediment().envs(moto.env()).args(["ingest", "--lake", lake, "--config"]).arg(&config).arg("--input").arg(&input));
    let first = String::from_utf8_lossy(&first.stdout).into_owned();
    let (stored, written, present, quarantined, failed) = summary_numbers(&first);
    assert_eq!(stored + quarantined + failed, lines, "input = stored + quarantined + failed: {first}");
    assert_eq!((present, failed), (0, 0), "{first}");
    assert!(quarantined > 0 && written > 0, "{first}");

    // An independent reader agrees with every field.
    let report = python("check_raw.py", &[input.to_str().unwrap(), lake], &moto.env());
    let v: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(v["raw_rows"].as_u64(), Some(stored), "{report}");
    assert_eq!(v["quarantined"].as_u64(), Some(quarantined), "{report}");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{report}");

    // The same input again lands on the same keys and writes nothing.
    let again = run_ok(sediment().envs(moto.env()).args(["ingest", "--lake", lake, "--config"]).arg(&config).arg("--input").arg(&input));
    let again = String::from_utf8_lossy(&again.stdout).into_owned();
    let (stored2, written2, present2, quarantined2, _) = summary_numbers(&again);
    assert_eq!((stored2, written2, present2, quarantined2), (stored, 0, written, quarantined), "{again}");
    let report2 = python("check_raw.py", &[input.to_str().unwrap(), lake], &moto.env());
    assert_eq!(report, report2, "a replay changed the lake");
}
