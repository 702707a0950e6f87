//! The `factlog` command line: parse, then hand over to `factlog::commands`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use factlog::commands;
use factlog::config::{
    ApiArgs, DatabaseArgs, KeyArgs, LogArgs, Settings, StoreArgs, WorkerArgs, unset,
};

// glibc's malloc showed as about a sixth of the server's CPU under write load
// (bench/history/2026-11-benchmarks.md); mimalloc's per-thread free lists are
// cheaper for the many small, short-lived allocations of request handling.
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
    log: LogArgs,
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
        /// Serve the API only; projections and the chain verifier run elsewhere.
        #[arg(long)]
        no_workers: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        workers: WorkerArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Run projection workers, the chain verifier and the checkpoint signer only.
    Worker {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        workers: WorkerArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// The verifiable log's signing key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Apply database migrations.
    Migrate {
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Manage bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Rebuild projections from the event log.
    Rebuild {
        /// One projection; all when omitted.
        projection: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Recompute the hash chain and the Merkle tree; exit 0 when intact, 1 naming the first bad position.
    Verify {
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// The auditor's check: from a saved checkpoint, prove the log only grew
    /// (and with --events that every new event is in it); exit 0 and save the
    /// newer checkpoint, or 1 naming what failed.
    Audit {
        /// The checkpoint kept from the last audit (a signed note from
        /// GET /v1/checkpoint); replaced by the newer one when all holds.
        #[arg(long)]
        checkpoint: PathBuf,
        /// A running server (http://host:port), read through its public API;
        /// the database itself when omitted.
        #[arg(long, env = "FACTLOG_AUDIT_URL")]
        url: Option<String>,
        /// Bearer token for --url (an auditor's or admin's for --events).
        #[arg(long, env = "FACTLOG_AUDIT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The verifier key to trust (the text `factlog key show` prints, or a
        /// file holding it). Default: the key of this configuration's signing key.
        #[arg(long)]
        key: Option<String>,
        /// Recompute the leaf of every event added since the saved checkpoint
        /// and check them against the new signed root.
        #[arg(long)]
        events: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Write the log (or the part after --after) to stdout as NDJSON, one
    /// event per line, each line checkable alone (AUDITING.md).
    Export {
        /// Only the events after this position.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Append the events of an export to this log (migrating it first),
    /// checking every line's chain hash and leaf; lines the log already
    /// holds identically are skipped, so a run can be repeated or resumed.
    /// Exit 1 names the first bad line or where the logs diverge.
    Import {
        /// The NDJSON file `factlog export` wrote.
        file: PathBuf,
        /// Lines per transaction.
        #[arg(long, default_value_t = commands::IMPORT_BATCH as u64,
              value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        batch: u64,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Fill the log with generated newsroom work (benchmarks, load tests).
    Generate {
        /// How many events (at least).
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Seed for the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The private cluster used when DATABASE_URL is unset.
    Db {
        #[command(subcommand)]
        command: DbCommand,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

impl Command {
    /// The settings this subcommand was given, the rest from the
    /// environment or their defaults.
    fn settings(&self, log: LogArgs) -> Settings {
        let (db, store, api, workers, keys) = match self {
            Command::Serve {
                db,
                store,
                api,
                workers,
                keys,
                ..
            } => (
                db.clone(),
                Some(store),
                Some(api),
                Some(workers),
                Some(keys),
            ),
            Command::Worker { db, workers, keys } => {
                (db.clone(), None, None, Some(workers), Some(keys))
            }
            Command::Key { db, keys, .. } | Command::Audit { db, keys, .. } => {
                (db.clone(), None, None, None, Some(keys))
            }
            Command::Generate { db, store, .. } => (db.clone(), Some(store), None, None, None),
            Command::Migrate { db }
            | Command::Token { db, .. }
            | Command::Rebuild { db, .. }
            | Command::Verify { db }
            | Command::Export { db, .. }
            | Command::Import { db, .. }
            | Command::Db { db, .. } => (db.clone(), None, None, None, None),
        };
        Settings::from_parts(
            db,
            store.cloned().unwrap_or_else(unset),
            api.cloned().unwrap_or_else(unset),
            workers.cloned().unwrap_or_else(unset),
            keys.cloned().unwrap_or_else(unset),
            log,
        )
    }
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
enum KeyCommand {
    /// Print the verifier key (signed-note vkey) auditors check checkpoints with.
    Show,
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
    factlog::telemetry::init(cli.log.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("factlog: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = cli.command.settings(cli.log);
    let result: anyhow::Result<ExitCode> = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                listen, no_workers, ..
            } => {
                commands::serve(&settings, listen, no_workers).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Migrate { .. } => {
                commands::migrate(&settings).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Verify { .. } => {
                let r = commands::verify(&settings).await?;
                for line in r.lines() {
                    println!("{line}");
                }
                Ok(if r.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            Command::Db {
                command: DbCommand::Url,
                ..
            } => {
                commands::db_url(&settings).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Db {
                command: DbCommand::Stop,
                ..
            } => {
                commands::db_stop(&settings)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Token {
                command: TokenCommand::Create { name, role },
                ..
            } => {
                commands::token_create(&settings, &name, &role).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Token {
                command: TokenCommand::Revoke { name },
                ..
            } => {
                commands::token_revoke(&settings, &name).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Generate { events, seed, .. } => {
                commands::generate(&settings, events, seed).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Worker { .. } => {
                commands::worker(&settings).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Key {
                command: KeyCommand::Show,
                ..
            } => {
                println!("{}", commands::key_show(&settings).await?);
                Ok(ExitCode::SUCCESS)
            }
            Command::Audit {
                checkpoint,
                url,
                token,
                key,
                events,
                ..
            } => {
                let file = checkpoint.display().to_string();
                let request = commands::AuditRequest {
                    checkpoint,
                    url,
                    token,
                    key,
                    events,
                };
                match commands::audit(&settings, request).await? {
                    Ok(r) => {
                        let recomputed = if events {
                            format!("{} new events recomputed", r.events_checked)
                        } else {
                            "new events not recomputed (--events does)".to_owned()
                        };
                        println!(
                            "ok: the log of {} only grew, from {} to {} events (consistency proof checked); {recomputed}; {file} now holds the checkpoint of {}",
                            r.latest.origin, r.saved.size, r.latest.size, r.latest.size
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => {
                        println!("FAILED: {e}");
                        Ok(ExitCode::from(1))
                    }
                }
            }
            Command::Export { after, .. } => {
                commands::export(&settings, after).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Import { file, batch, .. } => {
                match commands::import(&settings, &file, batch as usize).await {
                    Ok(summary) => {
                        println!("{}", serde_json::to_string(&summary)?);
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => match e.downcast_ref::<factlog::store::import::ImportError>() {
                        Some(refused) if refused.is_refusal() => {
                            eprintln!("factlog import: {refused}");
                            Ok(ExitCode::from(1))
                        }
                        _ => Err(e),
                    },
                }
            }
            Command::Rebuild { projection, .. } => {
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
