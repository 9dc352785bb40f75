//! Statements answered from the catalog rather than planned, routed by
//! their parsed form: `SHOW TABLES`, `SHOW SCHEMAS`/`DATABASES`, `SHOW
//! COLUMNS`, `DESCRIBE`, `SHOW CREATE TABLE` and `SHOW PARTITIONS`.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{SessionContext, col};
use datafusion::sql::sqlparser::ast::{
    ObjectName, ShowCreateObject, ShowStatementFilter, ShowStatementFilterPosition, ShowStatementOptions, Statement,
};
use sediment_trino::types::trino_type;

use crate::service::{QueryError, QueryOutput, QueryService};

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
        stale: None,
    }
}

/// An empty answer (`PREPARE`, `DEALLOCATE PREPARE`).
pub(crate) fn empty() -> QueryOutput {
    table_output(&[], vec![])
}

/// A `LIKE` pattern (`%`, `_`) or one of Athena's (`*`, alternatives
/// separated by `|`), matched case-insensitively.
pub(crate) fn matches(pattern: Option<&str>, name: &str) -> bool {
    let Some(p) = pattern else { return true };
    let name: Vec<char> = name.to_lowercase().chars().collect();
    p.to_lowercase().split('|').any(|alt| glob(&alt.chars().collect::<Vec<_>>(), &name))
}

/// Wildcard match without backtracking blow-up: `%`/`*` any run, `_` one character.
fn glob(p: &[char], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == s[si]) && p[pi] != '%' && p[pi] != '*' {
            pi += 1;
            si += 1;
        } else if pi < p.len() && (p[pi] == '%' || p[pi] == '*') {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%' || *c == '*')
}

/// The last part of a (possibly qualified, possibly quoted) name, lower case.
fn last_name(name: &ObjectName) -> String {
    name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_lowercase()).unwrap_or_default()
}

/// The pattern of a `SHOW … LIKE 'p'` (or Athena's bare `SHOW … 'p'`).
fn pattern(options: &ShowStatementOptions) -> Option<&str> {
    match options.filter_position.as_ref()? {
        ShowStatementFilterPosition::Infix(f) | ShowStatementFilterPosition::Suffix(f) => match f {
            ShowStatementFilter::Like(p) | ShowStatementFilter::ILike(p) | ShowStatementFilter::NoKeyword(p) => Some(p),
            ShowStatementFilter::Where(_) => None,
        },
    }
}

/// The object a `SHOW … FROM x` names.
fn shown_in(options: &ShowStatementOptions) -> Option<&ObjectName> {
    options.show_in.as_ref().and_then(|i| i.parent_name.as_ref())
}

/// Answers a metadata statement, or `None` to plan it as SQL.
pub(crate) async fn answer(svc: &QueryService, ctx: &SessionContext, stmt: &Statement) -> Result<Option<QueryOutput>, QueryError> {
    Ok(Some(match stmt {
        Statement::ShowTables { show_options, .. } => {
            if let Some(db) = shown_in(show_options).map(last_name)
                && !svc.databases().contains(&db)
            {
                return Err(QueryError::user(format!("SCHEMA_NOT_FOUND: Schema '{db}' does not exist")));
            }
            let mut names = tables(svc).await?;
            names.retain(|n| matches(pattern(show_options), n));
            table_output(&["tab_name"], names.into_iter().map(|n| vec![n]).collect())
        }
        Statement::ShowSchemas { show_options, .. } | Statement::ShowDatabases { show_options, .. } => {
            let mut dbs = svc.databases();
            dbs.retain(|n| matches(pattern(show_options), n));
            table_output(&["database_name"], dbs.into_iter().map(|n| vec![n]).collect())
        }
        Statement::ShowColumns { show_options, .. } => {
            let name = shown_in(show_options).map(last_name).unwrap_or_default();
            describe(ctx, &name).await?
        }
        Statement::ExplainTable { table_name, .. } => describe(ctx, &last_name(table_name)).await?,
        Statement::ShowCreate { obj_type: ShowCreateObject::Table | ShowCreateObject::View, obj_name } => {
            let name = last_name(obj_name);
            let schema = table_schema(ctx, &name).await?;
            let cols: Vec<String> = schema.fields().iter().map(|f| format!("  `{}` {}", f.name(), trino_type(f.data_type()))).collect();
            let location = format!("{}/{}", svc.lake().url().trim_end_matches('/'), sediment_lake::paths::table_root(&name));
            let text = format!(
                "CREATE EXTERNAL TABLE `{}`.`{name}`(\n{})\nLOCATION '{location}'\nTBLPROPERTIES ('table_type'='DELTA')",
                svc.settings().database,
                cols.join(",\n")
            );
            table_output(&["createtab_stmt"], vec![vec![text]])
        }
        // sqlparser reads `SHOW PARTITIONS t` as a session variable named `PARTITIONS t`.
        Statement::ShowVariable { variable } if variable.first().is_some_and(|v| v.value.eq_ignore_ascii_case("partitions")) => {
            let name = variable.last().map(|v| v.value.to_lowercase()).unwrap_or_default();
            partitions(svc, ctx, &name).await?
        }
        _ => return Ok(None),
    }))
}

