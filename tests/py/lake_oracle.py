"""The oracle the client tests check answers against: DuckDB over the first
arrival of each (day, event_id) of the NDJSON a lake was built from."""
from datetime import datetime, timezone

import duckdb
import pandas as pd

from check_raw import parse


def events_oracle(events_path):
    """A DuckDB connection holding `ev(dt DATE, event_type, sequence, amount)`
    (`amount`: the payload's, where it is a number)."""
    first = {}
    for line in open(events_path, "rb").read().split(b"\n"):
        if line.strip():
            e = parse(line)
            if e:
                d = datetime.fromtimestamp(e["occurred_ms"] / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
                first.setdefault((d, e["event_id"]), e)
    def amount(e):
        a = e["payload"].get("amount")
        return float(a) if isinstance(a, (int, float)) and not isinstance(a, bool) else None

    ev = pd.DataFrame(
        [{"dt": d, "event_type": e["event_type"], "sequence": e["sequence"], "amount": amount(e)} for (d, _), e in first.items()]
    )
    duck = duckdb.connect()
    duck.register("ev_raw", ev)
    duck.execute("CREATE TABLE ev AS SELECT CAST(dt AS DATE) AS dt, event_type, sequence, CAST(amount AS DOUBLE) AS amount FROM ev_raw")
    return duck


def counts(duck):
    """Events per day and per event type, from the oracle."""
    per_day = {d: n for d, n in duck.execute("SELECT dt, count(*) FROM ev GROUP BY dt").fetchall()}
    per_type = dict(duck.execute("SELECT event_type, count(*) FROM ev GROUP BY event_type").fetchall())
    return per_day, per_type
