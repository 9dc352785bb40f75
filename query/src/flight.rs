//! Arrow Flight SQL (`query.flight_listen`, `sediment serve
//! --flight-listen`): ADBC, the Flight SQL JDBC driver, and columnar results
//! with no text conversion.
//!
//! ```text
//!  GetFlightInfo(statement | prepared) ─▶ QueryService::run ─▶ result held under a ticket
//!  DoGet(ticket) ─▶ the result's record batches, as they are
//!  CreatePreparedStatement ─▶ QueryService::describe (columns, parameter types)
//!  DoPut(prepared, parameters) ─▶ bound values for the next execution
//!  GetCatalogs / GetDbSchemas / GetTables / GetTableTypes / GetSqlInfo ─▶ the lake catalog
//! ```
//!
//! The SQL is Trino's, as at every door; a query runs through the same
//! service (read-only, memory, timeout, slots, query log, metrics). A client
//! that cancels its GetFlightInfo call cancels the query. API keys are
//! bearer tokens (`authorization: Bearer <key>`), or the password of a
//! Basic handshake, which answers with the key as the bearer token.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use base64::Engine;
use datafusion::catalog::SchemaProvider;
use datafusion::datasource::TableType;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::Statement;
use futures::{Stream, TryStreamExt};
use prost::Message;
use sediment_trino as dialect;
use tonic::{Request, Response, Status, Streaming};

use crate::service::{CATALOG, Category, Client, Hold, Parsed, QueryError, QueryOutput, QueryRequest, QueryService};

/// How long a result waits for its DoGet, and how many may wait at once
/// (in bytes, they count in [`QueryService::retained`] with every door's).
const RESULT_TTL: Duration = Duration::from_secs(300);
const MAX_WAITING_RESULTS: usize = 64;
/// Prepared statements a server keeps (the oldest goes first).
const MAX_PREPARED: usize = 1024;

/// Serves Flight SQL on a bound listener until the process ends.
pub async fn serve_on(door: FlightDoor, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = door.tls.clone() {
        server = server.tls_config(tls).map_err(std::io::Error::other)?;
    }
    server
        .add_service(FlightServiceServer::new(door))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await
        .map_err(std::io::Error::other)
}

/// The door's TLS identity, when `query.flight_tls_cert` and
/// `query.flight_tls_key` are set.
fn tls_config(settings: &sediment_lake::config::QuerySection) -> Result<Option<tonic::transport::ServerTlsConfig>, QueryError> {
    let Some(id) = crate::tls::identity("flight", &settings.flight_tls_cert, &settings.flight_tls_key)? else {
        return Ok(None);
    };
    // tonic's TLS takes the process's default crypto provider: name ring, as
    // the identity was checked with (a provider already installed stays).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    Ok(Some(tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(id.cert_pem, id.key_pem))))
}

/// A result waiting for its DoGet: since when, and its bytes held.
type Waiting = (Instant, QueryOutput, Hold);

/// The door: shared by every call.
#[derive(Clone)]
pub struct FlightDoor {
    service: Arc<QueryService>,
    results: Arc<Mutex<HashMap<String, Waiting>>>,
    prepared: Arc<Mutex<HashMap<String, Prepared>>>,
    sql_info: Arc<SqlInfoData>,
    /// `query.flight_tls_cert` / `query.flight_tls_key`, read at start.
    tls: Option<tonic::transport::ServerTlsConfig>,
}

#[derive(Debug, Clone)]
struct Prepared {
    statement: Box<Statement>,
    sql: String,
    schema: SchemaRef,
    params: Vec<Option<DataType>>,
    /// Values bound by the last DoPut.
    bound: Vec<ScalarValue>,
    created: Instant,
}

impl std::fmt::Debug for FlightDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightDoor").finish_non_exhaustive()
    }
}

