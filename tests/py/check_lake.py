"""Independent check of the curated tables: reads them with Python `deltalake`
(delta-rs through its own Python bindings) and compares them with answers
computed here from the NDJSON inputs alone.

usage: check_lake.py LAKE ASOF_DATE INPUT.ndjson [INPUT.ndjson ...]
  - events: per-day row counts equal the distinct (dt, event_id) of the inputs,
    no event_id twice in a day, every row's fields equal the input's;
  - orders: the snapshot as of ASOF_DATE equals a replay of every Order event
    up to that day (status = last non-null, items = sum of ItemAdded
    quantities, payments = count of PaymentReceived, deleted on OrderDeleted).
prints a JSON summary; exits non-zero on any mismatch.
"""
import json
import os
import sys
from collections import Counter, defaultdict
from datetime import datetime, timezone

from deltalake import DeltaTable

sys.path.insert(0, os.path.dirname(__file__))
from check_raw import parse  # noqa: E402  (the envelope rules, written independently of Sediment)


def storage_options(lake):
    if not lake.startswith("s3://"):
        return None
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
    }


def table(lake, name):
    return DeltaTable(f"{lake.rstrip('/')}/tables/{name}", storage_options=storage_options(lake)).to_pyarrow_table().to_pylist()


def day_of(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).date()


def main():
    lake, asof = sys.argv[1], datetime.strptime(sys.argv[2], "%Y-%m-%d").date()
    events = []
    for path in sys.argv[3:]:
        for line in open(path, "rb").read().split(b"\n"):
            if line.strip():
                e = parse(line)
                if e:
                    events.append(e)
    first = {}
    for e in events:
        first.setdefault((day_of(e["occurred_ms"]), e["event_id"]), e)
    expected = Counter(d for d, _ in first)
    problems = []

    rows = table(lake, "events")
    got = Counter(r["dt"] for r in rows)
    if got != expected:
        problems.append(f"events per day: got {dict(sorted(got.items()))}, want {dict(sorted(expected.items()))}")
    seen = Counter((r["dt"], r["event_id"]) for r in rows)
    dups = [k for k, n in seen.items() if n > 1]
    if dups:
        problems.append(f"{len(dups)} event ids twice in a day, e.g. {dups[0]}")
    for r in rows:
        e = first.get((r["dt"], r["event_id"]))
        if e is None:
            problems.append(f"unexpected event {r['event_id']} on {r['dt']}")
            continue
        occ = int(r["occurred_at"].timestamp() * 1000)
        if (r["event_type"], r["aggregate_id"], r["sequence"], occ, json.loads(r["payload"])) != (
            e["event_type"], e["aggregate_id"], e["sequence"], e["occurred_ms"], e["payload"]
        ):
            problems.append(f"event {r['event_id']} differs from its input")
            break

    # Replay orders up to ASOF.
    by_agg = defaultdict(list)
    for (d, _), e in first.items():
        if e["aggregate_type"] == "Order" and d <= asof:
            by_agg[e["aggregate_id"]].append((d, e["sequence"] if e["sequence"] is not None else -1, e["occurred_ms"], e["event_id"], e))
    replay = {}
    for agg, evs in by_agg.items():
        state = None
        for _, _, _, _, e in sorted(evs, key=lambda t: t[:4]):
            if e["event_type"] == "OrderDeleted":
                state = None
                continue
            if state is None:
                state = {"status": None, "items": None, "payments": 0, "version": None}
            p = e["payload"]
            if p.get("status") is not None:
                state["status"] = p["status"]
            if e["event_type"] == "ItemAdded" and isinstance(p.get("quantity"), int):
                state["items"] = (state["items"] or 0) + p["quantity"]
            if e["event_type"] == "PaymentReceived":
                state["payments"] += 1
            if e["sequence"] is not None:
                state["version"] = e["sequence"]
        if state is not None:
            replay[agg] = state
    snap = {r["aggregate_id"]: r for r in table(lake, "orders") if r["snapshot_date"] == asof}
    if set(snap) != set(replay):
        problems.append(f"orders as of {asof}: {len(set(replay) - set(snap))} missing, {len(set(snap) - set(replay))} extra")
    for agg, want in replay.items():
        r = snap.get(agg)
        if r is None:
            continue
        got_row = {"status": r["status"], "items": r["items"], "payments": r["payments"], "version": r["version"]}
        if got_row != want:
            problems.append(f"order {agg} as of {asof}: got {got_row}, want {want}")
            break
    print(json.dumps({
        "events": len(rows),
        "days": {str(k): v for k, v in sorted(got.items())},
        "orders_asof": len(snap),
        "problems": problems[:10],
    }))
    sys.stdout.flush()
    # Skip interpreter teardown: native readers can abort while their threads exit.
    os._exit(1 if problems else 0)


if __name__ == "__main__":
    main()
