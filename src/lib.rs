//! edgecam: a camera streaming service for Raspberry-Pi-class boards.
//!
//! Data path: `source` → `pipeline` (one H.264 encoder per camera, its
//! streams offered on taps) → `output` (RTSP, HLS, the metrics WebSocket,
//! each one file on one contract). `app` runs it all; `config` and
//! `control` decide what runs; `http` serves it; `metrics` and `supervise`
//! report on it. docs/architecture.md draws the whole of it.

pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod gpio;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod overlay;
pub mod pipeline;
pub mod source;
pub mod supervise;
