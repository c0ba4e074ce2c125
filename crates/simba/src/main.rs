//! The `simba` binary: one program, one subcommand per role.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use simba::app::{self, AppState};
use simba::config::Config;
use simba::domain::Mode;
use simba::domain::{Email, Password, PersonName, Username};
use simba::services::accounts::{self, AccountError, NewAccount};
use simba::store::users::Taken;
use simba::store::{self, Db};

/// glibc's allocator took a fifth of a sync's CPU, most of it consolidating and freeing chunks
/// handed between threads (a response body is allocated on one worker and freed on another).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Keeps every shipment of every marketplace shop in sync."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bol.com Retailer API simulator (for demos, tests and benchmarks).
    Sandbox(bol_sandbox::SandboxArgs),
    #[command(flatten)]
    App(AppCommand),
}

/// Commands that read Simba's configuration and database.
#[derive(Subcommand)]
enum AppCommand {
    /// Serve the REST API with the sync workers and scheduler (migrations are applied first).
    Serve {
        /// Serve the API only; `simba worker` processes run the syncs.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run sync jobs and the scheduler only (no API); any number may share one database.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// The server with an in-process bol sandbox, a demo seller and shop, and a sync started.
    Demo,
    /// Run one sync of a shop in the foreground, with progress and a cost summary.
    Sync {
        #[arg(long)]
        shop: i64,
        /// full or incremental (default: full until a sync has succeeded).
        #[arg(long)]
        mode: Option<String>,
    },
    /// Manage seller accounts without the API.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a seller; the password is prompted for, or read from standard input.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The cause chain in one line, for an operator rather than a developer.
            eprintln!("simba: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let command = match cli.command {
        Command::Sandbox(args) => {
            simba::telemetry::init_logging(simba::config::LogFormat::Human);
            return runtime.block_on(bol_sandbox::run(args));
        }
        Command::App(command) => command,
    };
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("simba: {error}");
            std::process::exit(2);
        }
    };
    simba::telemetry::init_logging(config.log_format);
    runtime.block_on(async move {
        match command {
            AppCommand::Serve { no_workers } => {
                config.run_workers = !no_workers;
                serve(config).await
            }
            AppCommand::Migrate => {
                let db = Db::connect(&config.database_url, 2).await?;
                store::migrate(&db).await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            AppCommand::Worker => {
                let operations = match config.worker_metrics_addr {
                    Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                        anyhow::anyhow!("SIMBA_WORKER_METRICS_ADDR {addr}: cannot listen: {e}")
                    })?),
                    None => None,
                };
                let state = AppState::start(config).await?;
                app::work(state, operations, app::shutdown_signal()).await;
                Ok(())
            }
            AppCommand::Demo => simba::demo::run(config).await,
            AppCommand::Sync { shop, mode } => {
                let mode = mode
                    .map(|m| Mode::parse(&m).map_err(|e| anyhow::anyhow!("--mode {e}")))
                    .transpose()?;
                let state = AppState::start(config).await?;
                simba::sync::foreground::run(&state.engine, shop, mode, state.config.bol_time_scale)
                    .await
            }
            AppCommand::User {
                command: UserCommand::Create { username, email },
            } => create_user(config, &username, &email).await,
        }
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = config.addr;
    let state = AppState::start(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "simba is serving; API docs at /docs");
    app::serve(state, listener, app::shutdown_signal()).await;
    Ok(())
}

async fn create_user(config: Config, username: &str, email: &str) -> anyhow::Result<()> {
    let username = Username::parse(username).map_err(|m| anyhow::anyhow!("username {m}"))?;
    let email = Email::parse(email).map_err(|m| anyhow::anyhow!("email {m}"))?;
    let password = read_password()?;
    let password = Password::parse(&password, username.as_str())
        .map_err(|m| anyhow::anyhow!("password {m}"))?;
    let state = AppState::start(config).await?;
    let no_name = PersonName::parse("").map_err(anyhow::Error::msg)?;
    let new = NewAccount {
        username: &username,
        email: &email,
        password: &password,
        first_name: &no_name,
        last_name: &no_name,
    };
    let user = match accounts::register(&state.db, &new).await {
        Err(AccountError::Taken(taken)) => anyhow::bail!(
            "that {} is taken",
            match taken {
                Taken::Username => "username",
                Taken::Email => "email address",
            }
        ),
        other => other?,
    };
    println!("created seller {} (id {})", user.username, user.id);
    Ok(())
}

/// Prompts without echo on a terminal, else reads the first line of standard input, so that
/// scripts can pipe a password in.
fn read_password() -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        rpassword::prompt_password("Password: ").context("reading the password")?
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password")?;
        line
    };
    Ok(SecretString::from(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}
