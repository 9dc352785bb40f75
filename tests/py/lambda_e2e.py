"""The AWS path, checked from outside: after the Lambda functions ingested and
compacted into S3, boto3's Athena client asks `sediment serve` and DuckDB
computes the same answers directly from the generated NDJSON.

usage: lambda_e2e.py ENDPOINT S3_LAKE_URL EVENTS.ndjson PAST_DAY
(S3 settings from the environment: AWS_ENDPOINT_URL and credentials.)
"""
import base64
import json
import os
import sys
from collections import Counter
from datetime import datetime, timezone

import boto3
import duckdb

sys.path.insert(0, os.path.dirname(__file__))
from check_raw import parse  # noqa: E402
import athena_helpers  # noqa: E402

endpoint, lake_url, events_path, past_day = sys.argv[1:5]
problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)


athena = boto3.client("athena", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="e2e", aws_secret_access_key="e2e")


def sql(q):
    qid, e = athena_helpers.run(athena, q, polls=1200, WorkGroup="primary")
    if e["Status"]["State"] != "SUCCEEDED":
        raise RuntimeError(f"{q}: {e['Status']}")
    return athena_helpers.results(athena, qid)[1][1:]


# The source of truth: every line as generated, valid ones deduplicated.
lines = [l for l in open(events_path, "rb").read().split(b"\n") if l.strip()]
valid, invalid, seen = [], [], set()
for line in lines:
    e = parse(line)
    if e is None:
        invalid.append(line)
        continue
    dt = datetime.fromtimestamp(e["occurred_ms"] / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
    if (dt, e["event_id"]) in seen:
        continue
    seen.add((dt, e["event_id"]))
    obj = json.loads(line)
    valid.append((e["event_id"], e["event_type"], e["aggregate_type"], e["aggregate_id"], e.get("sequence") or 0,
                  e["occurred_ms"], dt, json.dumps(obj.get("payload"))))

con = duckdb.connect()
con.execute("CREATE TABLE ev (event_id VARCHAR, event_type VARCHAR, aggregate_type VARCHAR, aggregate_id VARCHAR, "
            "sequence BIGINT, occurred_ms BIGINT, dt DATE, payload JSON)")
con.executemany("INSERT INTO ev VALUES (?, ?, ?, ?, ?, ?, ?, ?)", valid)

# 1. Per-day counts.
want = {str(d): n for d, n in con.execute("SELECT dt, count(*) FROM ev GROUP BY dt").fetchall()}
got = {r[0]: int(r[1]) for r in sql("SELECT dt, count(*) FROM events GROUP BY dt")}
check(got == want, f"per-day counts: sediment {got} duckdb {want}")

# 2. Revenue per day from JSON payloads.
want = {str(d): round(v, 2) for d, v in con.execute(
    "SELECT dt, sum(CAST(json_extract_string(payload, '$.amount') AS DOUBLE)) FROM ev "
    "WHERE event_type = 'PaymentReceived' GROUP BY dt").fetchall()}
got = {r[0]: round(float(r[1]), 2) for r in sql(
    "SELECT dt, sum(CAST(json_extract_scalar(payload, '$.amount') AS DOUBLE)) FROM events "
    "WHERE event_type = 'PaymentReceived' GROUP BY dt")}
check(got == want, f"revenue: sediment {got} duckdb {want}")

# Order state per DESIGN.md's fold: after the last delete, the last non-null status.
STATE = """
WITH o AS (SELECT * FROM ev WHERE aggregate_type = 'Order' AND dt <= DATE '{day}'),
     d AS (SELECT aggregate_id, max(sequence) FILTER (WHERE event_type = 'OrderDeleted') AS deleted, max(sequence) AS last FROM o GROUP BY 1),
     live AS (SELECT o.* FROM o JOIN d USING (aggregate_id) WHERE d.deleted IS NULL OR o.sequence > d.deleted),
     alive AS (SELECT aggregate_id FROM d WHERE deleted IS NULL OR last > deleted)
SELECT a.aggregate_id,
       (SELECT arg_max(json_extract_string(payload, '$.status'), sequence) FROM live l
         WHERE l.aggregate_id = a.aggregate_id AND json_extract_string(payload, '$.status') IS NOT NULL) AS status
FROM alive a
"""

# 3. The current state of orders (every one, and one looked up by id).
last_day = con.execute("SELECT max(dt) FROM ev").fetchone()[0]
want = dict(con.execute(STATE.format(day=last_day)).fetchall())
got = {r[0]: r[1] for r in sql("SELECT aggregate_id, status FROM orders_current")}
check(got == want, f"orders_current: {len(got)} orders vs {len(want)} in duckdb; "
                   f"differing: {sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))[:5]}")
one = sorted(want)[len(want) // 2]
got_one = sql(f"SELECT status FROM orders_current WHERE aggregate_id = '{one}'")
check(got_one == [[want[one]]], f"order {one}: sediment {got_one} duckdb {want[one]}")

# 4. A snapshot as of a past day.
want = Counter(s for s in dict(con.execute(STATE.format(day=past_day)).fetchall()).values())
got = {r[0]: int(r[1]) for r in sql(f"SELECT status, count(*) FROM orders WHERE snapshot_date = DATE '{past_day}' GROUP BY status")}
check(got == dict(want), f"snapshot {past_day}: sediment {got} duckdb {dict(want)}")

# 5. Quarantine holds exactly the malformed records, with their bytes.
bucket, _, prefix = lake_url[len("s3://"):].partition("/")
s3 = boto3.client("s3", region_name="us-east-1")
quarantined = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/quarantine/"):
    for o in page.get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode()
        for rec in body.splitlines():
            r = json.loads(rec)
            check(r["reason"] and r["source"] and r["position"], f"quarantine record lacks reason/source/position: {r}")
            quarantined.append(base64.b64decode(r["raw_base64"]))
check(Counter(quarantined) == Counter(invalid),
      f"quarantine holds {len(quarantined)} records, the input {len(invalid)} malformed lines")

print(json.dumps({"valid_distinct": len(valid), "malformed": len(invalid), "quarantined": len(quarantined)}))
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.stdout.flush()
    os._exit(1)
sys.stdout.flush()
os._exit(0)
