//! The subcommands, one module each.

pub mod check_config;
pub mod probe;
pub mod remote;
pub mod run;

/// Exit status for a configuration that cannot be used.
pub const EXIT_BAD_CONFIG: i32 = 2;
/// Exit status for a failure while running.
pub const EXIT_FAILURE: i32 = 1;
