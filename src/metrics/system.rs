//! What the board is doing: this process's CPU and memory from /proc, the SoC
//! temperature from /sys/class/thermal, and the Raspberry Pi firmware's
//! throttling flags when the kernel exposes them.

use std::time::Instant;

use serde::Serialize;

/// CPU time this process has used, in seconds.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line, 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Resident memory of this process in bytes, read once for both figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResidentMemory {
    /// All of it.
    pub total: Option<u64>,
    /// The part the process allocated itself (heap and anonymous
    /// mappings): what a leak grows. The rest is code and data mapped from
    /// files, which enters the count the first time a path runs (a first
    /// camera loss in the VM test brought 2.7 MB of library and binary
    /// pages in).
    pub anonymous: Option<u64>,
}

pub fn process_resident_memory() -> ResidentMemory {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return ResidentMemory::default();
    };
    ResidentMemory {
        total: status_bytes(&status, "VmRSS:"),
        anonymous: status_bytes(&status, "RssAnon:"),
    }
}

/// A `kB` field of /proc/self/status, in bytes.
fn status_bytes(status: &str, field: &str) -> Option<u64> {
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// File descriptors this process holds open: a leak across camera
/// reconnects shows here first.
pub fn process_open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// The first thermal zone's temperature (the SoC on a Pi), in °C.
pub fn soc_temperature_c() -> Option<f64> {
    let text = std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp").ok()?;
    let millidegrees: f64 = text.trim().parse().ok()?;
    Some(millidegrees / 1000.0)
}

/// The Raspberry Pi firmware's `get_throttled` bits, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Throttling {
    pub raw: u32,
    pub under_voltage: bool,
    pub frequency_capped: bool,
    pub throttled: bool,
    pub soft_temperature_limit: bool,
    pub under_voltage_occurred: bool,
    pub frequency_capped_occurred: bool,
    pub throttled_occurred: bool,
    pub soft_temperature_limit_occurred: bool,
}

impl Throttling {
    pub fn from_bits(raw: u32) -> Self {
        let bit = |n: u32| raw & (1 << n) != 0;
        Self {
            raw,
            under_voltage: bit(0),
            frequency_capped: bit(1),
            throttled: bit(2),
            soft_temperature_limit: bit(3),
            under_voltage_occurred: bit(16),
            frequency_capped_occurred: bit(17),
            throttled_occurred: bit(18),
            soft_temperature_limit_occurred: bit(19),
        }
    }
}

/// Where Raspberry Pi kernels publish the firmware's throttling word.
const THROTTLED_PATH: &str = "/sys/devices/platform/soc/soc:firmware/get_throttled";

pub fn throttling() -> Option<Throttling> {
    let text = std::fs::read_to_string(THROTTLED_PATH).ok()?;
    let text = text.trim().trim_start_matches("0x");
    u32::from_str_radix(text, 16)
        .ok()
        .map(Throttling::from_bits)
}

/// CPU use between two readings, as a percentage of one core.
pub struct CpuMeter {
    last: Option<(Instant, f64)>,
}

impl CpuMeter {
    pub fn new() -> Self {
        Self {
            last: process_cpu_seconds().map(|cpu| (Instant::now(), cpu)),
        }
    }

    pub fn percent(&mut self) -> Option<f64> {
        let now = (Instant::now(), process_cpu_seconds()?);
        let previous = self.last.replace(now)?;
        let wall = now.0.duration_since(previous.0).as_secs_f64();
        (wall > 0.0).then(|| (now.1 - previous.1) / wall * 100.0)
    }
}

impl Default for CpuMeter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_bits_decode() {
        let t = Throttling::from_bits(0x50005);
        assert!(t.under_voltage && t.throttled && !t.frequency_capped);
        assert!(
            t.under_voltage_occurred && t.throttled_occurred && !t.soft_temperature_limit_occurred
        );
    }

    #[test]
    fn this_process_is_measurable() {
        let memory = process_resident_memory();
        assert!(memory.total.unwrap_or(0) > 1024 * 1024);
        assert!(memory.anonymous.unwrap_or(0) > 0);
        assert!(memory.anonymous <= memory.total);
        assert!(process_cpu_seconds().is_some());
    }
}
