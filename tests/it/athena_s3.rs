//! Athena clients that fetch results from S3 — PyAthena's cursors and
//! awswrangler — against `sediment serve` on a moto S3 lake with compacted
//! and hot days, checked against a DuckDB oracle over the same events.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Moto, Server, free_port, generate, python, root, run_ok, sediment, wait_for_port};

#[test]
fn s3_result_clients_get_athena_frames() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    moto.create_bucket("results");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sediment.toml");
    let sample = std::fs::read_to_string(root().join("examples/sediment.toml")).unwrap();
    std::fs::write(&config, format!("[lake]\nurl = \"s3://lake/athena\"\n{sample}")).unwrap();
    let cold = dir.path().join("cold.ndjson");
    generate(&cold, &["--events", "4000", "--days", "3", "--start", "2026-10-05", "--seed", "31", "--duplicates", "0.02"]);
    run_ok(sediment().envs(moto.env()).args(["ingest", "--config"]).arg(&config).arg("--input").arg(&cold));
    run_ok(sediment().envs(moto.env()).args(["compact", "--all", "--config"]).arg(&config));
    let hot = dir.path().join("hot.ndjson");
    generate(&hot, &["--events", "600", "--days", "1", "--start", "2026-10-08", "--seed", "32"]);
    run_ok(sediment().envs(moto.env()).args(["ingest", "--config"]).arg(&config).arg("--input").arg(&hot));

    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sediment"))
        .envs(moto.env())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server { child, port };
    wait_for_port(port, Duration::from_secs(30));
    let out = python(
        "athena_s3.py",
        &[&format!("http://127.0.0.1:{port}"), &moto.endpoint(), cold.to_str().unwrap(), hot.to_str().unwrap()],
        &moto.env(),
    );
    assert!(out.contains("\"problems\": []"), "{out}");
}
