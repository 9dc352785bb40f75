#!/usr/bin/env python3
"""Input shapes other than `sediment generate`'s, written by an independent generator.

`wide`: one day of events with large nested payloads (line items, addresses, attributes), few
aggregates with long histories, camelCase envelopes with epoch-millisecond times on a fifth of
the lines, and 2% duplicates. Usage: bench/shapes.py wide EVENTS OUT [--day YYYY-MM-DD] [--seed N]
"""
import argparse
import datetime as dt
import json
import random

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()
TYPES = [("OrderPlaced", 0.30), ("OrderPaid", 0.25), ("OrderShipped", 0.2), ("OrderDelivered", 0.15), ("OrderRefunded", 0.1)]


def payload(rng, kind):
    items = [
        {"sku": f"SKU-{rng.randrange(100000):06d}", "qty": rng.randrange(1, 9), "price": round(rng.uniform(1, 400), 2),
         "title": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 9))),
         "attributes": {rng.choice(WORDS): rng.choice(WORDS) for _ in range(rng.randrange(1, 5))}}
        for _ in range(rng.randrange(1, 7))
    ]
    return {
        "kind": kind,
        "customer": {"id": f"c-{rng.randrange(50000)}", "tier": rng.choice(["gold", "silver", "basic"]),
                     "address": {"street": f"{rng.randrange(1, 999)} {rng.choice(WORDS).title()} St",
                                 "city": rng.choice(WORDS).title(), "zip": f"{rng.randrange(99999):05d}"}},
        "items": items,
        "total": round(sum(i["qty"] * i["price"] for i in items), 2),
        "currency": rng.choice(["EUR", "USD", "GBP"]),
        "notes": None if rng.random() < 0.7 else " ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 30))),
        "flags": [rng.choice(WORDS) for _ in range(rng.randrange(0, 4))],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", choices=["wide"])
    ap.add_argument("events", type=int)
    ap.add_argument("out")
    ap.add_argument("--day", default="2026-09-15")
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    start = dt.datetime.fromisoformat(a.day).replace(tzinfo=dt.timezone.utc)
    aggregates = max(1, a.events // 40)
    seq = {}
    with open(a.out, "w") as f:
        written = []
        for n in range(a.events):
            agg = f"ord-{rng.randrange(aggregates):07d}"
            seq[agg] = seq.get(agg, 0) + 1
            at = start + dt.timedelta(milliseconds=rng.randrange(86_400_000))
            kind = rng.choices([t for t, _ in TYPES], [w for _, w in TYPES])[0]
            event_id = f"{a.seed:04x}-{n:012x}"
            if n % 5 == 0:
                env = {"eventId": event_id, "eventType": kind, "eventVersion": 2, "aggregateType": "Order", "aggregateId": agg,
                       "sequence": seq[agg], "occurredAt": int(at.timestamp() * 1000), "payload": payload(rng, kind),
                       "metadata": {"traceId": f"{rng.getrandbits(64):016x}", "tenant": rng.choice(WORDS)}}
            else:
                env = {"event_id": event_id, "event_type": kind, "event_version": 1, "aggregate_type": "Order", "aggregate_id": agg,
                       "sequence": seq[agg], "occurred_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                       "payload": payload(rng, kind)}
            line = json.dumps(env, separators=(",", ":"))
            f.write(line + "\n")
            if rng.random() < 0.02:
                written.append(line)
            if len(written) > 50:
                f.write(written.pop(0) + "\n")
        for line in written:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
