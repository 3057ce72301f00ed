//! Arrow Flight SQL for analysts' own tools (ADBC, the Flight SQL JDBC driver, DBeaver,
//! pandas): the read-only queries of [`crate::query`] over gRPC. Who may query what is the
//! embedder's choice ([`Authorize`]); every path that would write (statements that do not
//! read, updates, bulk ingestion, Substrait plans, transactions) is refused.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{ProstMessageExt, SqlInfo, SqlSupportedTransaction, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::datasource::TableType;
use datafusion::execution::context::SessionContext;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::{Limits, QueryError};

mod service;

/// What a caller may query: its tables and its limits.
pub struct Session {
    pub ctx: SessionContext,
    pub limits: Limits,
    /// The caller's slot among its concurrent queries (see [`crate::Slots`]), held while the
    /// session runs.
    pub slot: Option<crate::Slot>,
}

/// Why a caller was turned away.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No credentials, or unknown ones.
    #[error("{0}")]
    Unauthenticated(String),
    /// Known credentials that do not include SQL.
    #[error("{0}")]
    PermissionDenied(String),
    /// The lookup itself failed (e.g. the database is down).
    #[error("{0}")]
    Unavailable(String),
    /// Past the caller's rate limit or concurrent queries.
    #[error("{0}")]
    Exhausted(String),
}

/// Maps a caller's bearer token to what it may query. Checked on every call: Flight SQL
/// clients send the `authorization` metadata with each one.
pub trait Authorize: Send + Sync + 'static {
    /// Who the caller is, e.g. a partner and its grants; cheap enough for every call.
    type Scope: Send + Sync;

    /// `token` is the bearer token of the `authorization` metadata, if one was sent.
    fn authorize(
        &self,
        token: Option<&str>,
    ) -> impl Future<Output = Result<Self::Scope, Refused>> + Send;

    /// The tables and limits of an authorized caller, built when a call needs them.
    fn session(&self, scope: &Self::Scope)
    -> impl Future<Output = Result<Session, Refused>> + Send;
}

/// Said by every refusal of a write, whichever path it came through.
pub const READ_ONLY: &str =
    "only queries that read are allowed: this Flight SQL endpoint is read-only";

fn read_only(what: &str) -> Status {
    count("read_only");
    Status::permission_denied(format!("{READ_ONLY} ({what} refused)"))
}

/// `muster_flight_sql_queries_total{outcome}`: once per statement, at its outcome.
fn count(outcome: &'static str) {
    metrics::counter!("muster_flight_sql_queries_total", "outcome" => outcome).increment(1);
}

fn outcome(e: &QueryError) -> &'static str {
    match e {
        QueryError::NotReadOnly(_) => "read_only",
        QueryError::Timeout(_) => "timeout",
        QueryError::TooLarge { .. } => "too_large",
        QueryError::Memory { .. } => "memory",
        QueryError::Busy(_) => "busy",
        QueryError::Sql(_) => "invalid",
        QueryError::Setup(_) => "error",
    }
}

fn status(e: QueryError) -> Status {
    match e {
        QueryError::NotReadOnly(d) => {
            Status::permission_denied(format!("{READ_ONLY} (refused: {d})"))
        }
        QueryError::Timeout(t) => Status::deadline_exceeded(format!(
            "the query was stopped by the time limit: it ran longer than {t:?}"
        )),
        e @ (QueryError::TooLarge { .. } | QueryError::Memory { .. } | QueryError::Busy(_)) => {
            Status::resource_exhausted(e.to_string())
        }
        QueryError::Sql(e) => Status::invalid_argument(e.to_string()),
        QueryError::Setup(e) => Status::unavailable(format!("{e:#}")),
    }
}