impl FlightDoor {
    pub fn new(service: Arc<QueryService>) -> Result<Self, QueryError> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "Sediment");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        info.append(SqlInfo::FlightSqlServerCancel, false);
        info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        let sql_info = Arc::new(info.build().map_err(|e| QueryError::system(format!("Flight SQL info: {e}")))?);
        let tls = tls_config(service.settings())?;
        Ok(Self { service, results: Default::default(), prepared: Default::default(), sql_info, tls })
    }

    /// The caller's key, when keys are configured: `Bearer <key>`.
    fn authorize<T>(&self, req: &Request<T>) -> Result<Option<String>, Status> {
        let keys = &self.service.settings().api_keys;
        if keys.is_empty() {
            return Ok(None);
        }
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        match self.service.key_matching(presented) {
            Some(k) => Ok(Some(crate::server::KeyId::of(k).0)),
            None => Err(Status::unauthenticated("a valid API key is required (authorization: Bearer <key>)")),
        }
    }

    /// Runs a request; a dropped call (the client cancelled) cancels it.
    async fn run(&self, sql: String, parsed: Parsed, key_id: Option<String>) -> Result<QueryOutput, Status> {
        let req =
            QueryRequest { sql, client: Client { query_id: String::new(), interface: "flight", key_id }, parsed, ..Default::default() };
        self.service.run_detached(req).await.map_err(status)
    }

    /// Keeps a result for its DoGet, and describes it.
    fn hold(&self, out: QueryOutput, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
        let handle = uuid::Uuid::new_v4().to_string();
        let info = FlightInfo::new()
            .try_with_schema(&out.schema)
            .map_err(|e| Status::internal(format!("encoding the schema: {e}")))?
            .with_endpoint(
                FlightEndpoint::new()
                    .with_ticket(Ticket::new(TicketStatementQuery { statement_handle: handle.clone().into() }.as_any().encode_to_vec())),
            )
            .with_descriptor(descriptor)
            .with_total_records(out.rows as i64)
            .with_total_bytes(out.bytes() as i64)
            .with_ordered(true);
        let mut results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        results.retain(|_, (at, _, _)| at.elapsed() < RESULT_TTL);
        if results.len() >= MAX_WAITING_RESULTS {
            return Err(Status::resource_exhausted(format!("{MAX_WAITING_RESULTS} results are waiting for their DoGet; fetch them first")));
        }
        let retained = self.service.retained();
        let hold = retained.try_hold(out.bytes()).map_err(|held| {
            Status::resource_exhausted(format!(
                "{held} bytes of results are held for clients to fetch, and this one's {} would pass the {} bytes results may hold \
                 (an eighth of query.memory_limit_mb); fetch them first",
                out.bytes(),
                retained.budget()
            ))
        })?;
        results.insert(handle, (Instant::now(), out, hold));
        Ok(Response::new(info))
    }

    fn stream(schema: SchemaRef, batches: Vec<arrow::array::RecordBatch>) -> Response<<Self as FlightService>::DoGetStream> {
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err(Status::from);
        Response::new(Box::pin(stream))
    }

    fn ticket_info(ticket: Vec<u8>, schema: &Schema, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("encoding the schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }
}

/// A query error as a gRPC status: the user's to fix, cancelled, or ours.
fn status(e: QueryError) -> Status {
    if e.cancelled {
        Status::cancelled(e.message)
    } else if e.not_visible.is_some() {
        Status::unavailable(e.message)
    } else if e.category == Category::User {
        Status::invalid_argument(e.message)
    } else {
        Status::internal(e.message)
    }
}

fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(format!("encoding a schema: {e}")))?;
    Ok(bytes)
}

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FlightSqlService for FlightDoor {
    type FlightService = FlightDoor;

    /// Basic `user:key` (any user name): answers with the key as the bearer token.
    async fn do_handshake(&self, request: Request<Streaming<HandshakeRequest>>) -> Result<Response<HandshakeStream>, Status> {
        let keys = &self.service.settings().api_keys;
        let token = if keys.is_empty() {
            String::new()
        } else {
            let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let key = if let Some(basic) = header.strip_prefix("Basic ") {
                use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
                let basic = basic.trim();
                let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                    .iter()
                    .find_map(|e| e.decode(basic).ok())
                    .ok_or_else(|| Status::invalid_argument(format!("the Basic credentials are not base64 ({} bytes)", basic.len())))?;
                let text = String::from_utf8(decoded).map_err(|_| Status::invalid_argument("the Basic credentials are not UTF-8"))?;
                text.split_once(':').map(|(_, p)| p.to_owned()).unwrap_or_default()
            } else {
                header.strip_prefix("Bearer ").unwrap_or_default().trim().to_owned()
            };
            if self.service.key_matching(&key).is_none() {
                return Err(Status::unauthenticated("a valid API key is required as the password"));
            }
            key
        };
        let output: HandshakeStream =
            Box::pin(futures::stream::iter([Ok(HandshakeResponse { protocol_version: 0, payload: token.clone().into() })]));
        let mut response = Response::new(output);
        if !token.is_empty() {
            let value = format!("Bearer {token}").parse().map_err(|_| Status::internal("a key that is not a header value"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let key = self.authorize(&request)?;
        let out = self.run(query.query, Parsed::Text, key).await?;
        self.hold(out, request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let handle = String::from_utf8_lossy(&ticket.statement_handle).into_owned();
        let taken = self.results.lock().unwrap_or_else(|p| p.into_inner()).remove(&handle);
        let (_, out, _) =
            taken.ok_or_else(|| Status::not_found(format!("no result waits under {handle} (fetched, or older than {RESULT_TTL:?})")))?;
        Ok(Self::stream(out.schema, out.batches))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.authorize(&request)?;
        let sql = query.query;
        let text = sql.clone();
        let mut statements = self.service.on_cpu(move || dialect::parse(&text)).await.map_err(status)?.map_err(|e| status(e.into()))?;
        if statements.len() != 1 {
            return Err(Status::invalid_argument(format!("a prepared statement is one statement, got {}", statements.len())));
        }
        let statement = Box::new(statements.remove(0));
        let described = self.service.describe(statement.as_ref().clone()).await.map_err(status)?;
        let parameters = Schema::new(
            described
                .params
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("${}", i + 1), t.clone().unwrap_or(DataType::Utf8), true))
                .collect::<Vec<_>>(),
        );
        let handle = uuid::Uuid::new_v4().to_string();
        let result = ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.clone().into(),
            dataset_schema: ipc_schema(&described.schema)?,
            parameter_schema: ipc_schema(&parameters)?,
        };
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if prepared.len() >= MAX_PREPARED
            && let Some(oldest) = prepared.iter().min_by_key(|(_, p)| p.created).map(|(h, _)| h.clone())
        {
            prepared.remove(&oldest);
        }
        prepared.insert(
            handle,
            Prepared { statement, sql, schema: described.schema, params: described.params, bound: Vec::new(), created: Instant::now() },
        );
        Ok(result)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.authorize(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).into_owned();
        let mut batches =
            FlightRecordBatchStream::new_from_flight_data(request.into_inner().map_err(FlightError::from)).map_err(Status::from);
        let mut values = Vec::new();
        while let Some(batch) = batches.try_next().await? {
            if batch.num_rows() == 0 {
                continue;
            }
            if batch.num_rows() > 1 || !values.is_empty() {
                return Err(Status::invalid_argument("bind one row of parameters per execution"));
            }
            values = batch
                .columns()
                .iter()
                .map(|c| ScalarValue::try_from_array(c, 0))
                .collect::<Result<_, _>>()
                .map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        }
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        let p = prepared.get_mut(&handle).ok_or_else(|| Status::not_found(format!("no prepared statement {handle}")))?;
        if !p.params.is_empty() && values.len() != p.params.len() {
            return Err(Status::invalid_argument(format!(
                "the statement takes {} parameter(s), {} were bound",
                p.params.len(),
                values.len()
            )));
        }
        p.bound = values;
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(query.prepared_statement_handle) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let key = self.authorize(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).into_owned();
        let p = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&handle)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no prepared statement {handle}")))?;
        if p.bound.len() < p.params.len() {
            return Err(Status::invalid_argument(format!("the statement takes {} parameter(s); bind them first", p.params.len())));
        }
        let values = p.bound.iter().map(crate::pg::scalar_expr).collect::<Result<Vec<_>, _>>().map_err(status)?;
        let out = self.run(p.sql.clone(), Parsed::Statement(p.statement.clone(), Some(values)), key).await?;
        // The columns are those CreatePreparedStatement described.
        let out = QueryOutput { schema: Arc::clone(&p.schema), ..out };
        let out = match crate::pg::conform(out) {
            Ok(o) => o,
            Err(e) => return Err(status(e)),
        };
        self.hold(out, request.into_inner())
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.authorize(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).into_owned();
        self.prepared.lock().unwrap_or_else(|p| p.into_inner()).remove(&handle);
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.into_builder().schema();
        Self::ticket_info(query.as_any().encode_to_vec(), &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        let schema = builder.schema();
        let batch = builder.build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::stream(schema, vec![batch]))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::ticket_info(query.as_any().encode_to_vec(), &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut builder = query.into_builder();
        for db in self.service.databases() {
            builder.append(CATALOG, db);
        }
        let schema = builder.schema();
        let batch = builder.build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::stream(schema, vec![batch]))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::ticket_info(query.as_any().encode_to_vec(), &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let include_schema = query.include_schema;
        let provider = self.service.catalog().schema_provider();
        let mut tables = Vec::new();
        for name in crate::meta::tables(&self.service).await.map_err(status)? {
            let table = provider.table(&name).await.map_err(|e| status(e.into()))?;
            let Some(table) = table else { continue };
            let kind = if table.table_type() == TableType::View { "VIEW" } else { "TABLE" };
            let schema = if include_schema { table.schema() } else { Arc::new(Schema::empty()) };
            tables.push((name, kind, schema));
        }
        let mut builder = query.into_builder();
        for db in self.service.databases() {
            for (name, kind, schema) in &tables {
                builder.append(CATALOG, &db, name, *kind, schema).map_err(|e| Status::internal(e.to_string()))?;
            }
        }
        let schema = builder.schema();
        let batch = builder.build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::stream(schema, vec![batch]))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = Schema::new(vec![Field::new("table_type", DataType::Utf8, false)]);
        Self::ticket_info(query.as_any().encode_to_vec(), &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let schema = Arc::new(Schema::new(vec![Field::new("table_type", DataType::Utf8, false)]));
        let batch =
            arrow::array::RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(arrow::array::StringArray::from(vec!["TABLE", "VIEW"]))])
                .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::stream(schema, vec![batch]))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        Self::ticket_info(query.as_any().encode_to_vec(), &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let builder = query.into_builder(&self.sql_info);
        let schema = builder.schema();
        let batch = builder.build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::stream(schema, vec![batch]))
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Err(Status::unimplemented(format!("not served: {}", message.type_url)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch};
    use sediment_lake::{Config, Lake};

    use super::*;

    fn output(rows: usize) -> QueryOutput {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let column = Arc::new(Int64Array::from_iter_values(0..rows as i64));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).unwrap();
        QueryOutput {
            schema,
            batches: vec![batch],
            rows,
            bytes_scanned: 0,
            planning: Duration::ZERO,
            execution: Duration::ZERO,
            queued: Duration::ZERO,
            stale: None,
        }
    }

    fn handle(info: &FlightInfo) -> TicketStatementQuery {
        let ticket = &info.endpoint[0].ticket.as_ref().unwrap().ticket;
        Any::decode(ticket.clone()).unwrap().unpack::<TicketStatementQuery>().unwrap().unwrap()
    }

    #[tokio::test]
    async fn results_waiting_for_their_doget_share_the_retained_budget() {
        let mut config = Config::default();
        config.query.memory_limit_mb = 1; // 128 KiB of waiting results
        let service = QueryService::new(Lake::open("memory://flight-budget").unwrap(), config).unwrap();
        let door = FlightDoor::new(service).unwrap();
        let result = output(10_000); // 80 KB
        let first = door.hold(result.clone(), FlightDescriptor::new_cmd(vec![])).unwrap().into_inner();
        let refused = door.hold(result.clone(), FlightDescriptor::new_cmd(vec![])).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
        // Fetching the first frees its share.
        let ticket = handle(&first);
        door.do_get_statement(ticket.clone(), Request::new(Ticket::new(ticket.as_any().encode_to_vec()))).await.unwrap();
        door.hold(result, FlightDescriptor::new_cmd(vec![])).unwrap();
        // Every door counts against the one budget.
        let other = FlightDoor::new(Arc::clone(&door.service)).unwrap();
        let refused = other.hold(output(10_000), FlightDescriptor::new_cmd(vec![])).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
        // One result alone may pass the budget: the query's memory limit let it through.
        drop(door);
        other.hold(output(40_000), FlightDescriptor::new_cmd(vec![])).unwrap();
    }
}
