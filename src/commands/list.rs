//! `list releases` / `list operators`: flags checked as oc-mirror does.

use super::CliError;
use crate::cli::{Env, ListCommand};

const ARCHS: &[&str] = &["amd64", "arm64", "ppc64le", "s390x", "multi"];

/// Runs `list`; returns the lines to print.
pub fn run(cmd: &ListCommand, env: &Env) -> Result<Vec<String>, CliError> {
    match cmd {
        ListCommand::Releases(a) => {
            for arch in &a.filter_by_archs {
                if !ARCHS.contains(&arch.as_str()) {
                    return Err(CliError::Usage(format!(
                        "--filter-by-archs: {arch:?} is not one of {}",
                        ARCHS.join(", ")
                    )));
                }
            }
            if a.channel.is_none() && a.version.is_none() {
                return Err(CliError::Usage("list releases needs --channel or --version".into()));
            }
            let _url = a.update_url.clone().or_else(|| env.update_url_override.clone());
            Err(CliError::Unsupported("listing releases is not available in this build yet".into()))
        }
        ListCommand::Operators(a) => {
            if a.catalog.is_none() {
                return Err(CliError::Usage("list operators needs --catalog".into()));
            }
            Err(CliError::Unsupported("listing operators is not available in this build yet".into()))
        }
    }
}
