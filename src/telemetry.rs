//! Logging setup and build information.

use std::io::IsTerminal;

use crate::cli::LogFormat;

/// The crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the binary was built from ("unknown" outside a git checkout; see build.rs).
pub const COMMIT: &str = match option_env!("IMAGESET_OPERATOR_COMMIT") {
    Some(c) => c,
    None => "unknown",
};
/// When the binary was built, RFC 3339 UTC ("unknown" without build.rs).
pub const BUILD_DATE: &str = match option_env!("IMAGESET_OPERATOR_BUILD_DATE") {
    Some(d) => d,
    None => "unknown",
};

/// What `imageset-operator version` prints.
pub fn version_line() -> String {
    format!("imageset-operator {VERSION} (commit {COMMIT}, built {BUILD_DATE})")
}

/// The level names a log level may be, alone or after `target=`.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a log level: a level name, or a tracing filter whose directives each set a level
/// (`info,imageset_operator=debug`). tracing would read a lone unknown word such as
/// `verbose` as a target name and drop every other line, warnings included: refused here.
pub fn check_level(level: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "invalid log level {level:?} (LOG_LEVEL or --log-level): {why}; use one of {} or target=level directives",
            LEVELS.join(", ")
        ))
    };
    if level.trim().is_empty() {
        return refuse("it is empty");
    }
    for directive in level.split(',').map(str::trim) {
        let lvl = match directive.rsplit_once('=') {
            Some((_, l)) => l,
            None => directive,
        };
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(lvl)) {
            return refuse(&format!("{lvl:?} is not a level"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(level).map(|_| ()).or_else(|e| refuse(&e.to_string()))
}

/// Installs the global subscriber: plain or JSON lines on stderr, coloured only when stderr
/// is a terminal (a pod's log or a file gets no escape codes).
pub fn init(format: LogFormat, level: &str) -> Result<(), String> {
    check_level(level)?;
    let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

/// Clap's multi-line error as one line: `error: unexpected argument '--foo' found (see --help)`.
/// `env_value`: the value of the environment variable behind the flag the error is about, if
/// any, so a bad `LOG_FORMAT=yaml` names the variable the user set rather than only the flag.
pub fn one_line_clap_error(e: &clap::Error, env_value: impl Fn(&str) -> Option<String>) -> String {
    let rendered = e.to_string();
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let text = if parts.is_empty() { "invalid arguments".to_string() } else { parts.join(" ") };
    let from_env = match (e.get(clap::error::ContextKind::InvalidArg), e.get(clap::error::ContextKind::InvalidValue)) {
        (Some(clap::error::ContextValue::String(arg)), Some(clap::error::ContextValue::String(value))) => {
            // `--log-format <LOG_FORMAT>`: clap names the flag and, as its value name, the variable.
            arg.split(['<', '>']).nth(1).filter(|var| env_value(var).as_deref() == Some(value.as_str()))
        }
        _ => None,
    };
    match from_env {
        Some(var) => format!("{text} (from environment variable {var}; see --help)"),
        None => format!("{text} (see --help)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_are_levels() {
        for ok in ["info", "WARN", "off", "info,imageset_operator=debug", "kube=warn,trace"] {
            assert_eq!(check_level(ok), Ok(()), "{ok}");
        }
        for bad in ["verbose", "", "info,chatty", "kube=loud", "imageset_operator"] {
            let e = check_level(bad).unwrap_err();
            assert!(e.contains("invalid log level") && e.contains("error, warn, info"), "{bad}: {e}");
        }
    }

    #[test]
    fn version_names_commit_and_date() {
        let v = version_line();
        assert!(v.starts_with(&format!("imageset-operator {VERSION} (commit ")), "{v}");
        assert!(v.contains(&format!("built {BUILD_DATE})")), "{v}");
    }
}
