#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use herald::{Application, Deps, Settings};
use tokio_util::sync::CancellationToken;

/// Herald delivers your platform's events to your customers' HTTP endpoints — signed,
/// retried on a schedule, never lost once accepted — and turns email for your agents into
/// webhooks. One binary: SQLite by default, PostgreSQL for many replicas.
#[derive(Parser)]
#[command(
    version,
    about = "Herald: durable, signed webhook delivery (and email for your agents) in one binary.",
    long_about = None,
    after_help = "Examples:\n  herald serve                                  start on ./herald-data (SQLite), API on 127.0.0.1:8080\n  \
                  herald serve --database-url postgres://…       one of many replicas on PostgreSQL\n  \
                  herald config check                           what `serve` would run with, and every problem\n  \
                  herald webhooks create https://example.com/hook --events email.received\n  \
                  herald portal --account default               a one-time link for the consumer portal\n\n\
                  `herald <command> --help` tells more about each command."
)]
struct Cli {
    /// Log as JSON lines.
    #[arg(long, global = true, env = "HERALD_LOG_JSON", default_value_t = false)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start Herald: the API (and portal) on --listen, the delivery engine, and the SMTP
    /// listener when --smtp-listen is set. The first start creates the account `default` and
    /// prints its API key once.
    #[command(
        after_help = "Example:\n  HERALD_BOOTSTRAP_API_KEY=hk_$(openssl rand -hex 24) herald serve --listen 0.0.0.0:8080"
    )]
    Serve(Settings),
    /// Bring the database schema up to date and exit (`serve` does it too at start).
    #[command(after_help = "Example:\n  herald migrate --dry-run --database-url postgres://herald@db/herald")]
    Migrate {
        /// List the migrations that would run, and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Write a consistent copy of the live SQLite database to FILE, while it keeps serving.
    #[command(after_help = "Example:\n  herald backup /backups/herald-$(date +%F).db --data-dir /var/lib/herald")]
    Backup {
        /// Where to write the copy (a new file).
        file: std::path::PathBuf,
        #[command(flatten)]
        settings: Settings,
    },
    /// Replace the SQLite database with a backup (refused while a `herald serve` holds it;
    /// the replaced file is kept as `<name>.db.before-restore`).
    #[command(after_help = "Example:\n  herald restore /backups/herald-2026-11-28.db --data-dir /var/lib/herald")]
    Restore {
        /// The backup to restore.
        file: std::path::PathBuf,
        #[command(flatten)]
        settings: Settings,
    },
    /// Create accounts (tenants) straight in the database; each gets an API key, shown once.
    #[command(after_help = "Example:\n  herald accounts create acme --data-dir /var/lib/herald")]
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Print a one-time link into the consumer portal of an account, for its endpoint owners
    /// to see and fix their webhooks (made in the database; `herald serve` serves the page).
    #[command(
        after_help = "Example:\n  herald portal --account default --expires-in 600 --public-url https://hooks.example.com"
    )]
    Portal {
        /// The account's name (`default` is the one the first start created).
        #[arg(long, default_value = "default")]
        account: String,
        /// How long the link and its session live, in seconds (1..86400).
        #[arg(long, default_value_t = 3600)]
        expires_in: u64,
        /// A session that sees everything and changes nothing.
        #[arg(long)]
        read_only: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Check settings before a start: flags, HERALD_* variables and the --config file,
    /// loaded exactly as `serve` would.
    #[command(
        after_help = "Example:\n  HERALD_LEASE=10s herald config check --config /etc/herald.toml\n\nPrints every problem at \
                      once, then each effective setting and where it came from (secrets redacted). Exit status 1 \
                      when there is a problem."
    )]
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Measure deliveries per second and publish-to-receive latency on this machine, with the
    /// load and the receiver in their own processes (a fresh database; nothing else touched).
    #[command(after_help = "Example:\n  herald bench --events 20000 --workload a")]
    Bench(herald::bench::BenchArgs),
    /// The publishers of `herald bench`, in a process of their own.
    #[command(hide = true)]
    BenchLoad(herald::bench::load::LoadArgs),
    /// The loopback receiver of `herald bench`, in a process of its own.
    #[command(hide = true)]
    BenchSink(herald::bench::sink::SinkArgs),
    /// Create, list, change, test, rotate and recover webhooks on a running Herald (its API,
    /// with an API key).
    #[command(
        after_help = "Example:\n  HERALD_API_KEY=hk_… herald webhooks create https://example.com/hook --events email.received"
    )]
    Webhooks {
        #[command(flatten)]
        client: herald::cli::ClientArgs,
        #[command(subcommand)]
        command: herald::cli::webhooks::WebhooksCommand,
    },
    /// Create and manage agents — addresses that receive email and turn it into webhooks —
    /// on a running Herald.
    #[command(
        after_help = "Example:\n  herald agents create bot@agents.example.com --webhook-url https://bot.example.com/mail"
    )]
    Agents {
        #[command(flatten)]
        client: herald::cli::ClientArgs,
        #[command(subcommand)]
        command: herald::cli::agents::AgentsCommand,
    },
    /// The account's Ed25519 signing keys (for webhooks and agents with `--signature
    /// ed25519`): list them, rotate them, on a running Herald.
    #[command(after_help = "Example:\n  herald signing-keys rotate --grace-period-seconds 3600")]
    SigningKeys {
        #[command(flatten)]
        client: herald::cli::ClientArgs,
        #[command(subcommand)]
        command: herald::cli::signing_keys::SigningKeysCommand,
    },
    /// See what happened to deliveries (every attempt) and retry failed ones, on a running Herald.
    #[command(after_help = "Example:\n  herald deliveries list wh_… --status failed")]
    Deliveries {
        #[command(flatten)]
        client: herald::cli::ClientArgs,
        #[command(subcommand)]
        command: herald::cli::deliveries::DeliveriesCommand,
    },
    /// Publish an event to every subscribed webhook, or list what was published, on a running
    /// Herald.
    #[command(after_help = "Example:\n  herald events send --type email.received --data '{\"message_id\":\"m1\"}'")]
    Events {
        #[command(flatten)]
        client: herald::cli::ClientArgs,
        #[command(subcommand)]
        command: herald::cli::events::EventsCommand,
    },
    /// Run a local receiver while you write yours: it checks each delivery's signatures (the
    /// HMAC schemes with a webhook's secret, or Ed25519 `v1a` with public keys) and prints it,
    /// answering 200 when they verify and 401 when not.
    #[command(
        after_help = "Example:\n  herald listen --secret whsec_… --port 9000\n  herald listen --public-key whpk_… --port 9000"
    )]
    Listen(herald::cli::listen::ListenArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Report every problem of the settings and print the effective ones (secrets redacted).
    Check(Settings),
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Create an account and print its API key (shown once).
    Create {
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json { b.json().init() } else { b.init() }
}

async fn shutdown_signal(cancel: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested: stop accepting, finish in-flight attempts, release leases");
    cancel.cancel();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let argv =
        herald::settings::argv_with_config_file(<Cli as clap::CommandFactory>::command(), std::env::args().collect())?;
    let cli = Cli::parse_from(argv.clone());
    match cli.command {
        Command::Serve(settings) => {
            init_tracing(cli.log_json);
            let app = Application::build(settings, Deps::default()).await?;
            if let Some(key) = &app.created_key {
                println!("Created account 'default'. Its API key (shown once): {}", key.expose());
            }
            if let Some(smtp) = app.smtp_addr() {
                println!("herald smtp listening on {smtp}");
            }
            println!(
                "portal: {}/portal/ (open it with a link from `herald portal --account NAME` or POST /api/v1/portal-sessions)",
                app.public_url()
            );
            // Last: tests and scripts read stdout up to this line, then may close it.
            println!("herald listening on http://{}", app.local_addr());
            let cancel = CancellationToken::new();
            tokio::spawn(shutdown_signal(cancel.clone()));
            app.run_until_stopped(cancel).await
        }
        Command::Migrate { dry_run: true, settings } => {
            let pending = herald::pending_migrations(&settings).await?;
            if pending.is_empty() {
                println!("{} is up to date", settings.database_url_redacted());
            }
            for (version, description) in pending {
                println!("would apply {version:04} {description}");
            }
            Ok(())
        }
        Command::Migrate { dry_run: false, settings } => {
            init_tracing(cli.log_json);
            herald::open_store(&settings).await?;
            println!("migrations applied to {}", settings.database_url_redacted());
            Ok(())
        }
        Command::Accounts { command: AccountsCommand::Create { name, settings } } => {
            init_tracing(cli.log_json);
            let store = herald::open_store(&settings).await?;
            let key = herald_domain::ApiKey::generate();
            let account = store
                .create_account(&name, &key.hash(), time::OffsetDateTime::now_utc())
                .await
                .map_err(|e| match e {
                    herald_store::StoreError::AlreadyExists => {
                        anyhow::anyhow!("an account named {name:?} already exists")
                    }
                    e => anyhow::Error::new(e),
                })
                .context("creating account")?;
            println!("account {} ({})", account.name, account.id);
            println!("api key (shown once): {}", key.expose());
            Ok(())
        }
        Command::Portal { account, expires_in, read_only, settings } => {
            init_tracing(cli.log_json);
            let (url, expires_at) = herald::portal_link(&settings, &account, expires_in, read_only).await?;
            println!("{url}");
            eprintln!("(one-time link for account {account:?}, valid until {})", herald_domain::rfc3339(expires_at));
            Ok(())
        }
        Command::Config { command: ConfigCommand::Check(settings) } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let matches = cmd.clone().get_matches_from(argv);
            let (_, config) = matches.subcommand().expect("the config command");
            let (_, check) = config.subcommand().expect("config check");
            let check_cmd = cmd.find_subcommand("config").and_then(|c| c.find_subcommand("check")).expect("defined");
            let (report, ok) = herald::config_check::report(check, check_cmd, &settings);
            print!("{report}");
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Backup { file, settings } => {
            init_tracing(cli.log_json);
            herald::backup::backup(&settings, &file).await?;
            println!("backed up to {} (integrity check ok)", file.display());
            Ok(())
        }
        Command::Restore { file, settings } => {
            init_tracing(cli.log_json);
            let kept = herald::backup::restore(&settings, &file).await?;
            println!("restored {} (the replaced database, if any, is {})", file.display(), kept.display());
            Ok(())
        }
        Command::Bench(args) => herald::bench::run(args).await,
        Command::BenchLoad(args) => herald::bench::load::run(args).await,
        Command::BenchSink(args) => herald::bench::sink::run(args).await,
        Command::Webhooks { client, command } => herald::cli::webhooks::run(&client, command).await,
        Command::Agents { client, command } => herald::cli::agents::run(&client, command).await,
        Command::SigningKeys { client, command } => herald::cli::signing_keys::run(&client, command).await,
        Command::Deliveries { client, command } => herald::cli::deliveries::run(&client, command).await,
        Command::Events { client, command } => herald::cli::events::run(&client, command).await,
        Command::Listen(args) => herald::cli::listen::run(args).await,
    }
}
