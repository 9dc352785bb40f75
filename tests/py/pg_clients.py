"""Real Postgres clients against `sediment serve --pg-listen`: Debian's psql,
psycopg (parameters, prepared statements, cancel, statement_timeout),
SQLAlchemy's postgres dialect (the inspector Superset browses with) and
pandas.read_sql, and the statements Metabase, Grafana, DBeaver, psql and
pgcli send when they connect and browse. Answers are checked against DuckDB
over the NDJSON the lake was built from.

usage: pg_clients.py HOST PORT API_KEY EVENTS.ndjson
"""
import json
import os
import subprocess
import sys
import threading
import time
from datetime import date, datetime

import pandas as pd
import psycopg
import sqlalchemy

sys.path.insert(0, os.path.dirname(__file__))
from lake_oracle import counts, events_oracle  # noqa: E402

host, port, key, events_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)


duck = events_oracle(events_path)
per_day, per_type = counts(duck)
check(len(per_day) >= 3 and len(per_type) >= 3, f"oracle too small: {per_day} {per_type}")

# 1. psql (simple protocol): \dt, \d events, a query; a wrong key refused.
conninfo = f"host={host} port={port} dbname=sediment user=analyst"


def psql(*args, password=key):
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
    return subprocess.run(["psql", conninfo, "-X", "-v", "ON_ERROR_STOP=1", *args],
                          env=env, capture_output=True, text=True, timeout=120)


# Snapshot tables are tables; `events` and the `_current` states, read
# through the coverage manifests, are views (as in information_schema).
r = psql("-c", r"\dt")
check(r.returncode == 0 and " orders " in r.stdout and "daily_revenue" in r.stdout, f"psql \\dt: {r.returncode} {r.stdout} {r.stderr}")
r = psql("-c", r"\dv")
check(r.returncode == 0 and " events " in r.stdout and "orders_current" in r.stdout, f"psql \\dv: {r.returncode} {r.stdout} {r.stderr}")
check(" payment_received " in r.stdout, f"psql \\dv lists the typed tables: {r.stdout}")
r = psql("-c", r"\d events")
check(r.returncode == 0 and all(c in r.stdout for c in ("event_id", "aggregate_id", "occurred_at", "dt")),
      f"psql \\d events: {r.returncode} {r.stdout} {r.stderr}")
r = psql("-A", "-t", "-F", "|", "-c", "SELECT dt, count(*) FROM events GROUP BY dt ORDER BY dt")
got = {}
for row in r.stdout.split("\n"):
    if "|" in row:
        d, n = row.split("|")
        got[date.fromisoformat(d)] = int(n)
check(r.returncode == 0 and got == per_day, f"psql per-day counts: {got} != {per_day} ({r.stderr})")
r = psql("-c", "SELECT 1", password="not-a-key")
check(r.returncode != 0 and "password" in r.stderr.lower(), f"a wrong key was not refused: {r.returncode} {r.stderr}")

# 2. psycopg: typed parameters (extended protocol), prepared statements,
# result types, transactions, read-only, cancel and statement_timeout.
dsn = dict(host=host, port=port, dbname="sediment", user="analyst", password=key)
try:
    psycopg.connect(**{**dsn, "password": "wrong"}, connect_timeout=10)
    check(False, "psycopg connected with a wrong key")
except psycopg.OperationalError as e:
    check("password" in str(e).lower(), f"wrong key: {e}")

# TLS, offered because the server has a certificate (psql and psycopg
# prefer it by default, so everything here runs over it); plain still works.
with psycopg.connect(**dsn, sslmode="require") as c:
    check(c.pgconn.ssl_in_use and c.execute("SELECT 1").fetchone() == (1,), "TLS")
with psycopg.connect(**dsn, sslmode="disable") as c:
    check(not c.pgconn.ssl_in_use and c.execute("SELECT 1").fetchone() == (1,), "plain")

