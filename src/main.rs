use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use edgecam::cli::{self, EXIT_BAD_CONFIG, EXIT_FAILURE};
use edgecam::config;

/// Camera streaming for small boards: V4L2 camera → one H.264 encoder → RTSP.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (default: the built-in config.toml).
    #[arg(
        long,
        short,
        global = true,
        env = "EDGECAM_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream the camera (or the test pattern when there is none).
    Run,
    /// Check a configuration file: exit 0 when valid, 2 otherwise.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// List encoders and V4L2 devices, and what "auto" would choose.
    Probe,
    /// Read or change a running board's configuration through its API.
    #[command(name = "config")]
    Remote {
        /// The board's HTTP address.
        #[arg(long, env = "EDGECAM_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The admin token (see [auth] in config.toml).
        #[arg(long, env = "EDGECAM_TOKEN")]
        token: Option<String>,
        #[command(subcommand)]
        action: RemoteAction,
    },
}

#[derive(Subcommand)]
enum RemoteAction {
    /// Print the configuration (secrets redacted).
    Get,
    /// Change one key, e.g. `set encoder.bitrate_kbps 800`.
    Set { key: String, value: String },
    /// Replace the whole configuration with FILE.
    Apply { file: PathBuf },
    /// Check FILE against the board: errors, or what would change and how.
    Validate { file: PathBuf },
}

fn main() -> ExitCode {
    let args = Args::parse();
    edgecam::logging::init();
    let status = match args.command {
        Command::CheckConfig { file } => cli::check_config::check_config(&file),
        Command::Run => {
            let path = args.config.clone();
            with_config(args.config, |config| cli::run::run(config, path.as_deref()))
        }
        Command::Probe => with_config(args.config, cli::probe::probe),
        Command::Remote { url, token, action } => remote(url, token, &action),
    };
    ExitCode::from(status as u8)
}

/// `edgecam config …`: 0 done, 2 refused by the board, 1 unreachable.
fn remote(url: String, token: Option<String>, action: &RemoteAction) -> i32 {
    use cli::remote::{Action, Outcome, Remote};
    let action = match action {
        RemoteAction::Get => Action::Get,
        RemoteAction::Set { key, value } => Action::Set { key, value },
        RemoteAction::Apply { file } => Action::Apply { file },
        RemoteAction::Validate { file } => Action::Validate { file },
    };
    match (Remote { url, token }).run(action) {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Refused) => EXIT_BAD_CONFIG,
        Err(err) => {
            eprintln!("error: {err:#}");
            EXIT_FAILURE
        }
    }
}

/// Loads the configuration and runs `command` with it, turning failures into
/// exit statuses: 2 for a bad configuration, 1 for anything else.
fn with_config(
    path: Option<PathBuf>,
    command: impl FnOnce(&config::Config) -> anyhow::Result<()>,
) -> i32 {
    let config = match config::load(path.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_BAD_CONFIG;
        }
    };
    match command(&config) {
        Ok(()) => 0,
        Err(err) if err.is::<cli::BadConfig>() => {
            eprintln!("error: {err:#}");
            EXIT_BAD_CONFIG
        }
        Err(err) => {
            tracing::error!("{err:#}");
            EXIT_FAILURE
        }
    }
}
