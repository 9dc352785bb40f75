//! How far behind its sources the lake is: per source (Kinesis or DynamoDB
//! stream shard, Kafka topic partition, SQS queue, EventBridge, the CLI), the
//! newest position visible to `events` and when it reached its source.
//!
//! Read from `events` itself, so what is reported is what a query sees,
//! exactly once: `source`, `source_position` and `ingested_at` (the source's
//! arrival time where it gives one) of the days that can hold the newest
//! arrivals — the days with raw files not yet compacted, and the newest two.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::functions::expr_fn::split_part;
use datafusion::functions_aggregate::expr_fn::{first_value, max};
use datafusion::logical_expr::{Expr, SortExpr, case, col, lit};
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::events::date32;
use crate::state::EventsState;

/// One source's newest visible position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceLag {
    /// `kinesis`, `dynamodb`, `sqs`, `kafka`, `eventbridge` or `cli`.
    pub source: String,
    /// The Kinesis shard or Kafka topic partition; none for queues, buses,
    /// DynamoDB streams (whose positions carry no shard) and the CLI.
    pub shard: Option<String>,
    /// The newest position visible, as the `source_position` column holds it.
    pub newest_position: String,
    /// When that record reached its source (`ingested_at`).
    pub newest_arrival: DateTime<Utc>,
    /// Milliseconds from `newest_arrival` to the time of the report.
    pub age_ms: i64,
}

/// The days whose rows can be the newest arrivals: every day with raw files
/// that no compaction covers yet, and the newest two days with data.
pub fn recent_days(state: &EventsState) -> BTreeSet<NaiveDate> {
    let mut days: BTreeSet<NaiveDate> = state.uncovered().keys().copied().collect();
    days.extend(state.days().into_iter().rev().take(2));
    days
}

/// The shard part of a `source_position`: `<shard>:<sequence>` for Kinesis,
/// `<topic>-<partition>@<offset>` for Kafka.
fn shard_of() -> Expr {
    case(col("source"))
        .when(lit("kinesis"), split_part(col("source_position"), lit(":"), lit(1)))
        .when(lit("kafka"), split_part(col("source_position"), lit("@"), lit(1)))
        .otherwise(lit(ScalarValue::Utf8(None)))
        .unwrap_or_else(|_| lit(ScalarValue::Utf8(None)))
}

/// Per source and shard, the newest visible position of `days`, by arrival
/// (then by position, for records that arrived in the same millisecond).
pub async fn source_lag(ctx: &SessionContext, days: &BTreeSet<NaiveDate>, now: DateTime<Utc>) -> Result<Vec<SourceLag>> {
    if days.is_empty() {
        return Ok(Vec::new());
    }
    let in_days: Vec<Expr> = days.iter().map(|d| lit(ScalarValue::Date32(Some(date32(*d))))).collect();
    let newest = vec![
        SortExpr::new(col("ingested_at"), false, false),
        SortExpr::new(datafusion::functions::expr_fn::character_length(col("source_position")), false, false),
        SortExpr::new(col("source_position"), false, false),
    ];
    let batches = ctx
        .table("events")
        .await?
        .filter(col("dt").in_list(in_days, false))?
        .aggregate(
            vec![col("source"), shard_of().alias("shard")],
            vec![
                first_value(col("source_position"), newest).alias("newest_position"),
                max(datafusion::logical_expr::cast(col("ingested_at"), crate::schema::delta_timestamp())).alias("newest_arrival"),
            ],
        )?
        .sort(vec![col("source").sort(true, true), col("shard").sort(true, true)])?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let text = |i: usize| datafusion::arrow::compute::cast(b.column(i), &datafusion::arrow::datatypes::DataType::Utf8);
        let (source, shard, position) = (text(0)?, text(1)?, text(2)?);
        let (source, shard, position) = (source.as_string::<i32>(), shard.as_string::<i32>(), position.as_string::<i32>());
        let arrival = b.column(3).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            if source.is_null(i) || arrival.is_null(i) {
                continue;
            }
            let Some(at) = DateTime::from_timestamp_micros(arrival.value(i)) else { continue };
            out.push(SourceLag {
                source: source.value(i).to_owned(),
                shard: (!shard.is_null(i)).then(|| shard.value(i).to_owned()),
                newest_position: if position.is_null(i) { String::new() } else { position.value(i).to_owned() },
                newest_arrival: at,
                age_ms: (now - at).num_milliseconds().max(0),
            });
        }
    }
    Ok(out)
}
