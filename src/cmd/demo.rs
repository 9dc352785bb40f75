//! `sediment demo`: a realistic lake on local files in under a minute.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{Days, Utc};
use sediment_compactor::{Compactor, DaySelection};
use sediment_ingest::generate::{GenerateOptions, generate};
use sediment_lake::{Config, Lake};
use sediment_query::QueryService;

use super::{ingest::ingest_input, serve};

const SAMPLE_CONFIG: &str = include_str!("../../examples/sediment.toml");

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory for the demo's lake, config and events.
    #[arg(long, default_value = "sediment-demo")]
    dir: PathBuf,
    /// Distinct events to generate.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Days of history (the last one is today, left uncompacted).
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Build the lake and stop, without serving.
    #[arg(long)]
    no_serve: bool,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let lake_dir = dir.join("lake");
    let lake_url = lake_dir.display().to_string();
    let config_text = format!("[lake]\nurl = {:?}\n\n{SAMPLE_CONFIG}", lake_url);
    let config_path = dir.join("sediment.toml");
    std::fs::write(&config_path, &config_text)?;
    let config = Config::parse(&config_text)?;

    let today = Utc::now().date_naive();
    let start = today.checked_sub_days(Days::new(args.days.saturating_sub(1) as u64)).unwrap_or(today);
    eprintln!("1/3 generating {} events over {} days ({start} … {today})", args.events, args.days);
    let events_path = dir.join("events.ndjson");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&events_path)?);
        let opts = GenerateOptions { events: args.events, days: args.days, start, seed: 7, duplicates: 0.02, malformed: 0.005 };
        let s = generate(&opts, &mut f)?;
        eprintln!("    {} events, {} duplicates, {} malformed lines → {}", s.events, s.duplicates, s.malformed, events_path.display());
    }
    eprintln!("2/3 ingesting into {lake_url}");
    let lake = Lake::open(&lake_url)?;
    ingest_input(&lake, &config.ingest, &events_path.display().to_string()).await?;
    eprintln!("3/3 compacting closed days (today stays hot: visible, not yet compacted)");
    let yesterday = today.checked_sub_days(Days::new(1)).unwrap_or(today);
    let compactor = Compactor::new(lake.clone(), config.clone());
    let report = compactor.run(&DaySelection::Range(start, yesterday), false, &()).await?;
    println!("{}", report.summary());

    let cfg = config_path.display();
    println!();
    println!("Try it:");
    println!("  sediment query --config {cfg} \"SHOW TABLES\"");
    println!("  sediment query --config {cfg} \"SELECT dt, count(*) AS events FROM events GROUP BY dt ORDER BY dt\"");
    println!("  sediment query --config {cfg} \"SELECT status, count(*) FROM orders_current GROUP BY status ORDER BY 2 DESC\"");
    println!("  sediment query --config {cfg} \"SELECT dt, revenue FROM daily_revenue ORDER BY dt\"");
    println!(
        "  sediment query --config {cfg} \"SELECT method, count(*) AS payments, sum(amount) AS paid FROM payment_received GROUP BY method\""
    );
    println!("  sediment status --config {cfg}    # days, typed tables and each event type's payload schema history");
    if args.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    let service = QueryService::new(lake, config)?;
    let listener = serve::bind(args.listen, &service, false).await?;
    let addr = listener.local_addr()?;
    println!();
    serve::print_endpoints(addr, &lake_url);
    println!();
    println!("From Python (pip install boto3 pyathena):");
    println!("  import boto3; athena = boto3.client('athena', endpoint_url='http://{addr}', region_name='us-east-1',");
    println!("                                      aws_access_key_id='x', aws_secret_access_key='x')");
    println!("  from pyathena import connect");
    println!("  cur = connect(endpoint_url='http://{addr}', region_name='us-east-1', s3_staging_dir='{lake_url}/_results/',");
    println!("                aws_access_key_id='x', aws_secret_access_key='x').cursor()");
    println!("  cur.execute(\"SELECT * FROM orders_current LIMIT 5\"); print(cur.fetchall())");
    println!(
        "  curl -s localhost:{}/v1/query -d '{{\"sql\": \"SELECT count(*) FROM events\"}}' -H 'content-type: application/json'",
        addr.port()
    );
    sediment_query::server::serve_on(service, listener).await?;
    Ok(ExitCode::SUCCESS)
}
