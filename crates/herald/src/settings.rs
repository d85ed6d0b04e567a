//! Settings: flags override environment variables (`HERALD_*`), which override defaults.
//! How they are checked together is in `settings_check.rs`.

use herald_domain::RetryPolicy;
use herald_domain::retry::parse_duration;
use herald_store_sqlite::Durability;
use std::path::PathBuf;
use std::time::Duration;

/// How much longer than the attempt timeout a lease must be (time to record the outcome).
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// The longest any duration setting may be.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s.trim())
}

fn jitter(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("invalid jitter {s:?}"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err("jitter must be between 0 and 1".into()) }
}

/// A setting that holds a secret: its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(***)")
    }
}

fn secret_text(s: &str) -> Result<SecretText, String> {
    Ok(SecretText::new(s))
}

fn cidr(s: &str) -> Result<ipnet::IpNet, String> {
    s.trim().parse::<ipnet::IpNet>().map_err(|e| format!("invalid CIDR {s:?}: {e}"))
}

/// Everything `herald serve` can be told.
#[derive(clap::Args, Clone, Debug)]
pub struct Settings {
    /// A TOML file of settings (keys are the flag names, e.g. `listen = "0.0.0.0:8080"`);
    /// flags and `HERALD_*` variables override it.
    #[arg(long, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP API.
    #[arg(long, env = "HERALD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// `sqlite://path` or `postgres://…`; default: `<data-dir>/herald.db`.
    #[arg(long, env = "HERALD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory holding the SQLite file.
    #[arg(long, env = "HERALD_DATA_DIR", default_value = "./herald-data")]
    pub data_dir: PathBuf,
    /// Allow deliveries to loopback, private and other special addresses.
    #[arg(long, env = "HERALD_ALLOW_PRIVATE_TARGETS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub allow_private_targets: bool,
    /// Comma-separated CIDRs allowed even though they are special (e.g. `10.1.0.0/16`).
    #[arg(long, env = "HERALD_ALLOW_CIDRS", value_delimiter = ',', value_parser = cidr)]
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// Refuse plain-http webhook URLs.
    #[arg(long, env = "HERALD_REQUIRE_HTTPS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub require_https: bool,
    /// Waits between attempts, e.g. `1m,5m,15m,1h,4h,8h,16h`.
    #[arg(long, env = "HERALD_RETRY_SCHEDULE", default_value = "1m,5m,15m,1h,4h,8h,16h", value_delimiter = ',', value_parser = duration)]
    pub retry_schedule: Vec<Duration>,
    /// Random spread of each wait (0.2 = ±20 %).
    #[arg(long, env = "HERALD_RETRY_JITTER", default_value = "0.2", value_parser = jitter)]
    pub retry_jitter: f64,
    /// Global cap on in-flight delivery requests.
    #[arg(long, env = "HERALD_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,
    /// How long a claimed delivery stays hidden from other workers.
    #[arg(long, env = "HERALD_LEASE", default_value = "5m", value_parser = duration)]
    pub lease: Duration,
    /// Total time one attempt may take (connect, send, response).
    #[arg(long, env = "HERALD_ATTEMPT_TIMEOUT", default_value = "15s", value_parser = duration)]
    pub attempt_timeout: Duration,
    /// At shutdown, how long in-flight attempts may finish (and unrecorded outcomes be
    /// retried) before leases are given back.
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE", default_value = "10s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// `IP:port` of the DNS server for every lookup Herald makes (webhook targets; mail
    /// authentication next); default: the system's resolver.
    #[arg(long, env = "HERALD_DNS_SERVER")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// Fallback poll for due work when no wake-up arrives.
    #[arg(long, env = "HERALD_POLL_INTERVAL", default_value = "5s", value_parser = duration)]
    pub poll_interval: Duration,
    /// SQLite durability: `normal` (survives a crash) or `full` (survives power loss).
    #[arg(long, env = "HERALD_SQLITE_SYNCHRONOUS", default_value = "normal", value_parser = ["normal", "full"])]
    pub sqlite_synchronous: String,
    /// PostgreSQL: connections in this replica's pool.
    #[arg(long, env = "HERALD_PG_POOL_SIZE", default_value_t = 16)]
    pub pg_pool_size: u32,
    /// PostgreSQL: `statement_timeout` of every connection.
    #[arg(long, env = "HERALD_PG_STATEMENT_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub pg_statement_timeout: Duration,
    /// PostgreSQL: how long a request waits for a connection before answering 503.
    #[arg(long, env = "HERALD_PG_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = duration)]
    pub pg_acquire_timeout: Duration,
    /// How long events and webhook deliveries are kept; the janitor deletes them after.
    /// (Agents' own deliveries keep their 48 h.)
    #[arg(long, env = "HERALD_RETENTION", default_value = "30d", value_parser = duration)]
    pub retention: Duration,
    /// How often the janitor deletes expired rows (≤ 5,000 a statement).
    #[arg(long, env = "HERALD_JANITOR_INTERVAL", default_value = "5m", value_parser = duration)]
    pub janitor_interval: Duration,
    /// How often the queue's gauges of `/metrics` (pending deliveries, the oldest due one,
    /// disabled webhooks) are counted: three queries, one of them a count over the pending
    /// deliveries' index, on every replica.
    #[arg(long, env = "HERALD_QUEUE_GAUGES_INTERVAL", default_value = "5s", value_parser = duration)]
    pub queue_gauges_interval: Duration,
    /// Label attempt metrics with the webhook's id: one series per webhook (mind the
    /// cardinality with many webhooks).
    #[arg(long, env = "HERALD_METRICS_PER_WEBHOOK", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub metrics_per_webhook: bool,
    /// The URL users reach this server at (portal links start with it), e.g.
    /// `https://hooks.example.com`; `https://` also marks the portal cookie `Secure`.
    /// Default: `http://` and the address `--listen` bound (0.0.0.0 shown as 127.0.0.1).
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Origins allowed to embed the portal in a frame (CSP `frame-ancestors`), comma- or
    /// space-separated, e.g. `https://app.example.com`. Default: none (`X-Frame-Options: DENY`).
    #[arg(long, env = "HERALD_PORTAL_FRAME_ANCESTORS", default_value = "")]
    pub portal_frame_ancestors: String,
    /// How often failing webhooks are auto-disabled (and expired previous secrets dropped).
    #[arg(long, env = "HERALD_AUTO_DISABLE_INTERVAL", default_value = "5m", value_parser = duration)]
    pub auto_disable_interval: Duration,
    /// Window of the auto-disable rule.
    #[arg(long, env = "HERALD_AUTO_DISABLE_WINDOW", default_value = "72h", value_parser = duration)]
    pub auto_disable_window: Duration,
    /// Failed deliveries (with none delivered) in the window that disable a webhook.
    #[arg(long, env = "HERALD_AUTO_DISABLE_THRESHOLD", default_value_t = 10)]
    pub auto_disable_threshold: u32,
    /// Re-enabling sooner than this after an automatic disable answers 409.
    #[arg(long, env = "HERALD_REENABLE_COOLDOWN", default_value = "5m", value_parser = duration)]
    pub reenable_cooldown: Duration,
    /// One recovery per webhook per this interval (429 otherwise).
    #[arg(long, env = "HERALD_RECOVER_INTERVAL", default_value = "1m", value_parser = duration)]
    pub recover_interval: Duration,
    /// Per-account limit on test sends.
    #[arg(long, env = "HERALD_TEST_SENDS_PER_MINUTE", default_value_t = 30)]
    pub test_sends_per_minute: u32,
    /// Per-account limit on secret rotations.
    #[arg(long, env = "HERALD_ROTATIONS_PER_MINUTE", default_value_t = 10)]
    pub rotations_per_minute: u32,
    /// Per-account limit on recoveries.
    #[arg(long, env = "HERALD_RECOVERIES_PER_MINUTE", default_value_t = 10)]
    pub recoveries_per_minute: u32,
    /// Per-account limit on messages injected through the API (`POST /agents/{a}/messages`).
    #[arg(long, env = "HERALD_INJECTS_PER_MINUTE", default_value_t = 600)]
    pub injects_per_minute: u32,
    /// Most webhooks one account may have.
    #[arg(long, env = "HERALD_MAX_WEBHOOKS_PER_ACCOUNT", default_value_t = 50)]
    pub max_webhooks_per_account: u32,
    /// Encrypt signing secrets at rest with this 32-byte key (64 hex characters or base64).
    #[arg(long, env = "HERALD_SECRET_KEY", hide_env_values = true, value_parser = secret_text)]
    pub secret_key: Option<SecretText>,
    /// Key of the `default` account created on first start (else one is generated and printed).
    #[arg(long, env = "HERALD_BOOTSTRAP_API_KEY", hide_env_values = true, value_parser = secret_text)]
    pub bootstrap_api_key: Option<SecretText>,
    /// Address of the SMTP listener for inbound mail (off unless set).
    #[arg(long, env = "HERALD_SMTP_LISTEN")]
    pub smtp_listen: Option<std::net::SocketAddr>,
    /// The domains mail is accepted for; agents can only be created on them (comma list).
    #[arg(long, env = "HERALD_SMTP_DOMAINS", default_value = "")]
    pub smtp_domains: String,
    /// This server's name, in the SMTP greeting and in `Authentication-Results`.
    #[arg(long, env = "HERALD_SMTP_HOSTNAME", default_value = "localhost")]
    pub smtp_hostname: String,
    /// The largest message accepted, in bytes (SMTP and the API).
    #[arg(long, env = "HERALD_SMTP_MAX_MESSAGE_SIZE", default_value_t = 10 * 1024 * 1024)]
    pub smtp_max_message_size: usize,
    /// Most SMTP connections at once; more are answered `421`.
    #[arg(long, env = "HERALD_SMTP_MAX_CONNECTIONS", default_value_t = 256)]
    pub smtp_max_connections: usize,
    /// Most SMTP sessions at once from one client address; more are answered `421`.
    #[arg(long, env = "HERALD_SMTP_MAX_CONNECTIONS_PER_IP", default_value_t = 32)]
    pub smtp_max_connections_per_ip: usize,
    /// Most recipients of one message; more are answered `452`.
    #[arg(long, env = "HERALD_SMTP_MAX_RECIPIENTS", default_value_t = 50)]
    pub smtp_max_recipients: usize,
    /// Longest an SMTP session may last, however busy, before `421`.
    #[arg(long, env = "HERALD_SMTP_MAX_SESSION", default_value = "10m", value_parser = duration)]
    pub smtp_max_session: Duration,
    /// How long an SMTP session may stay silent before `421`.
    #[arg(long, env = "HERALD_SMTP_IDLE_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub smtp_idle_timeout: Duration,
    /// PEM certificate chain for STARTTLS (with `HERALD_SMTP_TLS_KEY`).
    #[arg(long, env = "HERALD_SMTP_TLS_CERT")]
    pub smtp_tls_cert: Option<PathBuf>,
    /// PEM private key for STARTTLS (with `HERALD_SMTP_TLS_CERT`).
    #[arg(long, env = "HERALD_SMTP_TLS_KEY")]
    pub smtp_tls_key: Option<PathBuf>,
}

