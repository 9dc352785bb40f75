"""Real Athena clients (boto3, PyAthena) against `sediment serve`, with
answers computed independently from the NDJSON the lake was built from.

usage: athena_clients.py ENDPOINT LAKE_DIR EVENTS.ndjson
"""
import json
import os
import sys
import urllib.request
from collections import Counter
from datetime import datetime, timezone

import boto3
from pyathena import connect

sys.path.insert(0, os.path.dirname(__file__))
from check_raw import parse  # noqa: E402
import athena_helpers  # noqa: E402

endpoint, lake_dir, events_path = sys.argv[1], sys.argv[2], sys.argv[3]
problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)


athena = boto3.client("athena", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="demo", aws_secret_access_key="demo")


def run(sql, **kw):
    return athena_helpers.run(athena, sql, **kw)


def results(qid, page=1000):
    return athena_helpers.results(athena, qid, page)


# Expected answers from the NDJSON alone.
first = {}
for line in open(events_path, "rb").read().split(b"\n"):
    if line.strip():
        e = parse(line)
        if e:
            d = datetime.fromtimestamp(e["occurred_ms"] / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
            first.setdefault((d, e["event_id"]), e)
per_day = Counter(d for d, _ in first)

# 1. boto3: a GROUP BY with paging (header row first, NULL as {}).
qid, q = run("SELECT dt, count(*) AS n FROM events GROUP BY dt ORDER BY dt")
check(q["Status"]["State"] == "SUCCEEDED", f"group by: {q['Status']}")
meta, rows = results(qid, page=3)
check(rows[0] == ["dt", "n"], f"header row {rows[0]}")
check([c["Type"] for c in meta] == ["date", "bigint"], f"column types {[c['Type'] for c in meta]}")
for c in meta:
    for k in ("Name", "Label", "Type", "Precision", "Scale", "Nullable", "CaseSensitive"):
        check(k in c, f"ColumnInfo lacks {k}")
got = {r[0]: int(r[1]) for r in rows[1:]}
check(got == dict(per_day), f"per-day counts {got} != {dict(per_day)}")
check(q["Statistics"]["DataScannedInBytes"] > 0, "no bytes scanned reported")
loc = q["ResultConfiguration"]["OutputLocation"]
check(loc.endswith(f"{qid}.csv"), f"output location {loc}")
csv_path = os.path.join(lake_dir, "_results", f"{qid}.csv")
check(os.path.exists(csv_path) and open(csv_path).readline().strip() == '"dt","n"', f"result CSV at {csv_path}")

# 2. Timestamps as Trino text, JSON extraction, a window, NULL rendering.
qid, q = run("""
SELECT aggregate_id, occurred_at, json_extract_scalar(payload, '$.status') AS status,
       row_number() OVER (PARTITION BY aggregate_id ORDER BY sequence) AS rn,
       CAST(NULL AS VARCHAR) AS nothing
FROM events WHERE aggregate_type = 'Order' ORDER BY aggregate_id, sequence LIMIT 3""")
check(q["Status"]["State"] == "SUCCEEDED", f"json query: {q['Status']}")
meta, rows = results(qid)
check((meta[1]["Type"], meta[1]["Precision"]) == ("timestamp", 3), f"occurred_at type {meta[1]}")
check(len(rows[1][1]) == 23 and rows[1][1][10] == " ", f"timestamp text {rows[1][1]!r}")
check(rows[1][4] is None, f"NULL should be an empty Datum, got {rows[1][4]!r}")

# 3. Execution parameters, idempotent submission, result reuse.
day = sorted(per_day)[1]
qid, q = run("SELECT count(*) FROM events WHERE dt = ?", ExecutionParameters=[f"DATE '{day}'"])
_, rows = results(qid)
check(int(rows[1][0]) == per_day[day], f"parameterised count {rows[1][0]} != {per_day[day]}")
a = athena.start_query_execution(QueryString="SELECT 1", ClientRequestToken="tok-123456789012345678901234567890")["QueryExecutionId"]
b = athena.start_query_execution(QueryString="SELECT 1", ClientRequestToken="tok-123456789012345678901234567890")["QueryExecutionId"]
check(a == b, "ClientRequestToken did not make submission idempotent")
reuse = {"ResultReuseByAgeConfiguration": {"Enabled": True, "MaxAgeInMinutes": 60}}
run("SELECT count(*) FROM events", ResultReuseConfiguration=reuse)
_, q2 = run("SELECT count(*) FROM events", ResultReuseConfiguration=reuse)
check(q2["Statistics"]["ResultReuseInformation"]["ReusedPreviousResult"] is True, "result reuse")

# 4. Failures: a syntax error and a write are FAILED with AthenaError; the server lives on.
for sql, needle in [("SELEC 1", "SYNTAX"), ("DROP TABLE events", "read-only"), ("INSERT INTO events VALUES (1)", "read-only"),
                    ("COPY (SELECT 1) TO '/tmp/x.csv'", ""), ("SELECT * FROM '/etc/passwd'", "")]:
    _, q = run(sql)
    st = q["Status"]
    check(st["State"] == "FAILED", f"{sql}: state {st['State']}")
    check("AthenaError" in st and st["AthenaError"]["ErrorCategory"] == 2, f"{sql}: {st}")
    check(needle in st.get("StateChangeReason", ""), f"{sql}: reason {st.get('StateChangeReason')}")
check(not os.path.exists("/tmp/x.csv"), "COPY wrote a file")

# 5. Catalog calls SQL tools make.
dbs = [d["Name"] for d in athena.list_databases(CatalogName="AwsDataCatalog")["DatabaseList"]]
check("default" in dbs, f"databases {dbs}")
tables = [t["Name"] for t in athena.list_table_metadata(CatalogName="AwsDataCatalog", DatabaseName="default")["TableMetadataList"]]
check({"events", "orders", "orders_current", "payment_received"} <= set(tables), f"tables {tables}")
t = athena.get_table_metadata(CatalogName="AwsDataCatalog", DatabaseName="default", TableName="payment_received")["TableMetadata"]
check(t["TableType"] == "VIRTUAL_VIEW" and {"Name": "amount", "Type": "double", "Comment": ""} in t["Columns"], f"payment_received {t}")
t = athena.get_table_metadata(CatalogName="AwsDataCatalog", DatabaseName="default", TableName="events")["TableMetadata"]
check([p["Name"] for p in t["PartitionKeys"]] == ["dt"], f"events partition keys {t['PartitionKeys']}")
wg = athena.get_work_group(WorkGroup="primary")["WorkGroup"]
check(wg["Configuration"]["EnforceWorkGroupConfiguration"] is False, "workgroup config")
ids = athena.list_query_executions(MaxResults=5)["QueryExecutionIds"]
check(len(ids) == 5, f"list executions {ids}")
batch = athena.batch_get_query_execution(QueryExecutionIds=ids[:2])
check(len(batch["QueryExecutions"]) == 2, "batch get")

# 6. PyAthena's default cursor (StartQueryExecution → GetQueryExecution → GetQueryResults),
# with the work group's output location (this lake is a directory, not S3).
conn = connect(endpoint_url=endpoint, region_name="us-east-1", work_group="primary",
               aws_access_key_id="demo", aws_secret_access_key="demo", schema_name="default")
cur = conn.cursor()
cur.execute("SELECT dt, count(*) AS n FROM events GROUP BY dt ORDER BY dt")
got = {str(r[0]): r[1] for r in cur.fetchall()}
check(got == dict(per_day), f"pyathena counts {got}")
check([d[0] for d in cur.description] == ["dt", "n"], f"pyathena description {cur.description}")
cur.execute("SELECT status, count(*) AS n FROM orders_current GROUP BY status ORDER BY n DESC")
check(len(cur.fetchall()) >= 3, "orders_current via pyathena")

# 7. REST agrees with the Athena API.
req = urllib.request.Request(endpoint + "/v1/query", data=json.dumps({"sql": "SELECT dt, count(*) AS n FROM events GROUP BY dt ORDER BY dt"}).encode(),
                             headers={"content-type": "application/json"})
rest = json.load(urllib.request.urlopen(req))
check({r[0]: r[1] for r in rest["rows"]} == dict(per_day), f"REST {rest['rows']}")

print(json.dumps({"problems": problems, "days": len(per_day)}))
sys.stdout.flush()
os._exit(1 if problems else 0)
