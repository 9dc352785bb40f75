//! A table over an explicit list of Parquet files with partition values.
//!
//! The lake's readers never list directories to find data: which files make
//! up a table is decided by the Delta log and the coverage manifests (see
//! [`crate::state`]). This provider scans exactly the files it is given,
//! prunes them by partition filters before planning, and leaves row-level
//! filters to the Parquet scan (statistics, page index, pushdown).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::SortOptions;
use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, Result, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

/// The object store URL every lake scan uses (registered by [`crate::session`]).
pub fn lake_store_url() -> ObjectStoreUrl {
    // A constant, valid URL.
    ObjectStoreUrl::parse(format!("{}://lake/", sediment_lake::storage::ENGINE_SCHEME)).expect("constant URL")
}

/// One Parquet file of a table: its lake-relative key, size, and partition values.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    pub key: String,
    pub size: u64,
    /// Rows, when the table's log records them (Delta `numRecords`).
    pub num_rows: Option<usize>,
    pub partition_values: Vec<ScalarValue>,
}

/// Parquet files with known partition values.
#[derive(Debug, Clone)]
pub struct FileListTable {
    file_schema: SchemaRef,
    partition_cols: Vec<FieldRef>,
    schema: SchemaRef,
    files: Vec<DataFile>,
    /// Columns every file is sorted by, when declared.
    file_ordering: Vec<(String, SortOptions)>,
    /// Files (by key) whose row groups are each sorted by `file_ordering`
    /// but not in order across the file, with their row-group counts.
    sorted_row_groups: HashMap<String, usize>,
}

impl FileListTable {
    pub fn new(file_schema: SchemaRef, partition_cols: Vec<FieldRef>, files: Vec<DataFile>) -> Self {
        let mut fields: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        fields.extend(partition_cols.iter().cloned());
        let schema = Arc::new(Schema::new_with_metadata(fields, file_schema.metadata().clone()));
        Self { file_schema, partition_cols, schema, files, file_ordering: Vec::new(), sorted_row_groups: HashMap::new() }
    }

    /// Declares every file sorted by `ordering` (column, options): each file
    /// is then scanned as its own partition, so the order holds per
    /// partition and a sort over the table becomes a merge of the files.
    /// The caller vouches for the order; nothing here checks it.
    pub fn with_file_ordering(mut self, ordering: Vec<(String, SortOptions)>) -> Self {
        self.file_ordering = ordering;
        self
    }

    /// Declares that the row groups of the files named (key → row-group
    /// count) are each sorted by the file ordering, not the file as a whole
    /// (a file written a sorted row group at a time): each such row group is
    /// then scanned as its own partition.
    pub fn with_sorted_row_groups(mut self, row_groups: HashMap<String, usize>) -> Self {
        self.sorted_row_groups = row_groups;
        self
    }

    pub fn files(&self) -> &[DataFile] {
        &self.files
    }

    fn is_partition_filter(&self, expr: &Expr) -> bool {
        let mut only_partition = true;
        let mut any = false;
        let _ = expr.apply(|e| {
            let e = e.clone();
            if let Expr::Column(c) = &e {
                any = true;
                if !self.partition_cols.iter().any(|f| f.name() == &c.name) {
                    only_partition = false;
                }
            }
            if is_volatile(&e) {
                only_partition = false;
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        });
        any && only_partition
    }

    /// Files whose partition values satisfy every partition-only filter.
    pub fn prune(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<DataFile>> {
        let partition_filters: Vec<Expr> = filters.iter().filter(|f| self.is_partition_filter(f)).cloned().collect();
        let Some(predicate) = conjunction(partition_filters) else {
            return Ok(self.files.clone());
        };
        // Evaluate the predicate once per distinct partition tuple.
        let mut tuples: BTreeMap<String, (Vec<ScalarValue>, Vec<usize>)> = BTreeMap::new();
        for (i, f) in self.files.iter().enumerate() {
            let key = format!("{:?}", f.partition_values);
            tuples.entry(key).or_insert_with(|| (f.partition_values.clone(), Vec::new())).1.push(i);
        }
        if tuples.is_empty() {
            return Ok(Vec::new());
        }
        let part_schema = Arc::new(Schema::new(self.partition_cols.clone()));
        let columns: Vec<ArrayRef> = (0..self.partition_cols.len())
            .map(|c| ScalarValue::iter_to_array(tuples.values().map(|(v, _)| v[c].clone())))
            .collect::<Result<_>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&part_schema), columns)?;
        let df_schema = DFSchema::try_from(part_schema)?;
        let physical = state.create_physical_expr(predicate, &df_schema)?;
        let mask = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask =
            mask.as_any().downcast_ref::<BooleanArray>().cloned().unwrap_or_else(|| BooleanArray::from(vec![true; batch.num_rows()]));
        let mut keep = Vec::new();
        for (row, (_, members)) in tuples.values().enumerate() {
            if mask.is_valid(row) && mask.value(row) {
                keep.extend(members.iter().map(|&i| self.files[i].clone()));
            }
        }
        Ok(keep)
    }
}

