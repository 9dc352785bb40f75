"""The analyst query suite: each query in Sediment's dialect (Athena/Trino)
and DuckDB's, over the same compacted events (DuckDB reads the Delta
table's Parquet files directly with hive partitioning; `orders` is the
projection's daily snapshot table, read the same way)."""

# (name, sediment SQL, duckdb SQL). {day} is a day in the middle of the data.
QUERIES = [
    ("count_all",
     "SELECT count(*) FROM events",
     "SELECT count(*) FROM ev"),
    ("daily_counts",
     "SELECT dt, count(*) AS n FROM events GROUP BY dt ORDER BY dt",
     "SELECT dt, count(*) AS n FROM ev GROUP BY dt ORDER BY dt"),
    ("daily_revenue_json",
     "SELECT dt, sum(CAST(json_extract_scalar(payload, '$.amount') AS DOUBLE)) AS revenue FROM events WHERE event_type = 'PaymentReceived' GROUP BY dt ORDER BY dt",
     "SELECT dt, sum(CAST(json_extract_string(payload, '$.amount') AS DOUBLE)) AS revenue FROM ev WHERE event_type = 'PaymentReceived' GROUP BY dt ORDER BY dt"),
    ("event_type_mix",
     "SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY n DESC",
     "SELECT event_type, count(*) AS n FROM ev GROUP BY event_type ORDER BY n DESC"),
    ("top_customers",
     "SELECT json_extract_scalar(payload, '$.customer_id') AS customer, count(*) AS orders FROM events WHERE event_type = 'OrderPlaced' GROUP BY 1 ORDER BY orders DESC, customer LIMIT 10",
     "SELECT json_extract_string(payload, '$.customer_id') AS customer, count(*) AS orders FROM ev WHERE event_type = 'OrderPlaced' GROUP BY 1 ORDER BY orders DESC, customer LIMIT 10"),
    ("distinct_aggregates",
     "SELECT aggregate_type, count(DISTINCT aggregate_id) FROM events GROUP BY 1 ORDER BY 1",
     "SELECT aggregate_type, count(DISTINCT aggregate_id) FROM ev GROUP BY 1 ORDER BY 1"),
    ("approx_distinct_orders",
     "SELECT approx_distinct(aggregate_id) FROM events WHERE aggregate_type = 'Order'",
     "SELECT approx_count_distinct(aggregate_id) FROM ev WHERE aggregate_type = 'Order'"),
    ("percentile_amount",
     "SELECT approx_percentile(CAST(json_extract_scalar(payload, '$.amount') AS DOUBLE), 0.9) FROM events WHERE event_type = 'PaymentReceived'",
     "SELECT approx_quantile(CAST(json_extract_string(payload, '$.amount') AS DOUBLE), 0.9) FROM ev WHERE event_type = 'PaymentReceived'"),
    ("funnel",
     "SELECT count(DISTINCT CASE WHEN event_type = 'OrderPlaced' THEN aggregate_id END) AS placed, count(DISTINCT CASE WHEN event_type = 'PaymentReceived' THEN aggregate_id END) AS paid, count(DISTINCT CASE WHEN event_type = 'OrderShipped' THEN aggregate_id END) AS shipped, count(DISTINCT CASE WHEN event_type = 'OrderDelivered' THEN aggregate_id END) AS delivered FROM events WHERE aggregate_type = 'Order'",
     "SELECT count(DISTINCT CASE WHEN event_type = 'OrderPlaced' THEN aggregate_id END) AS placed, count(DISTINCT CASE WHEN event_type = 'PaymentReceived' THEN aggregate_id END) AS paid, count(DISTINCT CASE WHEN event_type = 'OrderShipped' THEN aggregate_id END) AS shipped, count(DISTINCT CASE WHEN event_type = 'OrderDelivered' THEN aggregate_id END) AS delivered FROM ev WHERE aggregate_type = 'Order'"),
    ("one_day_filter",
     "SELECT event_type, count(*) FROM events WHERE dt = DATE '{day}' GROUP BY 1 ORDER BY 1",
     "SELECT event_type, count(*) FROM ev WHERE dt = DATE '{day}' GROUP BY 1 ORDER BY 1"),
    ("point_lookup",
     "SELECT event_id, event_type, sequence FROM events WHERE aggregate_id = 'O-0000042' ORDER BY sequence",
     "SELECT event_id, event_type, sequence FROM ev WHERE aggregate_id = 'O-0000042' ORDER BY sequence"),
    ("hourly_activity",
     "SELECT hour(occurred_at) AS h, count(*) FROM events GROUP BY 1 ORDER BY 1",
     "SELECT hour(occurred_at) AS h, count(*) FROM ev GROUP BY 1 ORDER BY 1"),
    ("time_to_ship",
     "SELECT avg(date_diff('minute', p.t, s.t)) FROM (SELECT aggregate_id, min(occurred_at) AS t FROM events WHERE event_type = 'OrderPlaced' GROUP BY 1) p JOIN (SELECT aggregate_id, min(occurred_at) AS t FROM events WHERE event_type = 'OrderShipped' GROUP BY 1) s ON p.aggregate_id = s.aggregate_id",
     "SELECT avg(date_diff('minute', p.t, s.t)) FROM (SELECT aggregate_id, min(occurred_at) AS t FROM ev WHERE event_type = 'OrderPlaced' GROUP BY 1) p JOIN (SELECT aggregate_id, min(occurred_at) AS t FROM ev WHERE event_type = 'OrderShipped' GROUP BY 1) s ON p.aggregate_id = s.aggregate_id"),
    ("last_status_window",
     "SELECT status, count(*) FROM (SELECT json_extract_scalar(payload, '$.status') AS status, row_number() OVER (PARTITION BY aggregate_id ORDER BY sequence DESC) AS rn FROM events WHERE aggregate_type = 'Order') WHERE rn = 1 GROUP BY 1 ORDER BY 1",
     "SELECT status, count(*) FROM (SELECT json_extract_string(payload, '$.status') AS status, row_number() OVER (PARTITION BY aggregate_id ORDER BY sequence DESC) AS rn FROM ev WHERE aggregate_type = 'Order') WHERE rn = 1 GROUP BY 1 ORDER BY 1"),
    ("channel_by_day",
     "SELECT dt, json_extract_scalar(payload, '$.channel') AS channel, count(*) FROM events WHERE event_type = 'OrderPlaced' GROUP BY 1, 2 ORDER BY 1, 2",
     "SELECT dt, json_extract_string(payload, '$.channel') AS channel, count(*) FROM ev WHERE event_type = 'OrderPlaced' GROUP BY 1, 2 ORDER BY 1, 2"),
    ("cancel_reasons",
     "SELECT json_extract_scalar(payload, '$.reason') AS reason, count(*) FROM events WHERE event_type = 'OrderCancelled' GROUP BY 1 ORDER BY 2 DESC",
     "SELECT json_extract_string(payload, '$.reason') AS reason, count(*) FROM ev WHERE event_type = 'OrderCancelled' GROUP BY 1 ORDER BY 2 DESC"),
    ("snapshot_as_of",
     "SELECT status, count(*) AS n, sum(total) AS value FROM orders WHERE snapshot_date = DATE '{day}' GROUP BY 1 ORDER BY 1",
     "SELECT status, count(*) AS n, sum(total) AS value FROM orders WHERE snapshot_date = DATE '{day}' GROUP BY 1 ORDER BY 1"),
    ("latest_events",
     "SELECT event_id, occurred_at FROM events ORDER BY occurred_at DESC, event_id LIMIT 20",
     "SELECT event_id, occurred_at FROM ev ORDER BY occurred_at DESC, event_id LIMIT 20"),
    # Per-aggregate questions the layout is chosen for.
    ("top1_per_aggregate",
     "SELECT event_type, count(*) AS n FROM (SELECT event_type, row_number() OVER (PARTITION BY aggregate_id ORDER BY sequence DESC) AS rn FROM events) WHERE rn = 1 GROUP BY 1 ORDER BY 1",
     "SELECT event_type, count(*) AS n FROM (SELECT event_type, row_number() OVER (PARTITION BY aggregate_id ORDER BY sequence DESC) AS rn FROM ev) WHERE rn = 1 GROUP BY 1 ORDER BY 1"),
    ("busy_aggregates",
     "SELECT aggregate_type, count(*) AS n FROM (SELECT aggregate_type, aggregate_id FROM events GROUP BY 1, 2 HAVING count(*) >= 8) GROUP BY 1 ORDER BY 1",
     "SELECT aggregate_type, count(*) AS n FROM (SELECT aggregate_type, aggregate_id FROM ev GROUP BY 1, 2 HAVING count(*) >= 8) GROUP BY 1 ORDER BY 1"),
    ("aggregate_history",
     "SELECT event_id, event_type, sequence, occurred_at, payload FROM events WHERE aggregate_type = 'Order' AND aggregate_id = 'O-0001234' ORDER BY sequence",
     "SELECT event_id, event_type, sequence, occurred_at, payload FROM ev WHERE aggregate_type = 'Order' AND aggregate_id = 'O-0001234' ORDER BY sequence"),
    ("snapshot_week",
     "SELECT snapshot_date, count(*) AS n, sum(total) AS value FROM orders WHERE snapshot_date >= DATE '{day}' AND snapshot_date < DATE '{day}' + INTERVAL '7' DAY GROUP BY 1 ORDER BY 1",
     "SELECT snapshot_date, count(*) AS n, sum(total) AS value FROM orders WHERE snapshot_date >= DATE '{day}' AND snapshot_date < DATE '{day}' + INTERVAL '7' DAY GROUP BY 1 ORDER BY 1"),
]

