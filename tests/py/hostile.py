"""A hostile (or careless) user against `sediment serve`: a corpus of queries
that must each get a clear error or a correct answer, through REST and the
Athena API (boto3), then a runaway query while ordinary clients keep going.
The process must survive all of it; the caller checks its peak memory.

usage: hostile.py ENDPOINT KEY EVENTS TIMEOUT_SECONDS SERVER_PID
Prints one JSON object: {"problems": [...], "health_p99_ms": …, …}.
"""
import http.client
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

import boto3

endpoint, key, events, timeout_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
server_pid = int(sys.argv[5])
host, port = endpoint.split("//")[1].split(":")
port = int(port)
problems = []
report = {}


def check(cond, msg):
    if not cond:
        problems.append(msg)


def rest(sql, key=key, timeout=120):
    """(HTTP status, body as JSON) of POST /v1/query."""
    body = json.dumps({"sql": sql}).encode()
    req = urllib.request.Request(f"{endpoint}/v1/query", data=body, method="POST",
                                 headers={"content-type": "application/json", "authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def cpu_seconds(pid):
    """User + system CPU time of a process so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_post(path, body, headers):
    """(status, body bytes) of a POST with exactly these bytes."""
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("POST", path, body=body, headers=headers)
    r = c.getresponse()
    return r.status, r.read()


athena = boto3.client("athena", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=key, aws_secret_access_key="x")


def athena_run(sql, wait=120):
    """Final QueryExecution of a query run through the Athena API."""
    qid = athena.start_query_execution(QueryString=sql, QueryExecutionContext={"Database": "default"})["QueryExecutionId"]
    deadline = time.time() + wait
    while time.time() < deadline:
        q = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
        if q["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return qid, q
        time.sleep(0.05)
    raise RuntimeError(f"did not finish: {sql[:80]}")


def first_cell_athena(qid):
    rows = athena.get_query_results(QueryExecutionId=qid, MaxResults=2)["ResultSet"]["Rows"]
    return rows[1]["Data"][0].get("VarCharValue") if len(rows) > 1 else None


def chain(op, term, n):
    return f" {op} ".join([term] * n)


def nest(left, inner, right, n):
    return left * n + inner + right * n


long_string = "x" * 250_000
# (name, SQL, expectation): "err:TEXT" = a clear error whose message holds TEXT
# ("err:" any clear error), "ok:VALUE" = the first cell, "either" = an answer
# or a clear error, "cancel" = ends at the timeout, cancelled.
corpus = [
    ("deep sum", "SELECT " + chain("+", "1", 20_000), "err:QUERY_TOO_COMPLEX"),
    ("deep product", "SELECT " + chain("*", "1", 20_000), "err:QUERY_TOO_COMPLEX"),
    ("deep OR", "SELECT count(*) FROM events WHERE " + chain("OR", "event_id = 'x'", 12_000), "err:QUERY_TOO_COMPLEX"),
    ("deep concat", "SELECT " + chain("||", "'a'", 20_000), "err:QUERY_TOO_COMPLEX"),
    ("deep casts", "SELECT 1" + "::bigint" * 20_000, "err:QUERY_TOO_COMPLEX"),
    ("deep comparisons", "SELECT " + chain("=", "true", 20_000), "err:QUERY_TOO_COMPLEX"),
    ("deep UNION ALL", "SELECT count(*) FROM (" + chain("UNION ALL", "SELECT 1", 12_000) + ")", "err:QUERY_TOO_COMPLEX"),
    ("many CTEs", "WITH a0 AS (SELECT 1 AS x), " + ", ".join(f"a{i} AS (SELECT x FROM a{i - 1})" for i in range(1, 5000))
     + " SELECT x FROM a4999", "err:QUERY_TOO_COMPLEX"),
    ("many joins", "SELECT count(*) FROM " + ", ".join(f"(SELECT 1 AS x) t{i}" for i in range(3000)), "err:QUERY_TOO_COMPLEX"),
    ("sum of 500", "SELECT " + chain("+", "1", 500), "ok:500"),
    ("OR of 300", "SELECT count(*) FROM events WHERE " + chain("OR", "event_id = 'x'", 300), "ok:0"),
    ("5,000 nested parentheses", "SELECT " + nest("(", "1", ")", 5000), "err:"),
    ("3,000 nested CASEs", "SELECT " + nest("CASE WHEN true THEN ", "1", " END", 3000), "err:"),
    ("5,000 nested NOTs", "SELECT " + "NOT " * 5000 + "true", "err:"),
    ("5,000 nested minus", "SELECT " + "- " * 5000 + "1", "err:"),
    ("nested function calls", "SELECT " + nest("abs(", "1", ")", 2000), "err:"),
    ("nested arrays", "SELECT " + nest("ARRAY[", "1", "]", 2000), "err:"),
    ("nested CASTs with an error inside", "SELECT " + "CAST(" * 40 + "1 + AS INT)" + " AS INT)" * 39, "err:"),
    ("nested POSITIONs with an error inside", "SELECT " + "POSITION(" * 40 + "1 +" + ")" * 40, "err:"),
    ("nested ARRAYs with an error inside", "SELECT " + "ARRAY[" * 40 + "1 +" + "]" * 40, "err:"),
    ("nested subqueries", "SELECT * FROM " + nest("(SELECT * FROM ", "events", ") s", 1000), "err:"),
    ("20,000-item IN list", "SELECT count(*) FROM events WHERE event_id IN (" + ", ".join(f"'e{i}'" for i in range(20_000)) + ")", "ok:0"),
    ("10,000 WHENs", "SELECT CASE 5 " + " ".join(f"WHEN {i} THEN {i}" for i in range(10_000)) + " END", "ok:5"),
    ("query over 262,144 bytes", "SELECT '" + "y" * 270_000 + "'", "err:262144"),
    ("250 KB literal", f"SELECT length('{long_string}')", "ok:250000"),
    ("huge number literal", "SELECT " + "9" * 100_000, "err:INVALID_LITERAL"),
    ("huge decimal literal", "SELECT 1." + "5" * 50_000, "err:INVALID_LITERAL"),
    ("integer past bigint", "SELECT 9223372036854775808", "err:INVALID_LITERAL"),
    ("largest bigint", "SELECT 9223372036854775807", "ok:9223372036854775807"),
    ("sequence of 3 billion", "SELECT count(*) FROM UNNEST(sequence(1, 3000000000)) AS t(x)", "err:10000 entries"),
    ("sequence of 10,000", "SELECT count(*) FROM UNNEST(sequence(1, 10000)) AS t(x)", "ok:10000"),
    ("sequence of dates", "SELECT cardinality(sequence(DATE '2026-01-01', DATE '2026-12-31'))", "ok:365"),
    ("sequence of 100k dates", "SELECT cardinality(sequence(DATE '1800-01-01', DATE '2100-01-01'))", "err:10000 entries"),
    ("sequence of timestamps by the second", "SELECT cardinality(sequence(TIMESTAMP '2026-01-01 00:00:00', TIMESTAMP '2026-12-31 00:00:00', INTERVAL '1' SECOND))", "err:10000 entries"),
    ("repeat 2 billion", "SELECT length(repeat('x', 2000000000))", "err:"),
    ("repeat 10,000", "SELECT cardinality(repeat('x', 10000))", "ok:10000"),
    ("repeat in a lambda", "SELECT cardinality(flatten(transform(sequence(1, 10000), x -> repeat(x, 10000))))", "err:"),
    ("sequence in a lambda", "SELECT cardinality(flatten(transform(sequence(1, 10000), x -> sequence(1, 10000))))", "err:"),
    ("reduce doubling its state", "SELECT length(reduce(sequence(1, 10000), 'x', (s, x) -> s || s, s -> s))", "err:"),
    ("reduce over long arrays", "SELECT reduce(sequence(1, 10000), 0, (s, x) -> s + x, s -> s)", "ok:50005000"),
    ("zip_with a constant per element", "SELECT cardinality(zip_with(sequence(1, 10000), sequence(1, 10000), (x, y) -> lpad('', 30000000, 'a')))", "err:"),
    ("lpad 2 billion", "SELECT length(lpad('x', 2000000000, 'y'))", "err:EXCEEDED_FUNCTION_MEMORY_LIMIT"),
    ("rpad a million", "SELECT length(rpad('x', 1000000, 'y'))", "ok:1000000"),
    ("lpad per row", "SELECT sum(length(lpad(event_id, 30000000, 'y'))) FROM events", "err:"),
    ("replace amplifies", "SELECT length(replace(lpad('', 30000000, 'a'), 'a', 'bbbbbbbbbb'))", "err:EXCEEDED_FUNCTION_MEMORY_LIMIT"),
    ("replace with empty pattern", "SELECT length(replace(lpad('', 20000000, 'a'), '', 'bbbbbbbbbb'))", "err:EXCEEDED_FUNCTION_MEMORY_LIMIT"),
    ("array_repeat 2 billion", "SELECT cardinality(array_repeat('x', 2000000000))", "err:"),
    ("array_resize 2 billion", "SELECT cardinality(array_resize(ARRAY[1], 2000000000))", "err:"),
    ("range scalar 2 billion", "SELECT cardinality(range(1, 2000000000))", "err:"),
    ("array_join of a huge array", "SELECT length(array_join(transform(sequence(1, 10000), x -> array_join(transform(sequence(1, 10000), y -> 'abcdefghij'), '')), ''))", "err:"),
    ("levenshtein of long strings", "SELECT levenshtein_distance(lpad('', 200000, 'a'), lpad('', 200000, 'b'))", "err:Levenshtein"),
    ("string_agg of a cross join", "SELECT length(string_agg(a.payload, ',')) FROM events a CROSS JOIN (SELECT event_id FROM events LIMIT 300) b", "either"),
    ("result over the row cap", "SELECT a.x FROM UNNEST(sequence(1, 10000)) a(x) CROSS JOIN UNNEST(sequence(1, 200)) b(y)", "err:max_result_rows"),
    ("regex with exponential backtracking elsewhere", "SELECT regexp_like(lpad('', 100000, 'a') || 'b', '(a+)+$')", "ok:false"),
    ("regex too large to compile", "SELECT regexp_like('a', '(((a{100}){100}){100}){100}')", "err:"),
    ("regexp_replace backreferences", "SELECT length(regexp_replace(lpad('', 1000000, 'a'), '(a)', '$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1'))", "err:EXCEEDED_FUNCTION_MEMORY_LIMIT"),
    ("unnest generator cross join", "SELECT count(*) FROM UNNEST(sequence(1, 10000)) a(x) CROSS JOIN UNNEST(sequence(1, 10000)) b(y) CROSS JOIN UNNEST(sequence(1, 10000)) c(z)", "cancel"),
    ("table function generator", "SELECT count(*) FROM generate_series(1, 9000000000000000000)", "cancel"),
    ("hash join explosion", "SELECT count(*) FROM events a JOIN events b ON a.aggregate_type = b.aggregate_type JOIN events c ON b.aggregate_type = c.aggregate_type", "err:"),
    ("division by zero", "SELECT 1 / 0", "err:"),
    ("bigint overflow", "SELECT 9223372036854775807 + 1", "either"),
    ("INSERT", "INSERT INTO events VALUES (1)", "err:read-only"),
    ("CREATE TABLE AS", "CREATE TABLE t AS SELECT 1", "err:read-only"),
    ("DROP TABLE", "DROP TABLE events", "err:read-only"),
    ("COPY to a file", "COPY (SELECT 1) TO '/tmp/sediment-hostile.csv'", "err:"),
    ("external table over /etc", "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'", "err:"),
    ("read a local file", "SELECT * FROM '/etc/passwd'", "err:"),
    ("SET a server option", "SET datafusion.execution.target_partitions = 1", "err:"),
    ("two statements", "SELECT 1; DROP TABLE events", "err:"),
    ("NUL in the text", "SELECT '\u0000'", "either"),
    ("empty", "   ", "err:"),
    ("comment only", "-- nothing", "err:"),
]


def clear(msg):
    return bool(msg) and "internal error" not in msg.lower() and "panic" not in msg.lower()


def judge(name, via, expect, ok, value, msg, elapsed):
    if expect.startswith("ok:"):
        check(ok and str(value) == expect[3:], f"{via} {name}: expected {expect[3:]!r}, got ok={ok} value={value!r} error={msg!r}")
    elif expect.startswith("err:"):
        check(not ok and clear(msg) and expect[4:] in msg, f"{via} {name}: expected an error with {expect[4:]!r}, got ok={ok} {value!r} {msg!r}")
    elif expect == "either":
        check(ok or clear(msg), f"{via} {name}: unclear error {msg!r}")
    elif expect == "cancel":
        check(not ok and "timeout" in (msg or "").lower(), f"{via} {name}: expected the timeout, got ok={ok} {msg!r}")
        check(elapsed < timeout_s + 1.5, f"{via} {name}: ended after {elapsed:.1f}s, over the {timeout_s}s timeout + 1s")


for name, sql, expect in corpus:
    print(f"REST: {name}", file=sys.stderr, flush=True)
    t = time.time()
    status, body = rest(sql)
    elapsed = time.time() - t
    ok = status == 200
    value = body.get("rows", [[None]])[0][0] if ok and body.get("rows") else None
    if isinstance(value, bool):
        value = str(value).lower()
    msg = None if ok else body.get("error", {}).get("message", "")
    judge(name, "REST", expect, ok, value, msg, elapsed)
    check(status in (200, 400, 408), f"REST {name}: HTTP {status}")

# The Athena API gets the same corpus, but for the slowest cases.
for name, sql, expect in corpus:
    if expect == "cancel" or len(sql) > 262_144:
        continue
    t = time.time()
    try:
        qid, q = athena_run(sql)
    except Exception as e:  # noqa: BLE001 - boto3 raises ClientError for refused requests
        judge(name, "Athena", expect, False, None, str(e), time.time() - t)
        continue
    state = q["Status"]["State"]
    ok = state == "SUCCEEDED"
    value = first_cell_athena(qid) if ok else None
    msg = None if ok else q["Status"].get("StateChangeReason", "")
    judge(name, "Athena", expect, ok, value, msg, time.time() - t)

# Keys, bodies and actions.
check(rest("SELECT 1", key="wrong")[0] == 401, "a wrong REST key was accepted")
status, _ = raw_post("/v1/query", json.dumps({"sql": "SELECT 1"}).encode(), {"content-type": "application/json"})
check(status == 401, f"no key: HTTP {status}")
wrong = boto3.client("athena", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="wrong", aws_secret_access_key="x")
try:
    wrong.list_work_groups()
    problems.append("a wrong Athena access key was accepted")
except Exception as e:  # noqa: BLE001
    check("UnrecognizedClient" in str(e), f"wrong Athena key: {e}")
auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
big = b'{"sql": "SELECT 1", "pad": "' + b"z" * (20 << 20) + b'"}'
status, body = raw_post("/v1/query", big, auth)
check(status == 413 and b"at most" in body, f"20 MiB body: HTTP {status} {body[:200]!r}")
status, body = raw_post("/", big, {**auth, "x-amz-target": "AmazonAthena.StartQueryExecution",
                                   "content-type": "application/x-amz-json-1.1"})
check(status == 413 and b"InvalidRequestException" in body, f"20 MiB Athena body: HTTP {status} {body[:200]!r}")
status, body = raw_post("/v1/query", b'{"sql": "SELECT \xff\xfe"}', auth)
check(status == 400, f"malformed UTF-8: HTTP {status} {body[:200]!r}")
status, body = raw_post("/v1/query", b'{"sql": "SELECT \'\\ud800\'"}', auth)
check(status == 400, f"a lone surrogate: HTTP {status} {body[:200]!r}")
status, body = raw_post("/v1/query", b'{"sql": ', auth)
check(status == 400, f"truncated JSON: HTTP {status}")
status, body = raw_post("/", b"{}", {**auth, "x-amz-target": "AmazonAthena.DropEverything"})
check(status == 400, f"unknown Athena action: HTTP {status}")

# Concurrent cancels: heavy queries stopped right after they start end
# CANCELLED, promptly.
heavy = "SELECT count(*) FROM events a CROSS JOIN events b CROSS JOIN events c WHERE a.event_id <> b.event_id"
ids = [athena.start_query_execution(QueryString=heavy)["QueryExecutionId"] for _ in range(6)]
time.sleep(0.3)
t = time.time()
stoppers = [threading.Thread(target=athena.stop_query_execution, kwargs={"QueryExecutionId": i}) for i in ids]
for s in stoppers:
    s.start()
for s in stoppers:
    s.join()
for i in ids:
    while athena.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Status"]["State"] not in ("CANCELLED", "FAILED", "SUCCEEDED"):
        time.sleep(0.05)
    state = athena.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Status"]["State"]
    check(state == "CANCELLED", f"a stopped query ended {state}")
check(time.time() - t < 1.0, f"stopping 6 queries took {time.time() - t:.2f}s")
# Their work stops too: a query submitted now runs at once, not behind them.
t = time.time()
status, body = rest("SELECT count(*) FROM events")
report["after_cancels_ms"] = round((time.time() - t) * 1000)
check(status == 200 and body["rows"][0][0] == events, f"count after the cancels: {status} {body}")

# A join whose filter never matches emits nothing, so only its probe side's
# pacing makes it yield. Cancelled in every slot, its work must stop at once:
# a query submitted next is not queued behind it, and the CPU goes idle.
never = "SELECT count(*) FROM events a CROSS JOIN events b CROSS JOIN events c WHERE a.sequence + b.sequence + c.sequence < 0"
ids = [athena.start_query_execution(QueryString=never)["QueryExecutionId"] for _ in range(4)]
time.sleep(1.0)
for i in ids:
    athena.stop_query_execution(QueryExecutionId=i)
t = time.time()
status, body = rest("SELECT count(*) FROM events")
report["after_never_matching_cancels_ms"] = round((time.time() - t) * 1000)
check(status == 200 and body["rows"][0][0] == events, f"count after cancelling never-matching joins: {status} {body}")
check(time.time() - t < 2.0, f"a query after cancelling never-matching joins took {time.time() - t:.1f}s (their work went on)")
for i in ids:
    st = athena.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Status"]
    # Four such joins may exhaust the pool before the stop arrives: a clean
    # memory error is an answer too.
    ended_cleanly = st["State"] == "FAILED" and "EXCEEDED_MEMORY_LIMIT" in st.get("StateChangeReason", "")
    check(st["State"] == "CANCELLED" or ended_cleanly, f"a stopped never-matching join ended {st['State']}: {st.get('StateChangeReason')}")
before, t = cpu_seconds(server_pid), time.time()
time.sleep(1.0)
busy = (cpu_seconds(server_pid) - before) / (time.time() - t)
report["cpu_after_cancels"] = round(busy, 2)
check(busy < 0.5, f"the server used {busy:.2f} CPU seconds per second after every query was cancelled")

# Soak: a runaway query while ordinary clients query and /health is polled.
stop = threading.Event()
health_ms = []
ordinary = {"ok": 0, "failed": []}


def poll_health():
    while not stop.is_set():
        t = time.time()
        try:
            with urllib.request.urlopen(f"{endpoint}/health", timeout=10) as r:
                r.read()
            health_ms.append((time.time() - t) * 1000)
        except Exception as e:  # noqa: BLE001
            health_ms.append(10_000)
            ordinary["failed"].append(f"/health: {e}")
        time.sleep(0.02)


def client(n):
    sqls = ["SELECT count(*) FROM events", "SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC",
            "SELECT dt, count(DISTINCT aggregate_id) FROM events GROUP BY dt ORDER BY dt", "SELECT 1"]
    i = n
    while not stop.is_set():
        status, body = rest(sqls[i % len(sqls)])
        if status == 200:
            ordinary["ok"] += 1
        else:
            ordinary["failed"].append(f"{status} {body}")
        i += 1


runaway = {}


def run_away():
    t = time.time()
    runaway["status"], runaway["body"] = rest(heavy)
    runaway["seconds"] = time.time() - t


threads = [threading.Thread(target=poll_health)] + [threading.Thread(target=client, args=(n,)) for n in range(3)]
for th in threads:
    th.start()
time.sleep(0.5)
r = threading.Thread(target=run_away)
r.start()
r.join()
time.sleep(0.5)
stop.set()
for th in threads:
    th.join()
health_ms.sort()
p99 = health_ms[min(len(health_ms) - 1, int(len(health_ms) * 0.99))] if health_ms else None
report.update(health_p99_ms=round(p99, 1) if p99 is not None else None, health_polls=len(health_ms),
              ordinary_ok=ordinary["ok"], runaway_seconds=round(runaway["seconds"], 2))
check(p99 is not None and p99 < 200, f"/health p99 {p99} ms during the runaway")
check(not ordinary["failed"], f"ordinary queries failed: {ordinary['failed'][:3]}")
check(ordinary["ok"] > 0, "no ordinary query answered during the runaway")
check(runaway["status"] == 408 and "timeout" in runaway["body"].get("error", {}).get("message", ""), f"runaway: {runaway}")
check(runaway["seconds"] < timeout_s + 1.5, f"the runaway ended after {runaway['seconds']:.1f}s")

# After everything, the answer is still right.
status, body = rest("SELECT count(*) FROM events")
check(status == 200 and body["rows"][0][0] == events, f"final count: {status} {body}")
print(json.dumps({"problems": problems, **report}))
