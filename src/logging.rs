//! Where log lines go: to the journal with structured fields when systemd
//! connected stderr to it, to stderr as text otherwise. `RUST_LOG` filters
//! both (default `info`).

use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = stderr_is_the_journal()
        .then(|| {
            // Fields come out as EDGECAM_<NAME>: `journalctl -u edgecam
            // EDGECAM_WATCHDOG=starved` finds them.
            tracing_journald::layer().map(|layer| {
                layer
                    .with_field_prefix(Some("EDGECAM".to_owned()))
                    .with_syslog_identifier("edgecam".to_owned())
                    // INFO is everyday news (priority 6), not a notice (5).
                    .with_priority_mappings(tracing_journald::PriorityMappings {
                        info: tracing_journald::Priority::Informational,
                        debug: tracing_journald::Priority::Debug,
                        ..tracing_journald::PriorityMappings::new()
                    })
            })
        })
        .and_then(Result::ok);
    match journal {
        Some(journal) => tracing_subscriber::registry()
            .with(filter)
            .with(journal)
            .init(),
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            // Colour only for a person at a terminal who did not opt out
            // (NO_COLOR): a file, Docker or a supervisor would get raw
            // escape codes.
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .init(),
    }
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for the stream it connects; a
/// child whose stderr was redirected elsewhere inherits the variable, so the
/// device and inode must match (systemd.exec(5)).
fn stderr_is_the_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream.to_string_lossy() == format!("{}:{}", stderr.dev(), stderr.ino())
}
