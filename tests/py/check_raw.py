"""Independent check of the raw zone: reads every raw Parquet file with
pyarrow (over S3 with boto3, or a local directory) and compares every field
with the NDJSON input, parsed here from the envelope rules, not by Sediment.

usage: check_raw.py INPUT.ndjson LAKE (s3://bucket/prefix or a directory)
prints a JSON summary; exits non-zero on any mismatch.
"""
import base64
import io
import json
import os
import sys
from collections import Counter
from datetime import datetime, timezone

import pyarrow.parquet as pq


def lake_objects(lake):
    """(key relative to the lake, bytes) for every object."""
    if lake.startswith("s3://"):
        import boto3

        bucket, _, prefix = lake[5:].partition("/")
        s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for o in page.get("Contents", []):
                key = o["Key"][len(prefix):].lstrip("/")
                yield key, s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    else:
        for dirpath, _, files in os.walk(lake):
            for f in files:
                full = os.path.join(dirpath, f)
                with open(full, "rb") as fh:
                    yield os.path.relpath(full, lake), fh.read()


def field(obj, snake, camel):
    if snake in obj:
        return obj[snake]
    return obj.get(camel)


def parse(line):
    """The envelope per DESIGN.md, or None if invalid."""
    try:
        obj = json.loads(line)
    except Exception:
        return None
    if not isinstance(obj, dict):
        return None
    eid = field(obj, "event_id", "eventId")
    etype = field(obj, "event_type", "eventType")
    atype = field(obj, "aggregate_type", "aggregateType")
    aid = field(obj, "aggregate_id", "aggregateId")
    occ = field(obj, "occurred_at", "occurredAt")
    payload = obj.get("payload")
    version = field(obj, "event_version", "eventVersion")
    seq = obj.get("sequence")
    for s in (eid, etype, atype, aid):
        if not isinstance(s, str) or not s:
            return None
    if len(eid) > 256 or not isinstance(payload, dict):
        return None
    if version is None:
        version = 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return None
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0):
        return None
    if isinstance(occ, bool):
        return None
    if isinstance(occ, int):
        ms = occ
    elif isinstance(occ, str):
        try:
            t = datetime.fromisoformat(occ.replace("Z", "+00:00"))
        except ValueError:
            return None
        if t.tzinfo is None:
            return None
        ms = int(t.timestamp()) * 1000 + t.microsecond // 1000
    else:
        return None
    meta = obj.get("metadata")
    return {
        "event_id": eid,
        "event_type": etype,
        "event_version": version,
        "aggregate_type": atype,
        "aggregate_id": aid,
        "sequence": seq,
        "occurred_ms": ms,
        "payload": payload,
        "metadata": meta,
    }


def main():
    input_path, lake = sys.argv[1], sys.argv[2]
    lines = [l for l in open(input_path, "rb").read().split(b"\n") if l.strip()]
    valid, invalid = [], []
    for l in lines:
        e = parse(l)
        (valid if e else invalid).append(e if e else l)
    by_id = {}
    for e in valid:
        by_id.setdefault(e["event_id"], e)
    expected_rows = Counter(e["event_id"] for e in valid)

    rows = Counter()
    problems = []
    raw_files = 0
    quarantined = []
    for key, data in lake_objects(lake):
        if key.startswith("raw/events/"):
            raw_files += 1
            parts = dict(p.split("=", 1) for p in key.split("/")[2:4])
            table = pq.read_table(io.BytesIO(data))
            for r in table.to_pylist():
                rows[r["event_id"]] += 1
                e = by_id.get(r["event_id"])
                if e is None:
                    problems.append(f"{key}: unknown event {r['event_id']}")
                    continue
                occ = r["occurred_at"]
                occ_ms = int(occ.timestamp() * 1000) if occ.tzinfo else int(occ.replace(tzinfo=timezone.utc).timestamp() * 1000)
                checks = [
                    ("event_type", r["event_type"], e["event_type"]),
                    ("event_version", r["event_version"], e["event_version"]),
                    ("aggregate_type", r["aggregate_type"], e["aggregate_type"]),
                    ("aggregate_id", r["aggregate_id"], e["aggregate_id"]),
                    ("sequence", r["sequence"], e["sequence"]),
                    ("occurred_at", occ_ms, e["occurred_ms"]),
                    ("payload", json.loads(r["payload"]), e["payload"]),
                    ("metadata", json.loads(r["metadata"]) if r["metadata"] else None, e["metadata"]),
                ]
                day = datetime.fromtimestamp(e["occurred_ms"] / 1000, tz=timezone.utc)
                checks.append(("dt", parts["dt"], day.strftime("%Y-%m-%d")))
                checks.append(("hour", parts["hour"], day.strftime("%H")))
                for name, got, want in checks:
                    if got != want:
                        problems.append(f"{key} {r['event_id']} {name}: {got!r} != {want!r}")
                if occ.tzinfo is None or str(occ.tzinfo) not in ("UTC", "+00:00"):
                    problems.append(f"{key}: occurred_at is not UTC-adjusted ({occ.tzinfo})")
            col = table.schema.field("occurred_at").type
            if str(col) != "timestamp[ms, tz=UTC]":
                problems.append(f"{key}: occurred_at type {col}")
        elif key.startswith("quarantine/"):
            for l in data.split(b"\n"):
                if l.strip():
                    quarantined.append(json.loads(l))
    if rows != expected_rows:
        missing = sum((expected_rows - rows).values())
        extra = sum((rows - expected_rows).values())
        problems.append(f"row multiset differs: {missing} missing, {extra} extra")
    got_bad = Counter(base64.b64decode(q["raw_base64"]) for q in quarantined)
    want_bad = Counter(invalid)
    if got_bad != want_bad:
        problems.append(f"quarantine differs: {sum((want_bad - got_bad).values())} missing, {sum((got_bad - want_bad).values())} extra")
    if any(not q.get("reason") for q in quarantined):
        problems.append("a quarantine record has no reason")
    summary = {
        "lines": len(lines),
        "valid": len(valid),
        "distinct": len(by_id),
        "invalid": len(invalid),
        "raw_rows": sum(rows.values()),
        "raw_files": raw_files,
        "quarantined": len(quarantined),
        "problems": problems[:20],
    }
    print(json.dumps(summary))
    sys.stdout.flush()
    # Skip interpreter teardown: native readers can abort while their threads exit.
    os._exit(1 if problems else 0)


if __name__ == "__main__":
    main()
