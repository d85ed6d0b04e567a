//! `herald config check`: the settings exactly as `serve` would load them (flags, `HERALD_*`
//! variables, the `--config` file, defaults), every problem at once, and the effective
//! values with where each came from — secrets redacted.

use crate::Settings;
use clap::parser::ValueSource;

/// Settings whose values are never printed.
const SECRET_IDS: [&str; 2] = ["secret_key", "bootstrap_api_key"];

/// The report, and whether the settings can run.
pub fn report(matches: &clap::ArgMatches, cmd: &clap::Command, settings: &Settings) -> (String, bool) {
    let mut out = String::new();
    let problems = settings.problems();
    if problems.is_empty() {
        out.push_str("settings OK\n\n");
    } else {
        out.push_str(&format!("{} problem(s):\n", problems.len()));
        for p in &problems {
            out.push_str(&format!("  - {p}\n"));
        }
        out.push('\n');
    }
    out.push_str("effective settings (value, then where it came from):\n");
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version" | "config" | "log_json") {
            continue;
        }
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag or --config file",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = if raw.is_empty() {
            "–".to_owned()
        } else if SECRET_IDS.contains(&id) {
            "*** (set)".to_owned()
        } else if id == "database_url" {
            settings.database_url_redacted()
        } else {
            raw.join(",")
        };
        let name = arg.get_long().map_or_else(|| id.to_owned(), |l| format!("--{l}"));
        let env = arg.get_env().map(|e| format!(" / {}", e.to_string_lossy())).unwrap_or_default();
        out.push_str(&format!("  {name}{env} = {value}  ({source})\n"));
    }
    if settings.database_url.is_none() {
        out.push_str(&format!("  (database: {})\n", settings.database_url_redacted()));
    }
    (out, problems.is_empty())
}
