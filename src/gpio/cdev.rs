//! The kernel's GPIO character device (`/dev/gpiochipN`), through
//! `gpiocdev`: any Linux board, and the simulated chip the tests use. The
//! kernel applies active-low and the button's pull resistor.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gpiocdev::line::{Bias, Value};
use gpiocdev::Request;

use super::{Driver, InputLine, OutputLine};
use crate::config::GpioLine;

const CONSUMER: &str = "edgecam";

pub struct Cdev {
    chip: PathBuf,
}

impl Cdev {
    /// `chip`: a path, a name under /dev, or a chip's label.
    pub fn open(chip: &str) -> Result<Self> {
        let path = if chip.starts_with('/') {
            PathBuf::from(chip)
        } else {
            let under_dev = Path::new("/dev").join(chip);
            if under_dev.exists() {
                under_dev
            } else {
                by_label(chip)?
            }
        };
        let path = gpiocdev::chip::is_chip(&path)
            .with_context(|| format!("{} is not a GPIO chip", path.display()))?;
        Ok(Self { chip: path })
    }

    fn request(
        &self,
        line: GpioLine,
        configure: impl FnOnce(&mut gpiocdev::request::Builder),
    ) -> Result<Request> {
        let mut builder = Request::builder();
        builder
            .on_chip(&self.chip)
            .with_consumer(CONSUMER)
            .with_line(line.line);
        configure(&mut builder);
        if line.active_low {
            builder.as_active_low();
        }
        builder.request().with_context(|| {
            format!(
                "cannot have line {} of {} (in use, or not there)",
                line.line,
                self.chip.display()
            )
        })
    }
}

/// The chip whose label is `label`; the error lists the chips there are.
fn by_label(label: &str) -> Result<PathBuf> {
    let chips = gpiocdev::chip::chips().unwrap_or_default();
    let mut seen = Vec::new();
    for path in chips {
        let Ok(info) = gpiocdev::Chip::from_path(&path).and_then(|chip| chip.info()) else {
            continue;
        };
        if info.label == label {
            return Ok(path);
        }
        seen.push(format!("{} ({})", info.name, info.label));
    }
    if seen.is_empty() {
        bail!("no GPIO chip {label:?}: this system has no GPIO chip (or none edgecam may open)");
    }
    bail!("no GPIO chip {label:?}; there are {}", seen.join(", "))
}

struct CdevLine {
    request: Request,
    offset: u32,
}

impl OutputLine for CdevLine {
    fn set(&mut self, active: bool) -> Result<()> {
        let value = if active {
            Value::Active
        } else {
            Value::Inactive
        };
        Ok(self.request.set_value(self.offset, value)?)
    }
}

impl InputLine for CdevLine {
    fn active(&mut self) -> Result<bool> {
        Ok(self.request.value(self.offset)? == Value::Active)
    }
}

impl Driver for Cdev {
    fn name(&self) -> &'static str {
        "the GPIO character device"
    }

    fn output(&mut self, line: GpioLine) -> Result<Box<dyn OutputLine>> {
        let request = self.request(line, |builder| {
            builder.as_output(Value::Inactive);
        })?;
        Ok(Box::new(CdevLine {
            request,
            offset: line.line,
        }))
    }

    fn input(&mut self, line: GpioLine) -> Result<Box<dyn InputLine>> {
        // A button between the line and ground (active low) needs the line
        // pulled up; one to 3.3 V, pulled down.
        let bias = if line.active_low {
            Bias::PullUp
        } else {
            Bias::PullDown
        };
        let request = self.request(line, |builder| {
            builder.as_input().with_bias(bias);
        })?;
        Ok(Box::new(CdevLine {
            request,
            offset: line.line,
        }))
    }
}
