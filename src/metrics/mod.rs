//! Observability: counters from the data path plus system readings, turned
//! into periodic samples for the metrics WebSocket and `/metrics`. The JSON
//! schema is documented in `docs/metrics.md`; bump [`SCHEMA`] when a field
//! changes meaning or disappears.

pub mod prometheus;
pub mod registry;
mod sampler;
pub mod system;

pub use registry::Registry;
pub use sampler::{spawn, CameraDescription, Metrics, Sample};

/// Version of the WebSocket JSON schema.
pub const SCHEMA: u32 = 1;
