//! Subcommands, and the lake/config arguments they share.

use std::path::PathBuf;

use anyhow::Context as _;
use sediment_lake::{Config, Lake};

pub(crate) mod compact;
pub(crate) mod demo;
pub(crate) mod generate;
pub(crate) mod ingest;
pub(crate) mod maint;
pub(crate) mod query;
pub(crate) mod serve;

/// Where the lake is and how it is configured.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LakeArgs {
    /// Lake URL: s3://bucket/prefix, file:///abs/path, a path, or memory://name.
    /// Falls back to `lake.url` in the config, then ./sediment-data.
    #[arg(long, env = "SEDIMENT_LAKE")]
    pub(crate) lake: Option<String>,
    /// Configuration file (projections, views, tuning). Defaults to ./sediment.toml if present.
    #[arg(long, env = "SEDIMENT_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

impl LakeArgs {
    /// The configuration and the lake, which must exist.
    pub(crate) async fn load(&self) -> anyhow::Result<(Config, Lake)> {
        let config = Config::discover(self.config.as_deref())?;
        let url = config.lake_url(self.lake.as_deref());
        let lake = Lake::open_existing(&url).await.with_context(|| format!("opening the lake at {url}"))?;
        Ok((config, lake))
    }

    /// The configuration and the lake, created (and marked) where there is none.
    pub(crate) async fn load_or_create(&self) -> anyhow::Result<(Config, Lake)> {
        let config = Config::discover(self.config.as_deref())?;
        let url = config.lake_url(self.lake.as_deref());
        let lake = Lake::open(&url).with_context(|| format!("opening the lake at {url}"))?;
        lake.mark().await.with_context(|| format!("creating the lake at {url}"))?;
        Ok((config, lake))
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub(crate) fn progress(len: Option<u64>, template: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Human-readable byte counts.
pub(crate) fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
