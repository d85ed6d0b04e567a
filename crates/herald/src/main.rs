#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use herald::{Application, Deps, Settings};
use tokio_util::sync::CancellationToken;

/// Herald: durable, signed webhook delivery.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log as JSON lines.
    #[arg(long, global = true, env = "HERALD_LOG_JSON", default_value_t = false)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the delivery engine.
    Serve(Settings),
    /// Apply the embedded database migrations and exit.
    Migrate(Settings),
    /// Manage accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Print a one-time link into the consumer portal of an account (opens the database
    /// directly, like `accounts create`; the link is served by `herald serve`).
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
    /// Measure throughput and latency on a fresh SQLite database and a loopback sink.
    Bench(herald::bench::BenchArgs),
    /// The publishers of `herald bench`, in a process of their own.
    #[command(hide = true)]
    BenchLoad(herald::bench::load::LoadArgs),
    /// The loopback receiver of `herald bench`, in a process of its own.
    #[command(hide = true)]
    BenchSink(herald::bench::sink::SinkArgs),
    /// Manage webhooks of a running Herald.
    Webhooks {
        #[command(flatten)]
        client: herald::cli::ClientArgs,
        #[command(subcommand)]
        command: herald::cli::webhooks::WebhooksCommand,
    },
    /// Manage agents (inbound addresses) of a running Herald.
    Agents {
        #[command(flatten)]
        client: herald::cli::ClientArgs,
        #[command(subcommand)]
        command: herald::cli::agents::AgentsCommand,
    },
    /// Inspect and retry deliveries of a running Herald.
    Deliveries {
        #[command(flatten)]
        client: herald::cli::ClientArgs,
        #[command(subcommand)]
        command: herald::cli::deliveries::DeliveriesCommand,
    },
    /// Publish and list events on a running Herald.
    Events {
        #[command(flatten)]
        client: herald::cli::ClientArgs,
        #[command(subcommand)]
        command: herald::cli::events::EventsCommand,
    },
    /// A local receiver that verifies both signature schemes and prints each delivery.
    Listen(herald::cli::listen::ListenArgs),
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
    let cli = Cli::parse_from(argv);
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
        Command::Migrate(settings) => {
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
        Command::Bench(args) => herald::bench::run(args).await,
        Command::BenchLoad(args) => herald::bench::load::run(args).await,
        Command::BenchSink(args) => herald::bench::sink::run(args).await,
        Command::Webhooks { client, command } => herald::cli::webhooks::run(&client, command).await,
        Command::Agents { client, command } => herald::cli::agents::run(&client, command).await,
        Command::Deliveries { client, command } => herald::cli::deliveries::run(&client, command).await,
        Command::Events { client, command } => herald::cli::events::run(&client, command).await,
        Command::Listen(args) => herald::cli::listen::run(args).await,
    }
}
