//! Postgres clients (psql, psycopg, SQLAlchemy, pandas, the statements BI
//! tools send) against `sediment serve --pg-listen`, and the ADBC Flight SQL
//! driver against `--flight-listen`, on a demo lake.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Server, free_port, python, run_ok, sediment, wait_for_port};

#[test]
fn postgres_and_flight_clients_get_the_lakes_answers() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    run_ok(sediment().args(["demo", "--no-serve", "--events", "20000", "--days", "5", "--dir"]).arg(&demo));
    let key = "pg-test-key-3b1f";
    let config = demo.join("sediment.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // A self-signed certificate: the Postgres door offers TLS, the Flight
    // SQL door serves only TLS.
    python("make_cert.py", &[dir.path().to_str().unwrap()], &[]);
    let (cert, tls_key) = (dir.path().join("cert.pem").display().to_string(), dir.path().join("key.pem").display().to_string());
    std::fs::write(
        &config,
        format!(
            "{text}\n[query]\napi_keys = [\"{key}\"]\npg_tls_cert = {cert:?}\npg_tls_key = {tls_key:?}\n\
             flight_tls_cert = {cert:?}\nflight_tls_key = {tls_key:?}\n"
        ),
    )
    .unwrap();
    let (http, pg, flight) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_sediment"))
        .args(["serve", "--listen", &format!("127.0.0.1:{http}"), "--pg-listen", &format!("127.0.0.1:{pg}")])
        .args(["--flight-listen", &format!("127.0.0.1:{flight}"), "--config"])
        .arg(&config)
        .env("SEDIMENT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _server = Server { child, port: http };
    wait_for_port(http, Duration::from_secs(30));
    wait_for_port(pg, Duration::from_secs(30));
    wait_for_port(flight, Duration::from_secs(30));
    let events = demo.join("events.ndjson");
    let out = python("pg_clients.py", &["127.0.0.1", &pg.to_string(), key, events.to_str().unwrap()], &[]);
    assert!(out.contains("\"problems\": []"), "{out}");
    let out = python("flight_clients.py", &["127.0.0.1", &flight.to_string(), key, events.to_str().unwrap(), &cert], &[]);
    assert!(out.contains("\"problems\": []") && out.contains("\"tls\": true"), "{out}");
}