# The queries that read payload fields, over the typed event tables (the
# fields as typed columns, ADR 0017) instead of the payload text.
TYPED = {
    "daily_revenue_json": "SELECT dt, sum(amount) AS revenue FROM payment_received GROUP BY dt ORDER BY dt",
    "top_customers": "SELECT customer_id AS customer, count(*) AS orders FROM order_placed GROUP BY 1 ORDER BY orders DESC, customer LIMIT 10",
    "percentile_amount": "SELECT approx_percentile(amount, 0.9) FROM payment_received",
    "channel_by_day": "SELECT dt, channel, count(*) FROM order_placed GROUP BY 1, 2 ORDER BY 1, 2",
}

# DuckDB's natural typed layout of the same events: per event type, the
# curated rows with the payload as the STRUCT DuckDB infers from it
# (json_group_structure → json_transform), written as Parquet; the table
# name → its event type, and the TYPED queries over it in DuckDB's dialect.
DUCK_TYPED_TABLES = {"payment_received": "PaymentReceived", "order_placed": "OrderPlaced"}
DUCK_TYPED = {
    "daily_revenue_json": "SELECT dt, sum(p.amount) AS revenue FROM payment_received GROUP BY dt ORDER BY dt",
    "top_customers": "SELECT p.customer_id AS customer, count(*) AS orders FROM order_placed GROUP BY 1 ORDER BY orders DESC, customer LIMIT 10",
    "percentile_amount": "SELECT approx_quantile(p.amount, 0.9) FROM payment_received",
    "channel_by_day": "SELECT dt, p.channel AS channel, count(*) FROM order_placed GROUP BY 1, 2 ORDER BY 1, 2",
}

