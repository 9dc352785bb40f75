//! No query takes the service down: a hostile corpus through REST and the
//! Athena API, concurrent cancels and a runaway query under load, against
//! the real `sediment serve` with keys, a short timeout and a 512 MiB pool.
//! The process must live through it with its peak resident size under the
//! documented bound, and still count `events` right.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Server, free_port, python, run_ok, sediment, wait_for_port};

/// `query.memory_limit_mb` of the server under test.
const MEMORY_LIMIT_MB: u64 = 512;
/// Resident memory beyond the pool that the README documents (code,
/// allocator, runtimes, caches, results in flight).
const OVERHEAD_MB: u64 = 256;

/// Peak resident size of a process, from `/proc/<pid>/status` (VmHWM).
fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

#[test]
fn hostile_queries_get_clear_answers_and_the_server_lives() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    run_ok(sediment().args(["demo", "--no-serve", "--events", "20000", "--days", "3", "--dir"]).arg(&demo));
    let base = std::fs::read_to_string(demo.join("sediment.toml")).unwrap();
    let key = "hostile-test-key";
    let config = demo.join("hostile.toml");
    let (lake, rest) = base.split_once("\n\n").unwrap();
    std::fs::write(
        &config,
        format!(
            "{lake}\n\n[query]\napi_keys = [\"{key}\"]\ntimeout = \"4s\"\nmemory_limit_mb = {MEMORY_LIMIT_MB}\nmax_concurrency = 4\n\n{rest}"
        ),
    )
    .unwrap();
    let counted = run_ok(sediment().args(["query", "--format", "csv", "--config"]).arg(&config).arg("SELECT count(*) FROM events"));
    let events: u64 = String::from_utf8_lossy(&counted.stdout).lines().nth(1).unwrap().trim_matches('"').parse().unwrap();

    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sediment"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&config)
        .env("SEDIMENT_LOG", "warn,sediment::query=off")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut server = Server { child, port };
    wait_for_port(port, Duration::from_secs(30));
    let out = python("hostile.py", &[&format!("http://127.0.0.1:{port}"), key, &events.to_string(), "4", &pid.to_string()], &[]);
    let alive = server.child.try_wait().unwrap().is_none();
    let peak = peak_rss_mb(pid);
    eprintln!("hostile corpus: {out}; peak RSS {peak} MiB");
    assert!(alive, "the server died");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["problems"], serde_json::json!([]), "{out}");
    assert!(peak < MEMORY_LIMIT_MB + OVERHEAD_MB, "peak RSS {peak} MiB over {MEMORY_LIMIT_MB} + {OVERHEAD_MB} MiB");
}

#[test]
fn a_location_without_a_lake_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-lake");
    for args in [vec!["query", "SELECT count(*) FROM events"], vec!["status"], vec!["verify"], vec!["compact", "--all"]] {
        let out = sediment().args(&args).arg("--lake").arg(&missing).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded on a missing lake");
        assert!(stderr.contains("no lake at") && stderr.contains("no-such-lake"), "{args:?}: {stderr}");
        assert!(!missing.exists(), "{args:?} created the directory");
    }
    // An empty directory is no lake either; serve refuses it too.
    std::fs::create_dir_all(&missing).unwrap();
    let out = sediment().args(["serve", "--listen", "127.0.0.1:0", "--lake"]).arg(&missing).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no lake at"));
    // Ingest creates one, and then it answers.
    run_ok(sediment().args(["ingest", "--input", "/dev/null", "--lake"]).arg(&missing));
    let out = run_ok(sediment().args(["query", "--format", "csv", "--lake"]).arg(&missing).arg("SELECT count(*) FROM events"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().nth(1), Some("\"0\""));
}
