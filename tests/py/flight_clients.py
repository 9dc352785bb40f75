"""The ADBC Flight SQL driver (PyPI) against `sediment serve --flight-listen`:
statements, prepared statements with bound parameters, catalog metadata, a
bearer key and a Basic handshake, a wrong key refused. Answers are checked
against DuckDB over the NDJSON the lake was built from.

usage: flight_clients.py HOST PORT API_KEY EVENTS.ndjson [CERT.pem]

With CERT.pem (the server's self-signed certificate) every connection is
gRPC over TLS that trusts it, and a plaintext connection must fail.
"""
import json
import os
import sys
import threading
import time

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa
from adbc_driver_flightsql import DatabaseOptions

sys.path.insert(0, os.path.dirname(__file__))
from lake_oracle import counts, events_oracle  # noqa: E402

host, port, key, events_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cert = open(sys.argv[5]).read() if len(sys.argv) > 5 else None
uri = f"grpc+tls://{host}:{port}" if cert else f"grpc://{host}:{port}"
# Every connection trusts the certificate when there is one.
tls = {DatabaseOptions.TLS_ROOT_CERTS.value: cert} if cert else {}
problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)


duck = events_oracle(events_path)
per_day, per_type = counts(duck)
bearer = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {key}", **tls}

with flight_sql.connect(uri, db_kwargs=bearer) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT dt, count(*) AS n, min(occurred_at) AS first_at FROM events GROUP BY dt ORDER BY dt")
        table = cur.fetch_arrow_table()
        check(table.schema.field("dt").type == pa.date32() and table.schema.field("n").type == pa.int64()
              and pa.types.is_timestamp(table.schema.field("first_at").type), f"types {table.schema}")
        got = dict(zip(table.column("dt").to_pylist(), table.column("n").to_pylist()))
        check(got == per_day, f"per-day counts {got} != {per_day}")
        # Trino's dialect at this door too.
        cur.execute("SELECT 7 / 2 AS q, transform(ARRAY[1, 2], x -> x * 10) AS a")
        check(cur.fetchall() == [(3, [10, 20])], "Trino semantics")
        # Prepared statements: parameters bound through DoPut, typed by the planner.
        days = sorted(per_day)
        etype = sorted(per_type)[0]
        for d in days[:2]:
            cur.execute("SELECT count(*) AS n FROM events WHERE event_type = ? AND dt = ?", parameters=(etype, d))
            want = duck.execute("SELECT count(*) FROM ev WHERE event_type = ? AND dt = ?", [etype, d]).fetchone()[0]
            got = cur.fetchone()[0]
            check(got == want, f"bound count {etype} {d}: {got} != {want}")
        try:
            cur.execute("INSERT INTO events (event_id) VALUES ('x')")
            check(False, "a write was accepted")
        except Exception as e:  # noqa: BLE001 - the driver's error classes vary by version
            check("read-only" in str(e), f"write refusal: {e}")
    # Catalog metadata.
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    names = {t["table_name"] for c in objects for s in (c["catalog_db_schemas"] or []) for t in (s["db_schema_tables"] or [])}
    check({"events", "orders", "orders_current", "payment_received"} <= names, f"tables {sorted(names)}")
    typed = conn.adbc_get_table_schema("payment_received")
    check(str(typed.field("amount").type) == "double" and "payload" in typed.names, f"payment_received schema {typed}")
    schema = conn.adbc_get_table_schema("events")
    check({"event_id", "event_type", "dt"} <= set(schema.names), f"events schema {schema}")
    check(set(conn.adbc_get_table_types()) == {"TABLE", "VIEW"}, "table types")

# Cancel: the driver cancels its GetFlightInfo call, which cancels the query.
SLOW = "SELECT count(*) FROM events a CROSS JOIN events b CROSS JOIN events c WHERE a.sequence + b.sequence + c.sequence < 0"
with flight_sql.connect(uri, db_kwargs=bearer) as conn:
    with conn.cursor() as cur:
        timer = threading.Timer(1.0, cur.adbc_cancel)
        timer.start()
        started = time.monotonic()
        try:
            cur.execute(SLOW)
            check(False, "the slow query finished")
        except Exception as e:  # noqa: BLE001
            took = time.monotonic() - started
            check(took < 10 and "cancel" in str(e).lower(), f"cancel: {took:.1f}s {e}")
        timer.join()
    # Its slot is back: the server answers (max_concurrency slots, none held).
    for _ in range(6):
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM events")
            check(cur.fetchone()[0] == sum(per_day.values()), "after cancel")

# A Basic handshake with the key as the password.
with flight_sql.connect(uri, db_kwargs={"username": "analyst", "password": key, **tls}) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events")
        check(cur.fetchone()[0] == sum(per_day.values()), "count after a handshake")

# A wrong key is refused.
for kwargs in ({DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer wrong"}, {"username": "a", "password": "wrong"}):
    try:
        with flight_sql.connect(uri, db_kwargs={**kwargs, **tls}) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
        check(False, f"a wrong key was accepted ({list(kwargs)})")
    except Exception as e:  # noqa: BLE001
        check("unauthenticated" in str(e).lower() or "api key" in str(e).lower(), f"wrong key: {e}")

# With TLS on, plaintext gRPC gets no answer (not even to a right key).
if cert:
    try:
        with flight_sql.connect(f"grpc://{host}:{port}", db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {key}"}) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
        check(False, "plaintext gRPC was answered by a TLS door")
    except Exception:  # noqa: BLE001
        pass

print(json.dumps({"problems": problems, "tls": bool(cert)}, indent=1, default=str))
