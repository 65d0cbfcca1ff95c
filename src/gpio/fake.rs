//! A GPIO chip in memory, for unit tests: lines have a level, the test
//! drives inputs and reads outputs, and a line can be "in use".

use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};

use super::{Driver, InputLine, OutputLine};
use crate::config::GpioLine;

#[derive(Clone)]
pub struct Chip {
    /// Each line's level (high = true), None for a line held elsewhere.
    levels: Arc<Mutex<Vec<Option<bool>>>>,
}

impl Chip {
    pub fn new(lines: usize) -> Self {
        Self {
            levels: Arc::new(Mutex::new(vec![Some(false); lines])),
        }
    }

    /// Another program holds `line`.
    pub fn take(&mut self, line: usize) {
        self.levels.lock().unwrap()[line] = None;
    }

    /// The level on `line` (what an LED sees).
    pub fn level(&self, line: usize) -> Option<bool> {
        self.levels.lock().unwrap()[line]
    }

    /// Drives an input `line` from outside (a button).
    pub fn drive(&self, line: usize, high: bool) {
        self.levels.lock().unwrap()[line] = Some(high);
    }

    fn claim(&self, line: GpioLine) -> Result<FakeLine> {
        let index = line.line as usize;
        match self.levels.lock().unwrap().get(index) {
            Some(Some(_)) => Ok(FakeLine {
                chip: self.clone(),
                index,
                active_low: line.active_low,
            }),
            Some(None) => bail!("line {index} is in use"),
            None => bail!("the chip has no line {index}"),
        }
    }
}

struct FakeLine {
    chip: Chip,
    index: usize,
    active_low: bool,
}

impl OutputLine for FakeLine {
    fn set(&mut self, active: bool) -> Result<()> {
        self.chip.drive(self.index, active != self.active_low);
        Ok(())
    }
}

impl InputLine for FakeLine {
    fn active(&mut self) -> Result<bool> {
        Ok(self.chip.level(self.index).unwrap_or(false) != self.active_low)
    }
}

impl Driver for Chip {
    fn name(&self) -> &'static str {
        "a fake chip"
    }

    fn output(&mut self, line: GpioLine) -> Result<Box<dyn OutputLine>> {
        Ok(Box::new(self.claim(line)?))
    }

    fn input(&mut self, line: GpioLine) -> Result<Box<dyn InputLine>> {
        Ok(Box::new(self.claim(line)?))
    }
}
