//! `edgecam check-config FILE`: validate without running anything.

use std::path::Path;

use crate::config;

/// Prints the verdict; returns the exit status (0 valid, 2 invalid).
pub fn check_config(file: &Path) -> i32 {
    match config::load(Some(file)) {
        Ok(config) => match super::check_camera_file(&config) {
            Ok(()) => {
                println!("{}: OK", file.display());
                0
            }
            Err(err) => {
                eprintln!("{}: {err:#}", file.display());
                super::EXIT_BAD_CONFIG
            }
        },
        Err(err) => {
            eprintln!("{err}");
            super::EXIT_BAD_CONFIG
        }
    }
}