fn refused(r: Refused) -> Status {
    match r {
        Refused::Unauthenticated(m) => Status::unauthenticated(m),
        Refused::PermissionDenied(m) => Status::permission_denied(m),
        Refused::Unavailable(m) => Status::unavailable(m),
        Refused::Exhausted(m) => Status::resource_exhausted(m),
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// The Flight SQL service over the sessions `A` hands out.
pub struct FlightSql<A> {
    auth: Arc<A>,
    info: Arc<SqlInfoData>,
}

impl<A: Authorize> FlightSql<A> {
    pub fn new(auth: A) -> Self {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "muster");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        // The Arrow IPC format version (Schema.fbs), as in arrow-rs's example server.
        b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        b.append(SqlInfo::FlightSqlServerReadOnly, true);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        b.append(
            SqlInfo::FlightSqlServerTransaction,
            SqlSupportedTransaction::None as i32,
        );
        b.append(SqlInfo::FlightSqlServerCancel, false);
        b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
        b.append(SqlInfo::SqlDdlCatalog, false);
        b.append(SqlInfo::SqlDdlSchema, false);
        b.append(SqlInfo::SqlDdlTable, false);
        b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        Self {
            auth: Arc::new(auth),
            info: Arc::new(b.build().expect("static SQL info")),
        }
    }

    /// The caller's scope, from the `authorization: Bearer <token>` metadata.
    async fn scope<T>(&self, req: &Request<T>) -> Result<A::Scope, Status> {
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty());
        self.auth.authorize(token).await.map_err(refused)
    }

    async fn session<T>(&self, req: &Request<T>) -> Result<Session, Status> {
        let scope = self.scope(req).await?;
        self.auth.session(&scope).await.map_err(refused)
    }

    /// The schema a read-only statement will answer with; refuses anything else.
    async fn plan_schema<T>(&self, req: &Request<T>, sql: &str) -> Result<SchemaRef, Status> {
        // Refused before any session is built: a write costs no database round trip.
        if let Err(e) = crate::check_read_only(sql) {
            count(outcome(&e));
            return Err(status(e));
        }
        let session = self.session(req).await.inspect_err(|s| count(code(s)))?;
        let df = tokio::time::timeout(session.limits.timeout, crate::plan(&session.ctx, sql))
            .await
            .unwrap_or(Err(QueryError::Timeout(session.limits.timeout)))
            .inspect_err(|e| count(outcome(e)))
            .map_err(status)?;
        Ok(Arc::clone(df.schema().inner()))
    }

    fn statement_info(
        schema: &Schema,
        sql: String,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        // The ticket carries the statement itself: `do_get` checks and plans it again for the
        // caller presenting it, so a ticket grants nothing a query would not.
        let ticket = TicketStatementQuery {
            statement_handle: sql.into_bytes().into(),
        };
        flight_info_for(ticket.as_any(), schema, descriptor)
    }

    async fn run<T>(&self, req: &Request<T>, sql: &str) -> Result<DoGetStream, Status> {
        if let Err(e) = crate::check_read_only(sql) {
            count(outcome(&e));
            return Err(status(e));
        }
        let session = self.session(req).await.inspect_err(|s| count(code(s)))?;
        let started = Instant::now();
        let limits = &session.limits;
        let answer = async {
            let df = tokio::time::timeout(limits.timeout, crate::plan(&session.ctx, sql))
                .await
                .unwrap_or(Err(QueryError::Timeout(limits.timeout)))?;
            let schema = Arc::clone(df.schema().inner());
            Ok::<_, QueryError>((schema, crate::execute(df, limits).await?))
        }
        .await;
        let elapsed = started.elapsed();
        metrics::histogram!("muster_flight_sql_query_seconds").record(elapsed.as_secs_f64());
        tracing::debug!(
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            ok = answer.is_ok(),
            "flight sql query"
        );
        let (schema, answer) = answer.inspect_err(|e| count(outcome(e))).map_err(status)?;
        if answer.truncated {
            // Flight SQL has no way to say it; the README tells analysts.
            tracing::info!(rows = answer.rows, "flight sql answer cut at the row limit");
            count("truncated");
        } else {
            count("ok");
        }
        Ok(encode(schema, answer.batches))
    }

    async fn listing(
        &self,
        req: &Request<Ticket>,
        build: impl FnOnce(&SessionContext) -> Result<RecordBatch, Status>,
    ) -> Result<DoGetStream, Status> {
        let session = self.session(req).await?;
        let batch = build(&session.ctx)?;
        Ok(encode(batch.schema(), vec![batch]))
    }
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

fn encode(schema: SchemaRef, batches: Vec<RecordBatch>) -> DoGetStream {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter(batches.into_iter().map(Ok)))
        .map_err(Status::from);
    Box::pin(stream)
}

