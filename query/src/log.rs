//! The query log: one event per query at target `sediment::query`, which
//! `sediment serve` writes as one JSON line on stderr.

use std::time::Duration;

use crate::service::{QueryError, QueryOutput, QueryRequest};

/// Query text kept in the log, in characters.
const SQL_CHARS: usize = 1000;

/// The error's type: its `UPPER_SNAKE:` prefix where it has one.
pub(crate) fn error_type(e: &QueryError) -> String {
    let head = e.message.split(':').next().unwrap_or("");
    if !head.is_empty() && head.len() < 40 && head.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        head.to_owned()
    } else if e.cancelled {
        "CANCELLED".into()
    } else if e.category == crate::service::Category::System {
        "INTERNAL_ERROR".into()
    } else {
        "USER_ERROR".into()
    }
}

pub(crate) fn query(req: &QueryRequest, result: &Result<QueryOutput, QueryError>, total: Duration) {
    let c = &req.client;
    let sql: String = req.sql.chars().take(SQL_CHARS).collect();
    let ms = |d: Duration| d.as_millis() as u64;
    match result {
        Ok(o) => tracing::info!(
            target: "sediment::query",
            query_id = %c.query_id,
            interface = c.interface,
            key_id = c.key_id.as_deref().unwrap_or(""),
            state = "SUCCEEDED",
            queued_ms = ms(o.queued),
            planning_ms = ms(o.planning),
            execution_ms = ms(o.execution),
            total_ms = ms(total),
            bytes_scanned = o.bytes_scanned,
            rows = o.rows as u64,
            sql = %sql,
        ),
        Err(e) => tracing::info!(
            target: "sediment::query",
            query_id = %c.query_id,
            interface = c.interface,
            key_id = c.key_id.as_deref().unwrap_or(""),
            state = if e.cancelled { "CANCELLED" } else { "FAILED" },
            total_ms = ms(total),
            error_type = %error_type(e),
            error = %e.message,
            sql = %sql,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_come_from_the_prefix() {
        assert_eq!(error_type(&QueryError::user("QUERY_TOO_COMPLEX: deep")), "QUERY_TOO_COMPLEX");
        assert_eq!(error_type(&QueryError::user("column x not found")), "USER_ERROR");
        assert_eq!(error_type(&QueryError::system("disk: gone")), "INTERNAL_ERROR");
    }
}