impl FileListTable {
    /// One group per sorted run: a whole file, or one row group of a file
    /// declared with [`FileListTable::with_sorted_row_groups`].
    fn sorted_runs(&self, files: Vec<DataFile>) -> Vec<FileGroup> {
        let mut groups = Vec::with_capacity(files.len());
        for f in files {
            debug_assert_eq!(f.partition_values.len(), self.partition_cols.len());
            let mut pf = PartitionedFile::new(f.key.clone(), f.size);
            pf.partition_values = f.partition_values;
            match self.sorted_row_groups.get(&f.key) {
                Some(&n) if n > 1 => groups.extend((0..n).map(|i| {
                    let mut plan = ParquetAccessPlan::new_none(n);
                    plan.scan(i);
                    FileGroup::new(vec![pf.clone().with_extension(plan)])
                })),
                _ => groups.push(FileGroup::new(vec![pf])),
            }
        }
        groups
    }
}

fn is_volatile(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility == datafusion::logical_expr::Volatility::Volatile)
}

/// Spreads files over `n` groups, largest first onto the lightest group.
fn balance(mut files: Vec<DataFile>, n: usize, partition_cols: usize) -> Vec<FileGroup> {
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.key.cmp(&b.key)));
    let n = n.max(1).min(files.len().max(1));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for f in files {
        let (load, list) = groups.iter_mut().min_by_key(|(load, _)| *load).expect("n ≥ 1 groups");
        *load += f.size;
        let mut pf = PartitionedFile::new(f.key, f.size);
        debug_assert_eq!(f.partition_values.len(), partition_cols);
        pf.partition_values = f.partition_values;
        list.push(pf);
    }
    groups.into_iter().filter(|(_, l)| !l.is_empty()).map(|(_, l)| FileGroup::new(l)).collect()
}

#[async_trait]
impl TableProvider for FileListTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| if self.is_partition_filter(f) { TableProviderFilterPushDown::Exact } else { TableProviderFilterPushDown::Inexact })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.prune(state, filters)?;
        if files.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let options = state.table_options().parquet.clone();
        let format = ParquetFormat::default().with_options(options);
        let table_schema =
            TableSchema::builder(Arc::clone(&self.file_schema)).with_table_partition_cols(self.partition_cols.clone()).build();
        let source = format.file_source(table_schema);
        // Exact row counts from the log answer `count(*)` without reading files.
        let num_rows: Option<usize> = files.iter().map(|f| f.num_rows).sum();
        let mut statistics = Statistics::new_unknown(&self.schema);
        if let Some(n) = num_rows {
            statistics.num_rows = Precision::Exact(n);
            statistics.total_byte_size = Precision::Inexact(files.iter().map(|f| f.size as usize).sum());
        }
        let (groups, ordering) = if self.file_ordering.is_empty() {
            (balance(files, state.config().target_partitions(), self.partition_cols.len()), vec![])
        } else {
            let ordering = self
                .file_ordering
                .iter()
                .map(|(name, options)| Ok(PhysicalSortExpr::new(Arc::new(Column::new_with_schema(name, &self.schema)?), *options)))
                .collect::<Result<Vec<_>>>()?;
            (self.sorted_runs(files), LexOrdering::new(ordering).into_iter().collect())
        };
        let has_row_filters = filters.iter().any(|f| !self.is_partition_filter(f));
        let config = FileScanConfigBuilder::new(lake_store_url(), source)
            .with_statistics(statistics)
            .with_file_groups(groups)
            .with_output_ordering(ordering)
            .with_projection_indices(projection.cloned())?
            .with_limit(if has_row_filters { None } else { limit })
            .build();
        format.create_physical_plan(state, config).await
    }
}
