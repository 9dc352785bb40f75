//! Statements answered from the catalog rather than planned: `SHOW TABLES`,
//! `SHOW SCHEMAS`/`DATABASES`, `SHOW COLUMNS`, `DESCRIBE`, `SHOW CREATE
//! TABLE`, `SHOW PARTITIONS`, and `PREPARE`/`DEALLOCATE PREPARE`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use regex::Regex;
use sediment_engine::dialect::types::trino_type;

use crate::service::{QueryError, QueryOutput, QueryService};

fn re(p: &str) -> Regex {
    // Patterns are constants below.
    Regex::new(&format!("(?is)^\\s*{p}\\s*;?\\s*$")).expect("valid pattern")
}

static SHOW_TABLES: LazyLock<Regex> = LazyLock::new(|| re(r"SHOW\s+TABLES(?:\s+(?:FROM|IN)\s+([\w.]+))?(?:\s+(?:LIKE\s+)?'([^']*)')?"));
static SHOW_SCHEMAS: LazyLock<Regex> =
    LazyLock::new(|| re(r"SHOW\s+(?:SCHEMAS|DATABASES)(?:\s+(?:FROM|IN)\s+\w+)?(?:\s+(?:LIKE\s+)?'([^']*)')?"));
static DESCRIBE: LazyLock<Regex> = LazyLock::new(|| re(r#"(?:DESCRIBE|DESC|SHOW\s+COLUMNS\s+(?:FROM|IN))\s+([\w."`]+)"#));
static SHOW_CREATE: LazyLock<Regex> = LazyLock::new(|| re(r#"SHOW\s+CREATE\s+TABLE\s+([\w."`]+)"#));
static SHOW_PARTITIONS: LazyLock<Regex> = LazyLock::new(|| re(r#"SHOW\s+PARTITIONS\s+([\w."`]+)"#));
static PREPARE: LazyLock<Regex> = LazyLock::new(|| re(r"PREPARE\s+(\w+)\s+FROM\s+(.+)"));
static DEALLOCATE: LazyLock<Regex> = LazyLock::new(|| re(r"DEALLOCATE\s+PREPARE\s+(\w+)"));

fn table_output(columns: &[&str], rows: Vec<Vec<String>>) -> QueryOutput {
    let schema = Arc::new(Schema::new(columns.iter().map(|c| Field::new(*c, DataType::Utf8, true)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| Arc::new(StringArray::from(rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>())) as ArrayRef)
        .collect();
    let n = rows.len();
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays).unwrap_or_else(|_| RecordBatch::new_empty(Arc::clone(&schema)));
    QueryOutput {
        schema,
        batches: vec![batch],
        rows: n,
        bytes_scanned: 0,
        planning: Duration::ZERO,
        execution: Duration::ZERO,
        queued: Duration::ZERO,
    }
}

/// `LIKE` (with `%`, `_`) or Athena's `'*'`/`|` patterns, case-insensitive.
fn matches(pattern: Option<&str>, name: &str) -> bool {
    let Some(p) = pattern else { return true };
    let p = p.to_lowercase();
    p.split('|').any(|alt| {
        let mut rx = String::from("^");
        for c in alt.chars() {
            match c {
                '%' | '*' => rx.push_str(".*"),
                '_' => rx.push('.'),
                c => rx.push_str(&regex::escape(&c.to_string())),
            }
        }
        rx.push('$');
        Regex::new(&rx).map(|r| r.is_match(name)).unwrap_or(false)
    })
}

fn table_name(raw: &str) -> String {
    raw.rsplit('.').next().unwrap_or(raw).trim_matches(|c| c == '"' || c == '`').to_lowercase()
}

/// Answers a metadata statement, or `None` to plan it as SQL.
pub(crate) async fn answer(svc: &QueryService, ctx: &SessionContext, sql: &str) -> Result<Option<QueryOutput>, QueryError> {
    if let Some(c) = SHOW_TABLES.captures(sql) {
        if let Some(db) = c.get(1).map(|m| table_name(m.as_str()))
            && !svc.databases().contains(&db)
        {
            return Err(QueryError::user(format!("SCHEMA_NOT_FOUND: Schema '{db}' does not exist")));
        }
        let mut names = tables(svc);
        names.retain(|n| matches(c.get(2).map(|m| m.as_str()), n));
        names.sort();
        return Ok(Some(table_output(&["tab_name"], names.into_iter().map(|n| vec![n]).collect())));
    }
    if let Some(c) = SHOW_SCHEMAS.captures(sql) {
        let mut dbs = svc.databases();
        dbs.retain(|n| matches(c.get(1).map(|m| m.as_str()), n));
        return Ok(Some(table_output(&["database_name"], dbs.into_iter().map(|n| vec![n]).collect())));
    }
    if let Some(c) = DESCRIBE.captures(sql) {
        let name = table_name(&c[1]);
        let schema = table_schema(ctx, &name).await?;
        let rows =
            schema.fields().iter().map(|f| vec![f.name().clone(), trino_type(f.data_type()), String::new(), String::new()]).collect();
        return Ok(Some(table_output(&["column", "type", "extra", "comment"], rows)));
    }
    if let Some(c) = SHOW_CREATE.captures(sql) {
        let name = table_name(&c[1]);
        let schema = table_schema(ctx, &name).await?;
        let cols: Vec<String> = schema.fields().iter().map(|f| format!("  `{}` {}", f.name(), trino_type(f.data_type()))).collect();
        let location = format!("{}/{}", svc.lake().url().trim_end_matches('/'), sediment_lake::paths::table_root(&name));
        let text = format!(
            "CREATE EXTERNAL TABLE `{}`.`{name}`(\n{})\nLOCATION '{location}'\nTBLPROPERTIES ('table_type'='DELTA')",
            svc.settings().database,
            cols.join(",\n")
        );
        return Ok(Some(table_output(&["createtab_stmt"], vec![vec![text]])));
    }
    if let Some(c) = SHOW_PARTITIONS.captures(sql) {
        let name = table_name(&c[1]);
        let (col, query) = if name == "events" {
            ("dt", "SELECT DISTINCT dt FROM events ORDER BY dt".to_owned())
        } else if svc.config().projections.iter().any(|p| p.name == name) {
            ("snapshot_date", format!("SELECT DISTINCT snapshot_date FROM {name} ORDER BY 1"))
        } else if svc.config().views.iter().any(|v| v.name == name) {
            ("dt", format!("SELECT DISTINCT dt FROM {name} ORDER BY 1"))
        } else {
            return Err(QueryError::user(format!("TABLE_NOT_FOUND: Table '{name}' is not partitioned or does not exist")));
        };
        let batches = ctx.sql(&query).await?.collect().await?;
        let mut rows = Vec::new();
        for b in &batches {
            for v in sediment_engine::dialect::types::render_column(b.column(0)).into_iter().flatten() {
                rows.push(vec![format!("{col}={v}")]);
            }
        }
        return Ok(Some(table_output(&["partition"], rows)));
    }
    if let Some(c) = PREPARE.captures(sql) {
        svc.prepare(&c[1], &c[2]);
        return Ok(Some(table_output(&[], vec![])));
    }
    if let Some(c) = DEALLOCATE.captures(sql) {
        svc.prepare(&c[1], "");
        return Ok(Some(table_output(&[], vec![])));
    }
    Ok(None)
}

/// Every table name of the lake database.
pub fn tables(svc: &QueryService) -> Vec<String> {
    use datafusion::catalog::SchemaProvider;
    let mut names = svc.catalog().schema_provider().table_names();
    names.sort();
    names
}

async fn table_schema(ctx: &SessionContext, name: &str) -> Result<arrow::datatypes::SchemaRef, QueryError> {
    match ctx.table(name).await {
        Ok(df) => Ok(Arc::new(df.schema().as_arrow().clone())),
        Err(_) => Err(QueryError::user(format!("TABLE_NOT_FOUND: Table '{name}' does not exist"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches(Some("ord%"), "orders"));
        assert!(matches(Some("*current"), "orders_current"));
        assert!(matches(Some("events|orders"), "orders"));
        assert!(!matches(Some("ord_"), "orders"));
        assert!(SHOW_TABLES.is_match("show tables in default like 'o%'"));
        assert!(DESCRIBE.is_match("DESCRIBE \"Events\";"));
        assert!(PREPARE.is_match("PREPARE q FROM SELECT * FROM events WHERE dt = ?"));
    }
}
