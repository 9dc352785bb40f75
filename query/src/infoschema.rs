//! `information_schema` as Athena shows it: DataFusion's tables (`tables`,
//! `columns`, `views`, `schemata`, …) over the lake catalog, with
//! `columns.data_type` in Trino's names (`varchar`, `timestamp(3)`,
//! `array(varchar)`) rather than Arrow's (`Utf8`, `Timestamp(ms)`), which BI
//! tools and analysts' scripts read to type their columns, and
//! `ordinal_position` counted from 1, as in Trino.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use sediment_trino::types::trino_type;

/// The schema to register as `information_schema` in a catalog (with
/// DataFusion's own turned off in the session).
#[derive(Debug)]
pub(crate) struct InformationSchema {
    inner: InformationSchemaProvider,
    /// Read before each table, so the typed event tables listed are those
    /// of the current `events` version.
    lake: Arc<sediment_engine::catalog::LakeCatalog>,
}

impl InformationSchema {
    pub(crate) fn new(catalogs: Arc<dyn CatalogProviderList>, lake: Arc<sediment_engine::catalog::LakeCatalog>) -> Self {
        Self { inner: InformationSchemaProvider::new(catalogs), lake }
    }
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.lake.typed().await?;
        let Some(table) = self.inner.table(name).await? else { return Ok(None) };
        if name.eq_ignore_ascii_case("columns") {
            return Ok(Some(Arc::new(TrinoColumns { inner: table })));
        }
        Ok(Some(table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// `information_schema.columns` with Trino's type names.
#[derive(Debug)]
struct TrinoColumns {
    inner: Arc<dyn TableProvider>,
}

#[async_trait]
impl TableProvider for TrinoColumns {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // A few rows per table: read whole, renamed, served from memory.
        let plan = self.inner.scan(session, None, &[], None).await?;
        let batches = datafusion::physical_plan::collect(plan, session.task_ctx()).await?;
        let schema = self.schema();
        let position = schema.index_of("data_type")?;
        let ordinal = schema.index_of("ordinal_position")?;
        let renamed = batches
            .into_iter()
            .map(|b| {
                let mut columns = b.columns().to_vec();
                columns[position] = trino_names(&columns[position]);
                let one: ArrayRef = Arc::new(arrow::array::UInt64Array::from(vec![1u64]));
                let one = arrow::compute::cast(&one, columns[ordinal].data_type())?;
                columns[ordinal] = arrow::compute::kernels::numeric::add(&columns[ordinal], &arrow::array::Scalar::new(one))?;
                Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(&[renamed], schema, projection.cloned())?)
    }
}

/// Arrow type names (as DataFusion writes them) as Trino's; a name that
/// does not read back is kept.
fn trino_names(column: &ArrayRef) -> ArrayRef {
    let Some(names) = column.as_string_opt::<i32>() else { return Arc::clone(column) };
    let out: StringArray =
        names.iter().map(|n| n.map(|n| DataType::from_str(n).map(|t| trino_type(&t)).unwrap_or_else(|_| n.to_owned()))).collect();
    Arc::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_names_become_trino_names() {
        let types = [
            DataType::Utf8,
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            DataType::new_list(DataType::Int64, true),
            DataType::Decimal128(10, 2),
        ];
        let names: ArrayRef = Arc::new(StringArray::from(types.iter().map(|t| t.to_string()).collect::<Vec<_>>()));
        let out = trino_names(&names);
        let out: Vec<&str> = out.as_string::<i32>().iter().map(Option::unwrap).collect();
        assert_eq!(out, ["varchar", "timestamp(3)", "array(bigint)", "decimal(10,2)"]);
    }
}
