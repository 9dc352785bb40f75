"""Running a query through the Athena API with boto3 and reading its pages,
shared by the client test scripts."""
import time


def run(athena, sql, polls=600, **kw):
    """(QueryExecutionId, final QueryExecution); polls every 50 ms."""
    qid = athena.start_query_execution(QueryString=sql, QueryExecutionContext={"Database": "default"}, **kw)["QueryExecutionId"]
    for _ in range(polls):
        q = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
        if q["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return qid, q
        time.sleep(0.05)
    raise RuntimeError(f"{sql} did not finish")


def results(athena, qid, page=1000):
    """(ColumnInfo, rows with the header row first); NULL as None."""
    rows, token, meta = [], None, None
    while True:
        kw = {"QueryExecutionId": qid, "MaxResults": page}
        if token:
            kw["NextToken"] = token
        r = athena.get_query_results(**kw)
        meta = meta or r["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]
        rows += [[d.get("VarCharValue") for d in row["Data"]] for row in r["ResultSet"]["Rows"]]
        token = r.get("NextToken")
        if not token:
            return meta, rows
