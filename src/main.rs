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
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let status = match args.command {
        Command::CheckConfig { file } => cli::check_config::check_config(&file),
        Command::Run => {
            let path = args.config.clone();
            with_config(args.config, |config| cli::run::run(config, path.as_deref()))
        }
        Command::Probe => with_config(args.config, cli::probe::probe),
    };
    ExitCode::from(status as u8)
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
        Err(err) => {
            tracing::error!("{err:#}");
            EXIT_FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
