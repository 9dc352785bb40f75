"""Athena clients that download results from S3 (PyAthena's default, Pandas
and Arrow cursors, awswrangler) against `sediment serve` on an S3 lake, with a
DuckDB oracle computed from the NDJSON the lake was built from.

usage: athena_s3.py ATHENA_ENDPOINT S3_ENDPOINT EVENTS.ndjson [EVENTS.ndjson ...]
"""
import json
import os
import sys
from datetime import date, datetime, timezone
from decimal import Decimal

import boto3
import duckdb
import pandas as pd
from pyathena import connect
from pyathena.pandas.cursor import PandasCursor

sys.path.insert(0, os.path.dirname(__file__))
from check_raw import parse  # noqa: E402

athena_endpoint, s3_endpoint, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
os.environ["AWS_ENDPOINT_URL_S3"] = s3_endpoint
problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)


# The oracle: every event once per (day, event_id), as the lake holds them.
first = {}
for path in inputs:
    for line in open(path, "rb").read().split(b"\n"):
        if line.strip() and (e := parse(line)):
            at = datetime.fromtimestamp(e["occurred_ms"] / 1000, tz=timezone.utc).replace(tzinfo=None)
            first.setdefault((at.date(), e["event_id"]), e | {"at": at})
rows = []
for (day, _), e in first.items():
    price = e["payload"].get("price")
    rows.append({
        "event_type": e["event_type"], "aggregate_id": e["aggregate_id"], "sequence": e["sequence"],
        "occurred_at": e["at"], "dt": day, "price": None if price is None else str(price),
    })
ev = pd.DataFrame(rows)
duck = duckdb.connect()
duck.register("ev_raw", ev)
duck.execute("""CREATE TABLE ev AS SELECT event_type, aggregate_id, sequence, CAST(occurred_at AS TIMESTAMP) AS occurred_at,
                CAST(dt AS DATE) AS dt, CAST(price AS DECIMAL(12,2)) AS price FROM ev_raw""")

# Unnamed items get Athena's `_colN` names; the oracle names them alike.
SQL = """SELECT event_type, count(*), min(occurred_at), max(dt),
       sum(CAST(json_extract_scalar(payload, '$.price') AS DECIMAL(12,2)))
FROM events GROUP BY event_type ORDER BY event_type"""
ORACLE = """SELECT event_type, count(*) AS _col1, min(occurred_at) AS _col2, max(dt) AS _col3,
       CAST(sum(price) AS DECIMAL(38,2)) AS _col4
FROM ev GROUP BY event_type ORDER BY event_type"""
NAMES = ["event_type", "_col1", "_col2", "_col3", "_col4"]
oracle = duck.execute(ORACLE).fetchall()
check(len(oracle) >= 3, f"oracle too small: {oracle}")


def norm(v):
    """One form for a value whatever client produced it."""
    if v is None or (isinstance(v, float) and v != v) or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, datetime):
        return ("ts", v.replace(tzinfo=None).isoformat(timespec="milliseconds"))
    if isinstance(v, date):
        return ("date", v.isoformat())
    if isinstance(v, Decimal):
        return ("dec", str(v.quantize(Decimal("0.01"))))
    if hasattr(v, "item"):  # numpy scalars
        v = v.item()
    return v


want = [tuple(norm(v) for v in r) for r in oracle]
staging = "s3://results/staging/"
kw = dict(endpoint_url=athena_endpoint, region_name="us-east-1", schema_name="default",
          aws_access_key_id="testing", aws_secret_access_key="testing")

# 1. PyAthena's default cursor: Python types from ColumnInfo.
cur = connect(s3_staging_dir=staging, **kw).cursor()
cur.execute(SQL)
check([d[0] for d in cur.description] == NAMES, f"cursor names {[d[0] for d in cur.description]}")
check([d[1] for d in cur.description] == ["varchar", "bigint", "timestamp", "date", "decimal"],
      f"cursor types {[d[1] for d in cur.description]}")
got = cur.fetchall()
check(all(isinstance(r[2], datetime) and isinstance(r[3], date) for r in got), f"types {[type(v) for v in got[0]]}")
check(any(isinstance(r[4], Decimal) for r in got), f"no Decimal in {got[:2]}")
check([tuple(norm(v) for v in r) for r in got] == want, f"cursor rows {got} != oracle {oracle}")
check(cur.output_location.startswith(staging) and cur.output_location.endswith(".csv"), f"output location {cur.output_location}")
s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
bucket, key = cur.output_location[5:].split("/", 1)
body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
check(body.splitlines()[0] == ",".join(f'"{n}"' for n in NAMES), f"CSV header {body.splitlines()[0]!r}")
meta = json.loads(s3.get_object(Bucket=bucket, Key=key + ".metadata")["Body"].read())
check([c["Name"] for c in meta["ColumnInfo"]] == NAMES, f"metadata {meta}")

# 2. PandasCursor downloads the CSV from OutputLocation. (ArrowCursor reads it
# through pyarrow's S3 filesystem, which PyAthena cannot point at an endpoint
# other than AWS's, so it is not exercised here.)
for name, cls in [("pandas", PandasCursor)]:
    try:
        c = connect(s3_staging_dir=staging, cursor_class=cls, **kw).cursor()
        df = c.execute(SQL).as_pandas()
        # PandasCursor parses DATE columns as datetime64, as against Athena.
        check(pd.api.types.is_datetime64_any_dtype(df["_col3"]), f"{name} date dtype {df['_col3'].dtype}")
        df["_col3"] = df["_col3"].dt.date
        check(list(df.columns) == NAMES, f"{name} columns {list(df.columns)}")
        got = [tuple(norm(v) for v in r) for r in df.itertuples(index=False)]
        check(got == want, f"{name} rows {got} != oracle {want}")
    except Exception as e:  # noqa: BLE001
        problems.append(f"{name}: {type(e).__name__}: {e}")

# 3. awswrangler reads the result CSV through its own S3 client.
try:
    import awswrangler as wr

    wr.config.athena_endpoint_url = athena_endpoint
    wr.config.s3_endpoint_url = s3_endpoint
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    df = wr.athena.read_sql_query(SQL, database="default", ctas_approach=False, s3_output="s3://results/wr/", boto3_session=session)
    check(list(df.columns) == NAMES, f"awswrangler columns {list(df.columns)}")
    got = [tuple(norm(v) for v in r) for r in df.itertuples(index=False)]
    check(got == want, f"awswrangler rows {got} != oracle {want}")
except Exception as e:  # noqa: BLE001
    problems.append(f"awswrangler: {type(e).__name__}: {e}")

# 4. An OutputLocation that is not S3 is refused with a message.
athena = boto3.client("athena", endpoint_url=athena_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
try:
    athena.start_query_execution(QueryString="SELECT 1", ResultConfiguration={"OutputLocation": "/tmp/x/"})
    problems.append("a local OutputLocation was accepted")
except athena.exceptions.InvalidRequestException as e:
    check("s3://" in str(e), f"refusal message {e}")

print(json.dumps({"problems": problems, "groups": len(oracle)}))