async fn describe(ctx: &SessionContext, name: &str) -> Result<QueryOutput, QueryError> {
    let schema = table_schema(ctx, name).await?;
    let rows = schema.fields().iter().map(|f| vec![f.name().clone(), trino_type(f.data_type()), String::new(), String::new()]).collect();
    Ok(table_output(&["column", "type", "extra", "comment"], rows))
}

/// `SHOW PARTITIONS`: the partition values of a partitioned table, as `col=value`.
async fn partitions(svc: &QueryService, ctx: &SessionContext, name: &str) -> Result<QueryOutput, QueryError> {
    let column = if name == "events" || svc.config().views.iter().any(|v| v.name == name) {
        "dt"
    } else if svc.config().projections.iter().any(|p| p.name == name) {
        "snapshot_date"
    } else {
        return Err(QueryError::user(format!("TABLE_NOT_FOUND: Table '{name}' is not partitioned or does not exist")));
    };
    let df = ctx.table(name).await?.select(vec![col(column)])?.distinct()?.sort(vec![col(column).sort(true, true)])?;
    let mut rows = Vec::new();
    for b in df.collect().await? {
        for v in sediment_trino::types::render_column(b.column(0)).into_iter().flatten() {
            rows.push(vec![format!("{column}={v}")]);
        }
    }
    Ok(table_output(&["partition"], rows))
}

/// Every table name of the lake database, sorted (the typed event tables
/// of the current `events` version).
pub async fn tables(svc: &QueryService) -> Result<Vec<String>, QueryError> {
    use datafusion::catalog::SchemaProvider;
    svc.catalog().typed().await.map_err(QueryError::from)?;
    let mut names = svc.catalog().schema_provider().table_names();
    names.sort();
    Ok(names)
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
        assert!(matches(Some("o_d%s"), "orders"));
        assert!(matches(Some("%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%x"), "orders_x"));
        assert!(!matches(Some("%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%b"), &"a".repeat(200)));
    }

    #[test]
    fn statements_are_routed_by_their_parsed_form() {
        let kind = |sql: &str| {
            let stmt = sediment_trino::parse(sql).unwrap().remove(0);
            match stmt {
                Statement::ShowTables { show_options, .. } => {
                    format!("tables {:?} {:?}", shown_in(&show_options).map(last_name), pattern(&show_options))
                }
                Statement::ExplainTable { table_name, .. } => format!("describe {}", last_name(&table_name)),
                Statement::ShowVariable { variable } => format!("variable {}", variable.len()),
                other => format!("{other}"),
            }
        };
        assert_eq!(kind("-- a note from the editor\nSHOW TABLES"), "tables None None");
        assert_eq!(kind("show tables in default like 'o%'"), "tables Some(\"default\") Some(\"o%\")");
        assert_eq!(kind("/* x */ DESCRIBE \"Events\";"), "describe events");
        assert_eq!(kind("SHOW PARTITIONS events"), "variable 2");
    }
}
