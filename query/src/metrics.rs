//! Prometheus metrics of the service.

use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default)]
struct Inner {
    queries: u64,
    errors: u64,
    cancelled: u64,
    bytes_scanned: u64,
    rows: u64,
    buckets: [u64; BUCKETS.len()],
    sum_seconds: f64,
}

/// Counters and a latency histogram, rendered in the Prometheus text format.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<Inner>);

impl Metrics {
    pub fn record(&self, latency: Duration, outcome: Result<(u64, u64), bool>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.queries += 1;
        match outcome {
            Ok((bytes, rows)) => {
                m.bytes_scanned += bytes;
                m.rows += rows;
            }
            Err(true) => m.cancelled += 1,
            Err(false) => m.errors += 1,
        }
        let s = latency.as_secs_f64();
        m.sum_seconds += s;
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                m.buckets[i] += 1;
            }
        }
    }

    pub fn render(&self, requests: sediment_lake::storage::RequestCounts) -> String {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP sediment_queries_total Queries run.\n# TYPE sediment_queries_total counter\n");
        out.push_str(&format!("sediment_queries_total {}\n", m.queries));
        out.push_str("# HELP sediment_query_errors_total Queries that failed.\n# TYPE sediment_query_errors_total counter\n");
        out.push_str(&format!("sediment_query_errors_total {}\n", m.errors));
        out.push_str("# HELP sediment_queries_cancelled_total Queries cancelled (timeout, cutoff, stop).\n# TYPE sediment_queries_cancelled_total counter\n");
        out.push_str(&format!("sediment_queries_cancelled_total {}\n", m.cancelled));
        out.push_str(
            "# HELP sediment_bytes_scanned_total Bytes read by successful queries.\n# TYPE sediment_bytes_scanned_total counter\n",
        );
        out.push_str(&format!("sediment_bytes_scanned_total {}\n", m.bytes_scanned));
        out.push_str("# HELP sediment_rows_returned_total Rows returned.\n# TYPE sediment_rows_returned_total counter\n");
        out.push_str(&format!("sediment_rows_returned_total {}\n", m.rows));
        out.push_str("# HELP sediment_query_duration_seconds Query latency.\n# TYPE sediment_query_duration_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            out.push_str(&format!("sediment_query_duration_seconds_bucket{{le=\"{b}\"}} {}\n", m.buckets[i]));
        }
        out.push_str(&format!("sediment_query_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", m.queries));
        out.push_str(&format!("sediment_query_duration_seconds_sum {}\n", m.sum_seconds));
        out.push_str(&format!("sediment_query_duration_seconds_count {}\n", m.queries));
        out.push_str("# HELP sediment_object_store_requests_total Requests to the lake's object store, by kind.\n# TYPE sediment_object_store_requests_total counter\n");
        for (op, n) in
            [("get", requests.get), ("head", requests.head), ("list", requests.list), ("put", requests.put), ("delete", requests.delete)]
        {
            out.push_str(&format!("sediment_object_store_requests_total{{op=\"{op}\"}} {n}\n"));
        }
        out
    }
}

/// Per-source lag gauges: age of the newest visible record of each source
/// and shard, and when it arrived.
pub fn render_lag(sources: &[sediment_engine::lag::SourceLag]) -> String {
    use sediment_engine::lag::SourceLag;
    /// Name, help text, and the value of a source.
    type Gauge = (&'static str, &'static str, fn(&SourceLag) -> f64);
    let label = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let mut out = String::new();
    let gauges: [Gauge; 2] = [
        ("sediment_source_lag_seconds", "Age of the newest record visible to SQL, per source and shard.", |l| l.age_ms as f64 / 1000.0),
        ("sediment_source_newest_arrival_seconds", "When the newest visible record arrived at its source (Unix time).", |l| {
            l.newest_arrival.timestamp_millis() as f64 / 1000.0
        }),
    ];
    for (name, help, value) in gauges {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for l in sources {
            let shard = label(l.shard.as_deref().unwrap_or(""));
            out.push_str(&format!("{name}{{source=\"{}\",shard=\"{shard}\"}} {}\n", label(&l.source), value(l)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_gauges_per_source_and_shard() {
        let at = chrono::DateTime::from_timestamp_millis(1_793_613_600_123).unwrap();
        let lag = |source: &str, shard: Option<&str>, age_ms| sediment_engine::lag::SourceLag {
            source: source.into(),
            shard: shard.map(str::to_owned),
            newest_position: "p".into(),
            newest_arrival: at,
            age_ms,
        };
        let text = render_lag(&[lag("kinesis", Some("shardId-1\"x"), 1500), lag("sqs", None, 20)]);
        assert!(text.contains("sediment_source_lag_seconds{source=\"kinesis\",shard=\"shardId-1\\\"x\"} 1.5\n"), "{text}");
        assert!(text.contains("sediment_source_lag_seconds{source=\"sqs\",shard=\"\"} 0.02\n"), "{text}");
        assert!(text.contains("sediment_source_newest_arrival_seconds{source=\"sqs\",shard=\"\"} 1793613600.123\n"), "{text}");
        assert_eq!(text.matches("# TYPE").count(), 2);
    }
}