impl Settings {
    /// Defaults, as if no flag or variable were given.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            s: Settings,
        }
        <P as clap::Parser>::parse_from(["herald"]).s
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("herald.db").display()))
    }

    /// The portal's allowed frame ancestors, each an origin (`https://app.example.com`,
    /// `https://*.example.com`) or `'self'`.
    pub fn frame_ancestors(&self) -> Result<Vec<String>, String> {
        let list: Vec<String> = self
            .portal_frame_ancestors
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        for a in &list {
            let origin = a.strip_prefix("https://").or_else(|| a.strip_prefix("http://"));
            // A host, optionally with a port, and `*` only as a whole leftmost label of a
            // domain with at least two more labels (`*.example.com`, never `*` alone).
            let host_ok = origin.is_some_and(|h| {
                let host =
                    h.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(h, |(h, _)| h);
                let wild = host.strip_prefix("*.");
                let rest = wild.unwrap_or(host);
                !rest.is_empty()
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                    && (wild.is_none() || rest.contains('.'))
            });
            if a != "'self'" && !host_ok {
                return Err(format!(
                    "HERALD_PORTAL_FRAME_ANCESTORS: {a:?} is not an origin like https://app.example.com (or 'self')"
                ));
            }
        }
        Ok(list)
    }

    /// Where users reach this server: `HERALD_PUBLIC_URL`, else `http://` and `bound` (the
    /// listener's address; an unspecified address such as 0.0.0.0 becomes the loopback one,
    /// reachable from this host at least). No trailing slash.
    pub fn public_url_or(&self, bound: std::net::SocketAddr) -> String {
        match &self.public_url {
            // Normalised (scheme and host lowercased, stray whitespace gone); validated at start.
            Some(u) => url::Url::parse(u).map_or_else(|_| u.clone(), String::from).trim_end_matches('/').to_owned(),
            None => {
                let mut at = bound;
                if at.ip().is_unspecified() {
                    at.set_ip(if at.is_ipv4() {
                        std::net::Ipv4Addr::LOCALHOST.into()
                    } else {
                        std::net::Ipv6Addr::LOCALHOST.into()
                    });
                }
                format!("http://{at}")
            }
        }
    }

    /// The database URL with any password (in the userinfo or a `password` parameter)
    /// replaced by `***`, for messages; a URL that does not parse shows its scheme only.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url())
    }

    pub fn sqlite_durability(&self) -> Durability {
        if self.sqlite_synchronous == "full" { Durability::PowerLoss } else { Durability::Process }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy { schedule: self.retry_schedule.clone(), jitter: self.retry_jitter }
    }
}

