//! The settings checked together: every combination that would break a guarantee, named
//! in words (`serve` refuses to start with any; `herald config check` lists them all).

use crate::settings::{LEASE_MARGIN, MAX_DURATION, Settings};
use std::time::Duration;

impl Settings {
    /// Checks the settings together; every problem found, in words naming the settings
    /// (serve refuses to start with any; `herald config check` lists them all).
    pub fn validate(&self) -> Result<(), String> {
        let problems = self.problems();
        if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
    }

    /// Every problem of these settings (empty: they can run).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_in_flight == 0 {
            problems.push("HERALD_MAX_IN_FLIGHT must be at least 1 (0 would deliver nothing)".into());
        }
        // Every duration setting, and whether zero makes sense for it (no grace, no cooldown).
        let durations = [
            ("HERALD_LEASE", self.lease, false),
            ("HERALD_ATTEMPT_TIMEOUT", self.attempt_timeout, false),
            ("HERALD_POLL_INTERVAL", self.poll_interval, false),
            ("HERALD_SHUTDOWN_GRACE", self.shutdown_grace, true),
            ("HERALD_AUTO_DISABLE_INTERVAL", self.auto_disable_interval, false),
            ("HERALD_AUTO_DISABLE_WINDOW", self.auto_disable_window, false),
            ("HERALD_REENABLE_COOLDOWN", self.reenable_cooldown, true),
            ("HERALD_RETENTION", self.retention, false),
            ("HERALD_JANITOR_INTERVAL", self.janitor_interval, false),
            ("HERALD_RECOVER_INTERVAL", self.recover_interval, false),
            ("HERALD_QUEUE_GAUGES_INTERVAL", self.queue_gauges_interval, false),
            ("HERALD_PG_STATEMENT_TIMEOUT", self.pg_statement_timeout, false),
            ("HERALD_PG_ACQUIRE_TIMEOUT", self.pg_acquire_timeout, false),
        ];
        for (name, _, _) in durations.iter().filter(|(_, d, zero_ok)| d.is_zero() && !zero_ok) {
            problems.push(format!("{name} must be longer than zero"));
        }
        let mut all: Vec<(&str, Duration)> = durations.iter().map(|(name, d, _)| (*name, *d)).collect();
        all.extend(self.retry_schedule.iter().map(|d| ("HERALD_RETRY_SCHEDULE", *d)));
        // Instants are computed as now + a setting: keep every one far from time's range.
        // (The checks below that add durations up only run on sane ones.)
        let too_long = all.iter().find(|(_, d)| *d > MAX_DURATION);
        if let Some((name, _)) = too_long {
            problems.push(format!("{name} must be at most 365 days"));
        }
        if too_long.is_none() && self.lease < (self.attempt_timeout + LEASE_MARGIN).max(self.attempt_timeout * 2) {
            problems.push(format!(
                "HERALD_LEASE ({}) must be at least twice HERALD_ATTEMPT_TIMEOUT ({}) and {} longer: otherwise a \
                 lease can expire while its attempt runs or its outcome is being recorded, and the delivery is \
                 sent twice and its webhook's max_in_flight exceeded",
                humantime::format_duration(self.lease),
                humantime::format_duration(self.attempt_timeout),
                humantime::format_duration(LEASE_MARGIN),
            ));
        }
        if let Some(k) = &self.secret_key
            && let Err(e) = herald_store::codec::SecretCipher::from_key_text(k.expose())
        {
            problems.push(format!("HERALD_SECRET_KEY: {e}"));
        }
        if self.bootstrap_api_key.as_ref().is_some_and(|k| herald_domain::ApiKey::parse(k.expose()).is_none()) {
            problems.push("HERALD_BOOTSTRAP_API_KEY must be hk_ followed by 48 lowercase hex characters".into());
        }
        if let Some(Err(e)) = self.public_url.as_deref().map(check_public_url) {
            problems.push(e);
        }
        if let Err(e) = self.frame_ancestors() {
            problems.push(e);
        }
        if self.pg_pool_size == 0 {
            problems.push("HERALD_PG_POOL_SIZE must be at least 1".into());
        }
        if self.auto_disable_threshold == 0 {
            problems.push("HERALD_AUTO_DISABLE_THRESHOLD must be at least 1".into());
        }
        if self.smtp_tls_cert.is_some() != self.smtp_tls_key.is_some() {
            problems.push("HERALD_SMTP_TLS_CERT and HERALD_SMTP_TLS_KEY must be set together".into());
        }
        if self.smtp_listen.is_some() && herald_domain::AcceptedDomains::parse(&self.smtp_domains).is_empty() {
            problems.push("HERALD_SMTP_LISTEN needs HERALD_SMTP_DOMAINS (the domains mail is accepted for)".into());
        }
        if self.smtp_max_message_size < 1024 {
            problems.push("HERALD_SMTP_MAX_MESSAGE_SIZE must be at least 1024 bytes".into());
        }
        for (name, d) in
            [("HERALD_SMTP_IDLE_TIMEOUT", self.smtp_idle_timeout), ("HERALD_SMTP_MAX_SESSION", self.smtp_max_session)]
        {
            if d.is_zero() || d > MAX_DURATION {
                problems.push(format!("{name} must be longer than zero and at most 365 days"));
            }
        }
        for (name, n) in [
            ("HERALD_SMTP_MAX_CONNECTIONS", self.smtp_max_connections),
            ("HERALD_SMTP_MAX_CONNECTIONS_PER_IP", self.smtp_max_connections_per_ip),
            ("HERALD_SMTP_MAX_RECIPIENTS", self.smtp_max_recipients),
        ] {
            if n == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        if self.retry_schedule.iter().any(Duration::is_zero) {
            problems.push("HERALD_RETRY_SCHEDULE: every wait must be longer than zero".into());
        }
        // A delivery past its retention is never attempted again and never becomes `failed`
        // (nor counts towards auto-disable): every retry must fall due, and run, before it.
        let retries: Duration = if too_long.is_none() { self.retry_schedule.iter().sum() } else { Duration::ZERO };
        let needed = retries.mul_f64(1.0 + self.retry_jitter.clamp(0.0, 1.0)) + self.attempt_timeout.min(MAX_DURATION);
        if too_long.is_none() && self.retention < needed {
            problems.push(format!(
                "HERALD_RETENTION ({}) must cover HERALD_RETRY_SCHEDULE with its jitter and one \
                 HERALD_ATTEMPT_TIMEOUT ({} in all): otherwise deliveries expire before their last retry",
                humantime::format_duration(self.retention),
                humantime::format_duration(Duration::from_secs(needed.as_secs() + 1)),
            ));
        }
        if self.janitor_interval < Duration::from_secs(1) {
            problems.push("HERALD_JANITOR_INTERVAL must be at least 1s (each pass is a write transaction)".into());
        }
        problems
    }
}

/// `HERALD_PUBLIC_URL`: an http(s) URL with a host and nothing after the path.
fn check_public_url(u: &str) -> Result<(), String> {
    let parsed = url::Url::parse(u).map_err(|e| format!("HERALD_PUBLIC_URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.path() != "/"
    {
        return Err(
            "HERALD_PUBLIC_URL must be an http(s) origin like https://hooks.example.com (the portal is served at /portal/, so no path)"
                .into(),
        );
    }
    Ok(())
}