fn code(s: &Status) -> &'static str {
    match s.code() {
        tonic::Code::Unauthenticated => "unauthenticated",
        tonic::Code::PermissionDenied => "permission_denied",
        tonic::Code::ResourceExhausted => "exhausted",
        _ => "error",
    }
}

fn sql_text(handle: &[u8]) -> Result<String, Status> {
    String::from_utf8(handle.to_vec())
        .map_err(|_| Status::invalid_argument("the statement handle is not a muster statement"))
}

/// Every table the session sees, with its catalog, schema, type and Arrow schema.
async fn tables(
    ctx: &SessionContext,
) -> Result<Vec<(String, String, String, TableType, SchemaRef)>, Status> {
    let mut out = Vec::new();
    for catalog_name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            for table_name in schema.table_names() {
                let Some(table) = schema.table(&table_name).await.map_err(internal)? else {
                    continue;
                };
                out.push((
                    catalog_name.clone(),
                    schema_name.clone(),
                    table_name,
                    table.table_type(),
                    table.schema(),
                ));
            }
        }
    }
    Ok(out)
}

fn table_type(t: TableType) -> &'static str {
    match t {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// The answer to a `get_flight_info_*`: one endpoint whose ticket is `cmd`.
fn flight_info_for(
    cmd: arrow_flight::sql::Any,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(cmd.encode_to_vec()));
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(internal)?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// Serves Flight SQL on `listener` until `shutdown` completes.
pub async fn serve<A: Authorize>(
    listener: tokio::net::TcpListener,
    auth: A,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tonic::transport::Server::builder()
        .add_service(FlightServiceServer::new(FlightSql::new(auth)))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await?;
    Ok(())
}

/// Binds `addr` first, so that a taken port is an error at start, naming the address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("flight sql cannot listen on {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arrow_flight::error::FlightError;
    use arrow_flight::sql::client::FlightSqlServiceClient;
    use arrow_flight::sql::{CommandGetTables, CommandStatementIngest, SqlInfo};
    use tonic::transport::Channel;

    use super::*;

    /// "analyst" may query (short limits), "partner" may not, anyone else is unknown.
    struct Tokens;

    impl Authorize for Tokens {
        type Scope = ();

        async fn authorize(&self, token: Option<&str>) -> Result<(), Refused> {
            match token {
                Some("analyst") => Ok(()),
                Some("partner") => Err(Refused::PermissionDenied("no SQL for you".into())),
                _ => Err(Refused::Unauthenticated("who are you".into())),
            }
        }

        async fn session(&self, _: &()) -> Result<Session, Refused> {
            let ctx = SessionContext::new();
            ctx.register_batch("numbers", RecordBatch::try_from_iter([one()]).unwrap())
                .unwrap();
            Ok(Session {
                ctx,
                limits: Limits {
                    timeout: Duration::from_millis(500),
                    max_rows: 3,
                    max_bytes: 1 << 20,
                    memory: 64 << 20,
                },
                slot: None,
            })
        }
    }

    fn one() -> (&'static str, datafusion::arrow::array::ArrayRef) {
        (
            "x",
            Arc::new(datafusion::arrow::array::Int32Array::from(vec![1])),
        )
    }

    async fn client(token: Option<&str>) -> FlightSqlServiceClient<Channel> {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Tokens, futures::future::pending()));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = FlightSqlServiceClient::new(channel);
        if let Some(t) = token {
            c.set_token(t.to_owned());
        }
        c
    }

    async fn rows(
        c: &mut FlightSqlServiceClient<Channel>,
        info: FlightInfo,
    ) -> Result<usize, FlightError> {
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let batches: Vec<RecordBatch> = c.do_get(ticket).await?.try_collect().await?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    /// Asserts the refusal's gRPC code and that its message says `what`.
    fn refused(e: FlightError, code: tonic::Code, what: &str) {
        let status = tonic::Status::from(e);
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(what),
            "{status:?} does not say {what:?}"
        );
    }

    #[tokio::test]
    async fn reads_within_limits_and_refuses_every_write() {
        let mut c = client(Some("analyst")).await;
        let info = c
            .execute("SELECT * FROM range(2)".into(), None)
            .await
            .unwrap();
        assert_eq!(rows(&mut c, info).await.unwrap(), 2);
        // Cut at the row limit.
        let info = c
            .execute("SELECT * FROM range(10)".into(), None)
            .await
            .unwrap();
        assert_eq!(rows(&mut c, info).await.unwrap(), 3);

        let prepared = c.prepare("SELECT 1 AS one".into(), None).await.unwrap();
        assert_eq!(prepared.dataset_schema().unwrap().field(0).name(), "one");
        let info = prepared.clone().execute().await.unwrap();
        assert_eq!(rows(&mut c, info).await.unwrap(), 1);

        for sql in [
            "DROP TABLE t",
            "CREATE TABLE t AS SELECT 1",
            "INSERT INTO t VALUES (1)",
        ] {
            let denied = tonic::Code::PermissionDenied;
            refused(
                c.execute(sql.into(), None).await.unwrap_err(),
                denied,
                READ_ONLY,
            );
            refused(
                c.prepare(sql.into(), None).await.unwrap_err(),
                denied,
                READ_ONLY,
            );
            refused(
                c.execute_update(sql.into(), None).await.unwrap_err(),
                denied,
                READ_ONLY,
            );
        }
        let batch = RecordBatch::try_from_iter([one()]).unwrap();
        let ingest = CommandStatementIngest {
            table: "event_realtime".into(),
            ..Default::default()
        };
        let e = c
            .execute_ingest(ingest, futures::stream::iter([Ok(batch)]))
            .await
            .unwrap_err();
        refused(e, tonic::Code::PermissionDenied, READ_ONLY);
        refused(
            c.begin_transaction().await.unwrap_err(),
            tonic::Code::PermissionDenied,
            READ_ONLY,
        );

        let slow = "SELECT count(*) FROM range(100000000) a, range(100000000) b";
        let info = c.execute(slow.into(), None).await.unwrap();
        refused(
            rows(&mut c, info).await.unwrap_err(),
            tonic::Code::DeadlineExceeded,
            "stopped by the time limit",
        );
    }

    #[tokio::test]
    async fn lists_metadata_and_refuses_unknown_callers() {
        let mut c = client(Some("analyst")).await;
        let info = c
            .get_sql_info(vec![SqlInfo::FlightSqlServerReadOnly])
            .await
            .unwrap();
        assert_eq!(rows(&mut c, info).await.unwrap(), 1);
        let info = c
            .get_tables(CommandGetTables {
                include_schema: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rows(&mut c, info).await.unwrap(), 1);

        let mut anonymous = client(None).await;
        refused(
            anonymous
                .execute("SELECT 1".into(), None)
                .await
                .unwrap_err(),
            tonic::Code::Unauthenticated,
            "who are you",
        );
        let mut partner = client(Some("partner")).await;
        refused(
            partner.execute("SELECT 1".into(), None).await.unwrap_err(),
            tonic::Code::PermissionDenied,
            "no SQL for you",
        );
        let mut stranger = client(Some("stranger")).await;
        refused(
            stranger.get_sql_info(vec![]).await.unwrap_err(),
            tonic::Code::Unauthenticated,
            "who are you",
        );
    }
}
