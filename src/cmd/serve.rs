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
    let (config, lake) = if args.create { args.lake.load_or_create().await? } else { args.lake.load().await? };
    let url = lake.url().to_owned();
    let service = QueryService::new(lake, config)?;
    let listener = bind(args.listen, &service, args.allow_unauthenticated).await?;
    let addr = listener.local_addr()?;
    print_endpoints(addr, &url);
    sediment_query::server::serve_on(service, listener).await?;
    Ok(ExitCode::SUCCESS)
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