conn = psycopg.connect(**dsn, autocommit=True)
days = sorted(per_day)
etype = sorted(per_type)[0]
with conn.cursor() as cur:
    for d in days[:3]:
        cur.execute("SELECT count(*) FROM events WHERE dt = %s AND event_type = %s", (d, etype))
        want = duck.execute("SELECT count(*) FROM ev WHERE dt = ? AND event_type = ?", [d, etype]).fetchone()[0]
        got = cur.fetchone()[0]
        check(got == want, f"count on {d} for {etype}: {got} != {want}")
    # A named server-side prepared statement, executed again with new values.
    for d, s in ((days[0], 1), (days[1], 3), (days[0], 2)):
        cur.execute("SELECT count(*) AS n FROM events WHERE dt = %s AND sequence >= %s", (d, s), prepare=True)
        want = duck.execute("SELECT count(*) FROM ev WHERE dt = ? AND sequence >= ?", [d, s]).fetchone()[0]
        got = cur.fetchone()[0]
        check(got == want, f"prepared count {d} seq>={s}: {got} != {want}")
    # A text parameter compared with a column: typed by the planner.
    cur.execute("SELECT count(*) FROM events WHERE event_type = %s", (etype,))
    check(cur.fetchone()[0] == per_type[etype], "text parameter")
    cur.execute("SELECT dt, count(*) AS n, min(occurred_at) AS first_at, 1.5e0 AS d, true AS b FROM events GROUP BY dt ORDER BY dt")
    rows = cur.fetchall()
    check([c.name for c in cur.description] == ["dt", "n", "first_at", "d", "b"], f"column names {cur.description}")
    check(all(isinstance(r[0], date) and isinstance(r[1], int) and isinstance(r[2], datetime) and r[3] == 1.5 and r[4] is True
              for r in rows), f"result types {rows[:1]}")
    check({r[0]: r[1] for r in rows} == per_day, "per-day counts through psycopg")
    # Trino's dialect, not Postgres': integer division, Trino functions.
    cur.execute("SELECT 7 / 2, date_format(TIMESTAMP '2026-10-05 12:00:00', '%Y/%m/%d')")
    check(cur.fetchone() == (3, "2026/10/05"), "Trino semantics")
    for sql, code in (("INSERT INTO events (event_id) VALUES ('x')", "0A000"), ("SET work_mem = '1GB'", "0A000"),
                      ("SELECT * FROM no_such_table", None)):
        try:
            cur.execute(sql)
            check(False, f"{sql} was accepted")
        except psycopg.Error as e:
            check(code is None or e.sqlstate == code, f"{sql}: sqlstate {e.sqlstate} ({e})")
    cur.execute("SELECT 1")
    check(cur.fetchone() == (1,), "the connection lives on after errors")
    # SHOW through the extended protocol: described and answered alike.
    cur.execute("SHOW ALL")
    check([c.name for c in cur.description] == ["name", "setting", "description"] and len(cur.fetchone()) == 3, "SHOW ALL")
    cur.execute("SHOW TIME ZONE")
    check([c.name for c in cur.description] == ["timezone"] and cur.fetchone() == ("UTC",), "SHOW TIME ZONE")

# Transactions (psycopg's default): BEGIN … COMMIT brackets reads.
with psycopg.connect(**dsn) as tx:
    with tx.cursor() as cur:
        cur.execute("SELECT count(*) FROM events")
        check(cur.fetchone()[0] == sum(per_day.values()), "count in a transaction")
    tx.commit()

# Cancel from another thread: the query stops and the connection is reusable.
SLOW = "SELECT count(*) FROM events a CROSS JOIN events b CROSS JOIN events c WHERE a.sequence + b.sequence + c.sequence < 0"
with conn.cursor() as cur:
    t = threading.Timer(1.0, conn.cancel_safe if hasattr(conn, "cancel_safe") else conn.cancel)
    t.start()
    started = time.monotonic()
    try:
        cur.execute(SLOW)
        check(False, "the slow query finished")
    except psycopg.errors.QueryCanceled:
        took = time.monotonic() - started
        check(took < 10, f"cancel took {took:.1f}s")
    t.join()
    cur.execute("SET statement_timeout = '500ms'")
    started = time.monotonic()
    try:
        cur.execute(SLOW)
        check(False, "statement_timeout did not stop the query")
    except psycopg.errors.QueryCanceled:
        took = time.monotonic() - started
        check(took < 5, f"statement_timeout took {took:.1f}s")
    cur.execute("SET statement_timeout = 0")
    cur.execute("SELECT count(*) FROM events")
    check(cur.fetchone()[0] == sum(per_day.values()), "after cancel")
conn.close()

