//! Logging set-up shared by the Lambda bootstraps.

/// JSON lines on stdout for CloudWatch: level from `RUST_LOG` (default
/// `info`), no timestamps (CloudWatch adds its own), no targets or spans.
pub fn init_lambda_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .without_time()
        .with_current_span(false)
        .init();
}
