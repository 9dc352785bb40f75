"""Read your writes through the Athena API: boto3 sends the ingest token in
the `X-Sediment-After` header of StartQueryExecution (an event hook, as a
client would), and the execution's answer holds the event; a write that
never arrives ends FAILED, NOT_YET_VISIBLE, retryable.

usage: athena_after.py ENDPOINT TOKEN EVENT_ID
"""
import json
import os
import sys

import boto3

sys.path.insert(0, os.path.dirname(__file__))
import athena_helpers  # noqa: E402

endpoint, token, event_id = sys.argv[1:4]
athena = boto3.client("athena", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="e2e", aws_secret_access_key="e2e")
after = {"value": token}


def add_header(request, **_):
    request.headers["X-Sediment-After"] = after["value"]


athena.meta.events.register("before-sign.athena.StartQueryExecution", add_header)
problems = []

qid, e = athena_helpers.run(athena, f"SELECT count(*) FROM events WHERE event_id = '{event_id}'")
if e["Status"]["State"] != "SUCCEEDED":
    problems.append(f"with the token: {e['Status']}")
else:
    rows = athena_helpers.results(athena, qid)[1]
    if rows[1] != ["1"]:
        problems.append(f"with the token the answer is {rows}")

after["value"] = json.dumps({"event_ids": ["never-delivered"], "wait": "300ms"})
qid, e = athena_helpers.run(athena, "SELECT 1")
status = e["Status"]
if status["State"] != "FAILED" or not status.get("StateChangeReason", "").startswith("NOT_YET_VISIBLE"):
    problems.append(f"a write never delivered: {status}")
if not status.get("AthenaError", {}).get("Retryable"):
    problems.append(f"NOT_YET_VISIBLE is not marked retryable: {status}")

after["value"] = "not-a-token"
try:
    athena.start_query_execution(QueryString="SELECT 1")
    problems.append("a malformed X-Sediment-After header was accepted")
except athena.exceptions.InvalidRequestException:
    pass

print(json.dumps({"problems": problems}))
sys.exit(1 if problems else 0)
