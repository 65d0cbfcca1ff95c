//! The board around the camera: privacy mode and the GPIO lines of the
//! status LED, the tally light and the button.

use serde::{Deserialize, Serialize};

use super::diff::{Effect, Effects};

/// Privacy mode: the camera is closed and every output shows the privacy
/// picture instead (viewers stay connected).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    pub enabled: bool,
}

impl PrivacyConfig {
    pub const EFFECTS: Effects = &[("enabled", Effect::Live)];
}
