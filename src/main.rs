//! The `factlog` command line: parse, then hand over to `factlog::commands`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use factlog::commands;
use factlog::config::Settings;

// glibc's malloc showed as about a sixth of the server's CPU under write load
// (BENCHMARKS.md); mimalloc's per-thread free lists are cheaper for the
// many small, short-lived allocations of request handling.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "factlog",
    version,
    about = "Event-sourced fact tracking for newsrooms"
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the projection workers.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "FACTLOG_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Serve the API only (a replica); projections run elsewhere.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run projection workers only.
    Worker,
    /// Apply database migrations.
    Migrate,
    /// Manage bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Rebuild projections from the event log.
    Rebuild {
        /// One projection; all when omitted.
        projection: Option<String>,
    },
    /// Recompute the hash chain; exit 0 when intact, 1 naming the first bad position.
    Verify,
    /// Fill the log with generated newsroom work (benchmarks, load tests).
    #[command(hide = true)]
    Generate {
        /// How many events (at least).
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Seed for the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The private cluster used when DATABASE_URL is unset.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it, alone, on stdout.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: String,
    },
    /// Revoke a token by name.
    Revoke {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Print the connection URL (starting the cluster if needed).
    Url,
    /// Stop the private cluster.
    Stop,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    factlog::telemetry::init(cli.settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("factlog: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = cli.settings;
    let result: anyhow::Result<ExitCode> = runtime.block_on(async {
        match cli.command {
            Command::Serve { listen, no_workers } => {
                commands::serve(&settings, listen, no_workers).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Migrate => {
                commands::migrate(&settings).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Verify => {
                let r = commands::verify(&settings).await?;
                if r.ok {
                    println!(
                        "ok: {} events checked; head {} {}",
                        r.checked, r.head_position, r.head_hash
                    );
                    Ok(ExitCode::SUCCESS)
                } else {
                    println!(
                        "BROKEN: the hash chain breaks at position {}; {} events before it are intact",
                        r.first_bad_position.unwrap_or_default(),
                        r.checked
                    );
                    Ok(ExitCode::from(1))
                }
            }
            Command::Db { command: DbCommand::Url } => {
                commands::db_url(&settings).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Db { command: DbCommand::Stop } => {
                commands::db_stop(&settings)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Token {
                command: TokenCommand::Create { name, role },
            } => {
                commands::token_create(&settings, &name, &role).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Token {
                command: TokenCommand::Revoke { name },
            } => {
                commands::token_revoke(&settings, &name).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Generate { events, seed } => {
                commands::generate(&settings, events, seed).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Worker => {
                commands::worker(&settings).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Rebuild { projection } => {
                commands::rebuild(&settings, projection.as_deref()).await?;
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("factlog: {e:#}");
            ExitCode::from(2)
        }
    }
}
