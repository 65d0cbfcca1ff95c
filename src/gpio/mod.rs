//! The board's GPIO: a status LED, a tally light and a button, through a
//! small port with two drivers — `rppal` on a Raspberry Pi (BCM numbers on
//! its header) and the kernel's GPIO character device (`gpiocdev`) on any
//! other board — and a fake for the unit tests. What the lines show and
//! what a press does is in [`signals`] (pure, tested step by step) and in
//! `app::board`, which drives them.
//!
//! GPIO is optional: a missing chip or a line another program holds is a
//! log line and GPIO left off, never a reason not to stream.

mod cdev;
#[cfg(test)]
pub mod fake;
mod pi;
pub mod signals;

use anyhow::Result;

use crate::config::{GpioBackend, GpioConfig, GpioLine};

/// A line driven by edgecam (an LED). `active` is "lit", whatever the
/// wiring: the driver applies `active_low`.
pub trait OutputLine: Send {
    fn set(&mut self, active: bool) -> Result<()>;
}

/// A line read by edgecam (a button). `true` while pressed.
pub trait InputLine: Send {
    fn active(&mut self) -> Result<bool>;
}

/// A GPIO driver: hands out lines.
pub trait Driver {
    fn name(&self) -> &'static str;
    fn output(&mut self, line: GpioLine) -> Result<Box<dyn OutputLine>>;
    fn input(&mut self, line: GpioLine) -> Result<Box<dyn InputLine>>;
}

/// The lines in use; each may be absent.
#[derive(Default)]
pub struct Lines {
    pub status_led: Option<Box<dyn OutputLine>>,
    pub tally_led: Option<Box<dyn OutputLine>>,
    pub button: Option<Box<dyn InputLine>>,
}

impl Lines {
    pub fn is_empty(&self) -> bool {
        self.status_led.is_none() && self.tally_led.is_none() && self.button.is_none()
    }
}

/// Opens the configured lines with the configured driver. None when no
/// line is configured, or when GPIO cannot be had (said in the log).
pub fn open(config: &GpioConfig) -> Option<Lines> {
    if config.lines().is_empty() {
        return None;
    }
    let pi = config.backend == GpioBackend::Rppal
        || (config.backend == GpioBackend::Auto && is_raspberry_pi());
    let character_device =
        || cdev::Cdev::open(&config.chip).map(|d| Box::new(d) as Box<dyn Driver>);
    let driver: Result<Box<dyn Driver>> = if pi {
        pi::Pi::open()
            .map(|d| Box::new(d) as Box<dyn Driver>)
            .or_else(|err| {
                if config.backend != GpioBackend::Auto {
                    return Err(err);
                }
                // Debian's own kernel on a Pi has no /dev/gpiomem (a
                // Raspberry Pi kernel driver); its GPIO character device
                // numbers the lines as the BCM numbers.
                tracing::info!(
                    "gpio: rppal cannot reach the Pi's GPIO ({err:#}); using the GPIO character device"
                );
                character_device()
            })
    } else {
        character_device()
    };
    let opened = driver.and_then(|mut driver| {
        let lines = open_with(driver.as_mut(), config)?;
        tracing::info!("gpio: {} via {}", describe(config), driver.name());
        Ok(lines)
    });
    match opened {
        Ok(lines) => Some(lines),
        Err(err) => {
            tracing::error!("gpio: {err:#}; the status LED, tally light and button are off");
            None
        }
    }
}

/// The lines of `config` from `driver`; the first that fails fails all
/// (half a board's wiring would mislead more than none).
pub fn open_with(driver: &mut dyn Driver, config: &GpioConfig) -> Result<Lines> {
    use anyhow::Context;
    let mut lines = Lines::default();
    let output = |driver: &mut dyn Driver, name: &str, line: Option<GpioLine>| {
        line.map(|line| {
            driver
                .output(line)
                .with_context(|| format!("gpio.{name} (line {})", line.line))
        })
        .transpose()
    };
    lines.status_led = output(driver, "status_led", config.status_led)?;
    lines.tally_led = output(driver, "tally_led", config.tally_led)?;
    lines.button = config
        .button
        .map(|line| {
            driver
                .input(line)
                .with_context(|| format!("gpio.button (line {})", line.line))
        })
        .transpose()?;
    Ok(lines)
}

fn describe(config: &GpioConfig) -> String {
    config
        .lines()
        .iter()
        .map(|(name, line)| {
            let low = if line.active_low { ", active low" } else { "" };
            format!("{name} on line {}{low}", line.line)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A Raspberry Pi, as its device tree names the board.
pub fn is_raspberry_pi() -> bool {
    std::fs::read("/sys/firmware/devicetree/base/model")
        .map(|model| model.starts_with(b"Raspberry Pi"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GpioConfig {
        GpioConfig {
            status_led: Some(GpioLine {
                line: 0,
                active_low: false,
            }),
            tally_led: Some(GpioLine {
                line: 1,
                active_low: true,
            }),
            button: Some(GpioLine {
                line: 2,
                active_low: true,
            }),
            ..GpioConfig::default()
        }
    }

    #[test]
    fn lines_are_opened_with_their_wiring() {
        let mut chip = fake::Chip::new(4);
        let mut lines = open_with(&mut chip, &config()).unwrap();
        lines.status_led.as_mut().unwrap().set(true).unwrap();
        lines.tally_led.as_mut().unwrap().set(true).unwrap();
        // The tally is active low: lit is a low line.
        assert_eq!(chip.level(0), Some(true));
        assert_eq!(chip.level(1), Some(false));
        chip.drive(2, false);
        assert!(lines.button.as_mut().unwrap().active().unwrap());
    }

    #[test]
    fn a_line_in_use_fails_all_and_names_it() {
        let mut chip = fake::Chip::new(4);
        chip.take(2);
        let err = open_with(&mut chip, &config()).err().unwrap();
        assert!(
            format!("{err:#}").contains("gpio.button (line 2)"),
            "{err:#}"
        );
    }

    #[test]
    fn nothing_configured_opens_nothing() {
        assert!(open(&GpioConfig::default()).is_none());
    }
}
