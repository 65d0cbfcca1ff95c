//! Outputs: consumers of the camera's single encoded stream.

pub mod hls;
pub mod rtsp;
