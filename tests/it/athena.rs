//! boto3 and PyAthena against `sediment serve` on a demo lake.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Server, free_port, python, run_ok, sediment, wait_for_port};

#[test]
fn athena_clients_get_athena_answers() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    run_ok(sediment().args(["demo", "--no-serve", "--events", "20000", "--days", "5", "--dir"]).arg(&demo));
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sediment"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(demo.join("sediment.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _server = Server { child, port };
    wait_for_port(port, Duration::from_secs(30));
    let out = python(
        "athena_clients.py",
        &[&format!("http://127.0.0.1:{port}"), demo.join("lake").to_str().unwrap(), demo.join("events.ndjson").to_str().unwrap()],
        &[],
    );
    assert!(out.contains("\"problems\": []"), "{out}");
    let _ = Command::new("true").status();
}