# 3. SQLAlchemy's postgres dialect (what Superset browses with) and pandas.
engine = sqlalchemy.create_engine(f"postgresql+psycopg://analyst:{key}@{host}:{port}/sediment")
insp = sqlalchemy.inspect(engine)
check("public" in insp.get_schema_names(), f"schemas {insp.get_schema_names()}")
tables = insp.get_table_names()
check("orders" in tables and "daily_revenue" in tables, f"tables {tables}")
views = insp.get_view_names()
check("events" in views and "orders_current" in views, f"views {views}")
# Typed event tables: the payload's fields as typed columns, equal to the oracle.
check("payment_received" in views, f"typed tables among the views: {views}")
typed = {col["name"]: type(col["type"]).__name__ for col in insp.get_columns("payment_received")}
check(typed.get("amount") == "DOUBLE_PRECISION" and typed.get("method") == "TEXT", f"payment_received columns {typed}")
paid = duck.execute("SELECT count(*), round(sum(amount), 2) FROM ev WHERE event_type = 'PaymentReceived'").fetchone()
with psycopg.connect(**dsn) as c:
    got = c.execute("SELECT count(*), round(sum(amount), 2) FROM payment_received").fetchone()
check((got[0], float(got[1])) == (paid[0], paid[1]), f"payment_received {got} != oracle {paid}")
# What Superset reads when a dataset is added or a table opened in SQL Lab:
# columns (correlated subqueries in CASE branches), keys and indexes (the
# lake has none), comments.
with psycopg.connect(**dsn) as c:
    lake_columns = {
        t: [d.name for d in c.execute(f"SELECT * FROM {t} LIMIT 0").description] for t in ("events", "orders")
    }
for t in ("events", "orders"):
    cols = insp.get_columns(t, schema="public")
    check([col["name"] for col in cols] == lake_columns[t], f"get_columns({t}): {[col['name'] for col in cols]} != {lake_columns[t]}")
    check(all(col["default"] is None and not col["autoincrement"] for col in cols), f"get_columns({t}) defaults: {cols}")
    check(insp.get_pk_constraint(t, schema="public")["constrained_columns"] == [], f"get_pk_constraint({t})")
    check(insp.get_indexes(t, schema="public") == [], f"get_indexes({t})")
    check(insp.get_unique_constraints(t, schema="public") == [], f"get_unique_constraints({t})")
    check(insp.get_foreign_keys(t, schema="public") == [], f"get_foreign_keys({t})")
    check(insp.get_table_comment(t, schema="public") == {"text": None}, f"get_table_comment({t})")
types = {col["name"]: type(col["type"]).__name__ for col in insp.get_columns("events")}
check(
    (types["sequence"], types["occurred_at"], types["dt"], types["event_type"]) == ("BIGINT", "TIMESTAMP", "DATE", "TEXT"),
    f"events column types {types}",
)
multi = insp.get_multi_columns(schema="public", kind=sqlalchemy.engine.reflection.ObjectKind.ANY)
check({name for (_, name) in multi} >= {"events", "orders", "orders_current"}, f"get_multi_columns: {sorted(multi)}")
df = pd.read_sql("SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY event_type", engine)
check(dict(zip(df.event_type, df.n)) == per_type, f"pandas: {df.to_dict()} != {per_type}")
with engine.connect() as c:
    n = c.execute(sqlalchemy.text("SELECT count(*) FROM public.events WHERE event_type = :t"), {"t": etype}).scalar()
    check(n == per_type[etype], f"SQLAlchemy bound parameter: {n}")

# 4. What BI tools send on connect and browse (psql's through psql's protocol).
corpus = json.load(open(os.path.join(os.path.dirname(__file__), "pg_client_catalog_queries.json")))
# Refused on purpose: Sediment answers in UTC.
refused = {"set time zone \"Asia/Shanghai\""}
# Not answered yet: casts of names to regproc / of oid arrays to regtype[]
# (DBeaver's array-type probe, pgcli's function list). Listed so that the
# day they work, this test says so.
unsupported = {
    ("dbeaver", "'pg_catalog.array_in'::regproc"),
    ("pgcli", "::regtype[]"),
}
ran = 0
with psycopg.connect(**dsn, autocommit=True) as c:
    for client in corpus["clients"]:
        for q in client["queries"]:
            ran += 1
            try:
                with c.cursor() as cur:
                    cur.execute(q.encode())
                    if cur.description is not None:
                        cur.fetchall()
                known = any(client["client"] == c and part in q for c, part in unsupported)
                check(q not in refused and not known, f"{client['client']}: accepted {q[:300]}")
            except psycopg.Error as e:
                known = any(client["client"] == c and part in q for c, part in unsupported)
                check(q in refused or known, f"{client['client']}: {e.sqlstate} {str(e).strip()[:300]}\n  {q[:300]}")
check(ran >= 50, f"only {ran} client statements")

print(json.dumps({"problems": problems, "client_statements": ran}, indent=1, default=str))