# The same queries in stock DataFusion's own dialect, for the queries it can
# run without Sediment's functions (it has no JSON functions), over the same
# files: the peer that measures what the dialect and catalog layers cost.
DATAFUSION = {
    "count_all": "SELECT count(*) FROM ev",
    "daily_counts": "SELECT dt, count(*) AS n FROM ev GROUP BY dt ORDER BY dt",
    "event_type_mix": "SELECT event_type, count(*) AS n FROM ev GROUP BY event_type ORDER BY n DESC",
    "distinct_aggregates": "SELECT aggregate_type, count(DISTINCT aggregate_id) FROM ev GROUP BY 1 ORDER BY 1",
    "approx_distinct_orders": "SELECT approx_distinct(aggregate_id) FROM ev WHERE aggregate_type = 'Order'",
    "funnel": dict((q[0], q[2]) for q in QUERIES)["funnel"],
    "one_day_filter": "SELECT event_type, count(*) FROM ev WHERE dt = DATE '{day}' GROUP BY 1 ORDER BY 1",
    "point_lookup": "SELECT event_id, event_type, sequence FROM ev WHERE aggregate_id = 'O-0000042' ORDER BY sequence",
    "hourly_activity": "SELECT date_part('hour', occurred_at) AS h, count(*) FROM ev GROUP BY 1 ORDER BY 1",
    "time_to_ship": "SELECT avg(floor((date_part('epoch', s.t) - date_part('epoch', p.t)) / 60)) FROM (SELECT aggregate_id, min(occurred_at) AS t FROM ev WHERE event_type = 'OrderPlaced' GROUP BY 1) p JOIN (SELECT aggregate_id, min(occurred_at) AS t FROM ev WHERE event_type = 'OrderShipped' GROUP BY 1) s ON p.aggregate_id = s.aggregate_id",
    "snapshot_as_of": "SELECT status, count(*) AS n, sum(total) AS value FROM orders WHERE snapshot_date = DATE '{day}' GROUP BY 1 ORDER BY 1",
    "latest_events": "SELECT event_id, occurred_at FROM ev ORDER BY occurred_at DESC, event_id LIMIT 20",
    "top1_per_aggregate": dict((q[0], q[2]) for q in QUERIES)["top1_per_aggregate"],
    "busy_aggregates": dict((q[0], q[2]) for q in QUERIES)["busy_aggregates"],
    "aggregate_history": dict((q[0], q[2]) for q in QUERIES)["aggregate_history"],
    "snapshot_week": dict((q[0], q[2]) for q in QUERIES)["snapshot_week"],
}
