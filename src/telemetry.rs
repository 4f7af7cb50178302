//! Logging setup.

use crate::cli::LogFormat;

/// Installs the global subscriber: plain or JSON lines on stderr.
pub fn init(format: LogFormat, level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Clap's multi-line error as one line: `error: unexpected argument '--foo' found (see --help)`.
pub fn one_line_clap_error(e: &clap::Error) -> String {
    let rendered = e.to_string();
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let text = if parts.is_empty() { "invalid arguments".to_string() } else { parts.join(" ") };
    format!("{text} (see --help)")
}
