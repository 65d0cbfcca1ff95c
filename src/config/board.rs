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

    /// The configuration edit that turns privacy mode on or off.
    pub fn fragment(enabled: bool) -> String {
        format!("[privacy]\nenabled = {enabled}\n")
    }
}

/// Which GPIO driver to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpioBackend {
    /// `rppal` on a Raspberry Pi (told by its device tree), the kernel's
    /// GPIO character device anywhere else.
    #[default]
    Auto,
    /// `rppal`: lines are BCM numbers on the Pi's header.
    Rppal,
    /// The kernel's GPIO character device (`gpiocdev`): chip and line.
    Cdev,
}

/// One GPIO line: its offset on the chip (the BCM number on a Pi) and
/// whether it is active when low (an LED to 3.3 V, a button to ground).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    pub line: u32,
    #[serde(default)]
    pub active_low: bool,
}

/// The status LED, the tally light and the button; each optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpioConfig {
    pub backend: GpioBackend,
    /// The character device's chip: a path, a name under /dev or the
    /// chip's label (not used by `rppal`).
    pub chip: String,
    pub status_led: Option<GpioLine>,
    pub tally_led: Option<GpioLine>,
    pub button: Option<GpioLine>,
}

pub const DEFAULT_GPIO_CHIP: &str = "gpiochip0";

impl Default for GpioConfig {
    fn default() -> Self {
        Self {
            backend: GpioBackend::Auto,
            chip: DEFAULT_GPIO_CHIP.to_owned(),
            status_led: None,
            tally_led: None,
            button: None,
        }
    }
}

impl GpioConfig {
    /// The lines are requested once, at start.
    pub const EFFECTS: Effects = &[
        ("backend", Effect::Process),
        ("chip", Effect::Process),
        ("status_led", Effect::Process),
        ("tally_led", Effect::Process),
        ("button", Effect::Process),
    ];

    /// The configured lines with what each is for.
    pub fn lines(&self) -> Vec<(&'static str, GpioLine)> {
        [
            ("status_led", self.status_led),
            ("tally_led", self.tally_led),
            ("button", self.button),
        ]
        .into_iter()
        .filter_map(|(name, line)| Some((name, line?)))
        .collect()
    }
}

/// Two functions on one line cannot work; a chip must be named.
pub fn validate(gpio: &GpioConfig) -> Result<(), super::Invalid> {
    let lines = gpio.lines();
    for (index, (name, line)) in lines.iter().enumerate() {
        if let Some((other, _)) = lines[..index].iter().find(|(_, l)| l.line == line.line) {
            return Err(super::Invalid {
                key: "gpio",
                message: format!("{other} and {name} are both on line {}", line.line),
            });
        }
        if gpio.backend == GpioBackend::Rppal && line.line > 53 {
            return Err(super::Invalid {
                key: "gpio",
                message: format!("{name}: BCM {} does not exist (0–53)", line.line),
            });
        }
    }
    if gpio.chip.is_empty() {
        return Err(super::Invalid {
            key: "gpio.chip",
            message: "name the GPIO chip, e.g. \"gpiochip0\"".to_owned(),
        });
    }
    Ok(())
}
