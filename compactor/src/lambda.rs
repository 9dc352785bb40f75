//! The compaction Lambda: an EventBridge scheduled event (or a Step
//! Functions task naming a day) runs the same code as `sediment compact`.

use sediment_lake::{Config, Lake};
use serde_json::{Value, json};

use crate::{Compactor, DaySelection};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not retryable: {0}")]
    BadRequest(String),
    #[error("retryable: {0}")]
    Run(#[from] crate::Error),
}

/// What the invocation asks for: `{"date": "YYYY-MM-DD"}`, `{"from": …, "to": …}`,
/// `{"all": true}`, optionally `"rebuild": true`; anything else (a scheduled
/// event) compacts closed and dirty days.
pub fn selection(event: &Value, now: chrono::DateTime<chrono::Utc>) -> Result<(DaySelection, bool), Error> {
    let date = |k: &str| -> Result<Option<chrono::NaiveDate>, Error> {
        match event.get(k).and_then(Value::as_str) {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| Error::BadRequest(format!("`{k}` is not a YYYY-MM-DD date: {s:?}"))),
        }
    };
    let rebuild = event.get("rebuild").and_then(Value::as_bool).unwrap_or(false);
    let sel = match (date("date")?, date("from")?, date("to")?) {
        (Some(d), _, _) => DaySelection::One(d),
        (None, Some(a), Some(b)) => DaySelection::Range(a, b),
        (None, Some(_), None) | (None, None, Some(_)) => return Err(Error::BadRequest("give both `from` and `to`".into())),
        (None, None, None) if event.get("all").and_then(Value::as_bool) == Some(true) => DaySelection::All,
        _ => DaySelection::Closed { now },
    };
    Ok((sel, rebuild))
}

/// The days of a backfill range, for a Step Functions Map state:
/// `{"dates_from": "2026-11-01", "dates_to": "2026-11-03"}` → `{"dates": [...]}`.
pub fn plan_dates(event: &Value) -> Result<Option<Value>, Error> {
    let (Some(from), Some(to)) = (event.get("dates_from"), event.get("dates_to")) else { return Ok(None) };
    let parse = |v: &Value, k: &str| -> Result<chrono::NaiveDate, Error> {
        v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| Error::BadRequest(format!("`{k}` is not a YYYY-MM-DD date: {v}")))
    };
    let (from, to) = (parse(from, "dates_from")?, parse(to, "dates_to")?);
    if to < from || (to - from).num_days() > 3660 {
        return Err(Error::BadRequest(format!("bad backfill range {from} … {to}")));
    }
    let dates: Vec<String> = from.iter_days().take_while(|d| *d <= to).map(|d| d.to_string()).collect();
    Ok(Some(json!({"dates": dates})))
}

/// Handles one invocation; the `Ok` value is the response (the run report).
pub async fn handle(compactor: &Compactor, event: &Value) -> Result<Value, Error> {
    if let Some(plan) = plan_dates(event)? {
        return Ok(plan);
    }
    let (sel, rebuild) = selection(event, chrono::Utc::now())?;
    let report = compactor.run(&sel, rebuild, &()).await?;
    tracing::info!(days = report.committed_days(), derived = report.derived.len(), ms = report.duration_ms, "compaction finished");
    Ok(json!({
        "committed_days": report.committed_days(),
        "days": report.days,
        "derived": report.derived.len(),
        "duration_ms": report.duration_ms,
    }))
}

/// The compactor named by `SEDIMENT_LAKE` / `SEDIMENT_CONFIG` (a path).
pub fn from_env() -> Result<Compactor, String> {
    let mut config = match std::env::var("SEDIMENT_CONFIG") {
        Ok(p) if !p.is_empty() => Config::load(std::path::Path::new(&p)).map_err(|e| e.to_string())?,
        _ => Config::default(),
    };
    // Never plan for more memory than the function has (90% of it: the
    // runtime and the kernel's page cache for spill files need the rest).
    if let Some(mb) = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok().and_then(|v| v.parse::<u64>().ok()) {
        let cap = (mb * 9 / 10).max(sediment_lake::config::MIN_COMPACTION_MEMORY_MB);
        if config.compaction.memory_limit_mb > cap {
            tracing::warn!(
                configured = config.compaction.memory_limit_mb,
                function_mb = mb,
                used = cap,
                "compaction.memory_limit_mb exceeds the function's memory; lowered"
            );
            config.compaction.memory_limit_mb = cap;
        }
    }
    let url = config.lake_url(std::env::var("SEDIMENT_LAKE").ok().as_deref());
    let lake = Lake::open(&url).map_err(|e| e.to_string())?;
    Ok(Compactor::new(lake, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections() {
        let now = chrono::Utc::now();
        let scheduled = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(selection(&scheduled, now).unwrap().0, DaySelection::Closed { now });
        assert_eq!(selection(&json!({"date": "2026-11-02"}), now).unwrap().0, DaySelection::One("2026-11-02".parse().unwrap()));
        assert!(selection(&json!({"from": "2026-11-02"}), now).is_err());
        assert!(selection(&json!({"date": "yesterday"}), now).is_err());
        assert!(selection(&json!({"all": true, "rebuild": true}), now).unwrap().1);
        let plan = plan_dates(&json!({"dates_from": "2026-02-27", "dates_to": "2026-03-01"})).unwrap().unwrap();
        assert_eq!(plan, json!({"dates": ["2026-02-27", "2026-02-28", "2026-03-01"]}));
        assert!(plan_dates(&json!({"dates_from": "2026-03-02", "dates_to": "2026-03-01"})).is_err());
        assert!(plan_dates(&json!({"date": "2026-03-02"})).unwrap().is_none());
    }
}