/// Adds the settings of the `--config` TOML file to `argv` as flags, for every setting that
/// neither a flag nor its environment variable gave: flags > environment > file > defaults.
pub fn argv_with_config_file(cmd: clap::Command, argv: Vec<String>) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    use clap::parser::ValueSource;
    let Ok(matches) = cmd.try_get_matches_from(&argv) else { return Ok(argv) };
    let mut sub = &matches;
    while let Some((_, inner)) = sub.subcommand() {
        sub = inner;
    }
    let Ok(Some(path)) = sub.try_get_one::<PathBuf>("config") else { return Ok(argv) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = text.parse().with_context(|| format!("parsing {}", path.display()))?;
    let mut out = argv.clone();
    for (key, value) in table {
        let id = key.replace('-', "_");
        if id == "config" || sub.try_contains_id(&id).is_err() {
            anyhow::bail!("{}: unknown setting {key:?}", path.display());
        }
        if matches!(sub.value_source(&id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    other => Ok(other.to_string()),
                })
                .collect::<anyhow::Result<Vec<_>>>()?
                .join(","),
            other => anyhow::bail!("{}: {key} has an unsupported value {other}", path.display()),
        };
        out.push(format!("--{}={text}", id.replace('_', "-")));
    }
    Ok(out)
}

/// `url` with its password (userinfo or `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        let scheme = url.split_once(':').map_or("?", |(s, _)| s);
        return format!("{scheme}://*** (unparsed)");
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") { "***".to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut s = Settings::defaults();
        s.secret_key = Some(SecretText::new("ab".repeat(32)));
        s.bootstrap_api_key = Some(SecretText::new("hk_000000000000000000000000000000000000000000000042"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("abab") && !shown.contains("42"), "{shown}");
        assert!(shown.contains("SecretText(***)"));
    }

    #[test]
    fn database_passwords_are_redacted_in_messages() {
        let mut s = Settings::defaults();
        s.database_url = Some("postgres://herald:s3cret@127.0.0.1:5432/herald".into());
        let shown = s.database_url_redacted();
        assert!(!shown.contains("s3cret") && shown.contains("herald:***@127.0.0.1"), "{shown}");
    }

    #[test]
    fn defaults_are_consistent() {
        assert_eq!(Settings::defaults().validate(), Ok(()));
    }

    #[test]
    fn retention_must_outlast_the_retries_and_the_janitor_may_not_spin() {
        let mut s = Settings::defaults();
        s.retention = Duration::from_secs(3600);
        assert!(s.validate().unwrap_err().contains("HERALD_RETENTION"), "the default schedule takes ≈ 29 h");
        s.retry_schedule = vec![Duration::from_secs(60)];
        s.retry_jitter = 0.0;
        assert_eq!(s.validate(), Ok(()));
        s.janitor_interval = Duration::from_millis(100);
        assert!(s.validate().unwrap_err().contains("HERALD_JANITOR_INTERVAL"));
    }

    #[test]
    fn contradicting_settings_are_refused_with_their_names() {
        let mut s = Settings::defaults();
        s.lease = Duration::from_secs(10);
        s.attempt_timeout = Duration::from_secs(15);
        let e = s.validate().unwrap_err();
        assert!(e.contains("HERALD_LEASE") && e.contains("HERALD_ATTEMPT_TIMEOUT"), "{e}");
        let mut s = Settings::defaults();
        s.max_in_flight = 0;
        assert!(s.validate().unwrap_err().contains("HERALD_MAX_IN_FLIGHT"));
        let mut s = Settings::defaults();
        s.auto_disable_interval = Duration::ZERO;
        assert!(s.validate().unwrap_err().contains("HERALD_AUTO_DISABLE_INTERVAL"));
        let mut s = Settings::defaults();
        s.retry_schedule = vec![Duration::from_secs(60), Duration::ZERO];
        assert!(s.validate().unwrap_err().contains("HERALD_RETRY_SCHEDULE"));
        let mut s = Settings::defaults();
        s.retry_schedule = vec![Duration::from_secs(60), Duration::from_secs(10_000 * 365 * 86_400)];
        assert!(s.validate().unwrap_err().contains("365 days"));
        let mut s = Settings::defaults();
        s.lease = Duration::from_secs(20);
        assert!(s.validate().unwrap_err().contains("twice"), "15 s attempts need a 30 s lease");
    }

    #[test]
    fn portal_settings_take_origins_and_an_http_url_only() {
        let mut s = Settings::defaults();
        assert_eq!(s.frame_ancestors().unwrap(), Vec::<String>::new());
        s.portal_frame_ancestors = "https://app.example.com, 'self' https://*.example.org:8443".into();
        assert_eq!(s.frame_ancestors().unwrap(), ["https://app.example.com", "'self'", "https://*.example.org:8443"]);
        for bad in [
            "app.example.com",
            "https://x; script-src *",
            "javascript:x",
            "https://",
            "https://*",
            "https://*.com",
            "https://a*b.com",
        ] {
            s.portal_frame_ancestors = bad.into();
            assert!(s.validate().unwrap_err().contains("HERALD_PORTAL_FRAME_ANCESTORS"), "{bad}");
        }
        let mut s = Settings::defaults();
        for ok in ["https://hooks.example.com", "http://127.0.0.1:8080/", "https://[::1]:8443"] {
            s.public_url = Some(ok.into());
            assert!(s.validate().is_ok(), "{ok}");
        }
        for bad in ["hooks.example.com", "ftp://x", "https://x/?a=1", "https://user@x", "https://example.com/herald"] {
            s.public_url = Some(bad.into());
            assert!(s.validate().unwrap_err().contains("HERALD_PUBLIC_URL"), "{bad}");
        }
        s.public_url = None;
        assert_eq!(s.public_url_or("0.0.0.0:8080".parse().unwrap()), "http://127.0.0.1:8080");
        assert_eq!(s.public_url_or("[::]:81".parse().unwrap()), "http://[::1]:81");
        s.public_url = Some("HTTPS://Hooks.Example.com/".into());
        assert_eq!(s.public_url_or("0.0.0.0:8080".parse().unwrap()), "https://hooks.example.com");
    }

    #[test]
    fn database_urls_never_show_a_password() {
        for (url, hidden) in [
            ("postgres://herald:s3cret@db/herald", "s3cret"),
            ("postgres://herald@db/herald?password=s3cret&sslmode=require", "s3cret"),
            ("postgres://herald:p/ss@db/herald", "p/ss"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(hidden) && shown.starts_with("postgres://"), "{url} → {shown}");
        }
        assert_eq!(redact_url("sqlite://./d/herald.db"), "sqlite://./d/herald.db");
    }
}
