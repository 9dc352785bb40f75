use std::net::SocketAddr;
use std::process::ExitCode;

use sediment_query::QueryService;

use super::LakeArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    lake: LakeArgs,
    /// Address to listen on.
    #[arg(long, env = "SEDIMENT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Also serve the Postgres wire protocol here (psql, JDBC, BI tools);
    /// overrides `query.pg_listen`.
    #[arg(long, env = "SEDIMENT_PG_LISTEN")]
    pg_listen: Option<SocketAddr>,
    /// Also serve Arrow Flight SQL here (ADBC, the Flight SQL JDBC
    /// driver); overrides `query.flight_listen`.
    #[arg(long, env = "SEDIMENT_FLIGHT_LISTEN")]
    flight_listen: Option<SocketAddr>,
    /// Allow listening beyond loopback without API keys.
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Create an empty lake where the location holds none (a deployment
    /// that starts before the first event arrives). Without it, a location
    /// with no lake is an error.
    #[arg(long)]
    create: bool,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (mut config, lake) = if args.create { args.lake.load_or_create().await? } else { args.lake.load().await? };
    // The flags win over the config, and the service reports what it serves.
    if let Some(a) = args.pg_listen {
        config.query.pg_listen = Some(a.to_string());
    }
    if let Some(a) = args.flight_listen {
        config.query.flight_listen = Some(a.to_string());
    }
    let url = lake.url().to_owned();
    let service = QueryService::new(lake, config)?;
    let listener = bind(args.listen, &service, args.allow_unauthenticated).await?;
    let addr = listener.local_addr()?;
    let pg_listen = address(service.settings().pg_listen.as_deref(), "query.pg_listen")?;
    let flight_listen = address(service.settings().flight_listen.as_deref(), "query.flight_listen")?;
    let pg = match pg_listen {
        Some(a) => {
            let door = sediment_query::pg::PgDoor::new(std::sync::Arc::clone(&service))?;
            let listener = bind(a, &service, args.allow_unauthenticated).await?;
            Some((door, listener))
        }
        None => None,
    };
    let flight = match flight_listen {
        Some(a) => {
            let door = sediment_query::flight::FlightDoor::new(std::sync::Arc::clone(&service))?;
            let listener = bind(a, &service, args.allow_unauthenticated).await?;
            Some((door, listener))
        }
        None => None,
    };
    print_endpoints(addr, &url);
    if let Some((_, l)) = &pg {
        print_pg_endpoint(l.local_addr()?, &service);
    }
    if let Some((_, l)) = &flight {
        println!(
            "  Flight SQL   grpc://{}   (ADBC: adbc_driver_flightsql.dbapi.connect(\"grpc://{}\"); an API key is the bearer token)",
            l.local_addr()?,
            l.local_addr()?
        );
    }
    let http = sediment_query::server::serve_on(service, listener);
    let pg = async move {
        match pg {
            Some((door, l)) => sediment_query::pg::serve_on(door, l).await,
            None => std::future::pending().await,
        }
    };
    let flight = async move {
        match flight {
            Some((door, l)) => sediment_query::flight::serve_on(door, l).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = http => r?,
        r = pg => r?,
        r = flight => r?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A door's address, if it is served.
fn address(configured: Option<&str>, key: &str) -> anyhow::Result<Option<SocketAddr>> {
    configured.map(|a| a.parse::<SocketAddr>().map_err(|e| anyhow::anyhow!("{key} {a:?}: {e}"))).transpose()
}

fn print_pg_endpoint(addr: SocketAddr, service: &QueryService) {
    let db = &service.settings().database;
    let tls = if service.settings().pg_tls_cert.is_some() { " sslmode=require" } else { "" };
    println!("  Postgres     {addr}   (psql \"host={} port={} dbname={db}{tls}\"; an API key is the password)", addr.ip(), addr.port());
}

/// Binds `addr`, refusing a non-loopback address without API keys unless allowed.
pub(crate) async fn bind(addr: SocketAddr, service: &QueryService, allow_open: bool) -> anyhow::Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() && service.settings().api_keys.is_empty() && !allow_open {
        anyhow::bail!("refusing to listen on {addr} without API keys: set query.api_keys in sediment.toml or pass --allow-unauthenticated");
    }
    Ok(tokio::net::TcpListener::bind(addr).await?)
}

pub(crate) fn print_endpoints(addr: SocketAddr, lake: &str) {
    println!("sediment serving {lake}");
    println!("  Athena API   http://{addr}/   (boto3: boto3.client('athena', endpoint_url='http://{addr}'))");
    println!("  REST         http://{addr}/v1/query   (POST {{\"sql\": \"…\"}})");
    println!("  health       http://{addr}/health     metrics http://{addr}/metrics");
}
