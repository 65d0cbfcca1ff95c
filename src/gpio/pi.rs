//! A Raspberry Pi's header through `rppal` (lines are BCM numbers). rppal
//! is retired upstream but covers every Pi up to the Pi 5; it needs
//! `/dev/gpiomem` (group gpio on Raspberry Pi OS).

use anyhow::{Context, Result};
use rppal::gpio::{Gpio, InputPin, OutputPin};

use super::{Driver, InputLine, OutputLine};
use crate::config::GpioLine;

pub struct Pi {
    gpio: Gpio,
}

impl Pi {
    pub fn open() -> Result<Self> {
        let gpio = Gpio::new().context("rppal cannot open the Pi's GPIO (/dev/gpiomem)")?;
        Ok(Self { gpio })
    }

    fn pin(&self, line: GpioLine) -> Result<rppal::gpio::Pin> {
        let bcm = u8::try_from(line.line).context("BCM numbers go up to 53")?;
        self.gpio
            .get(bcm)
            .with_context(|| format!("cannot have BCM {bcm} (in use, or not on this Pi)"))
    }
}

struct PiOutput {
    pin: OutputPin,
    active_low: bool,
}

impl OutputLine for PiOutput {
    fn set(&mut self, active: bool) -> Result<()> {
        if active != self.active_low {
            self.pin.set_high();
        } else {
            self.pin.set_low();
        }
        Ok(())
    }
}

struct PiInput {
    pin: InputPin,
    active_low: bool,
}

impl InputLine for PiInput {
    fn active(&mut self) -> Result<bool> {
        Ok(self.pin.is_high() != self.active_low)
    }
}

impl Driver for Pi {
    fn name(&self) -> &'static str {
        "rppal (Raspberry Pi)"
    }

    fn output(&mut self, line: GpioLine) -> Result<Box<dyn OutputLine>> {
        let mut output = PiOutput {
            pin: self.pin(line)?.into_output(),
            active_low: line.active_low,
        };
        output.set(false)?;
        Ok(Box::new(output))
    }

    fn input(&mut self, line: GpioLine) -> Result<Box<dyn InputLine>> {
        let pin = self.pin(line)?;
        let pin = if line.active_low {
            pin.into_input_pullup()
        } else {
            pin.into_input_pulldown()
        };
        Ok(Box::new(PiInput {
            pin,
            active_low: line.active_low,
        }))
    }
}
