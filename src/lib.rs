//! edgecam: a camera streaming service for Raspberry-Pi-class boards.
//!
//! Data path (see `pipeline`): source → one H.264 encoder → fan-out to the
//! outputs (`output::rtsp`). The control plane (`cli`, `config`) decides what
//! to build, supervises it and stops it.

pub mod cli;
pub mod config;
pub mod control;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod source;
pub mod supervise;
