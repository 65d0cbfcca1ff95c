//! Fault injection: make the test source stop delivering frames, stall its
//! streaming thread, or raise an error, on command — so the camera-loss path
//! (slate, retries, recovery) runs on any machine — or wedge the encoder, the
//! failure only a restart cures (systemd's watchdog), or make reopening it
//! hang (the event loop must not wait for it). Enabled only with
//! `[camera] fault_injection = true`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gst::prelude::*;

/// What the source does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Frames are produced but never delivered (a camera that goes quiet).
    Stop,
    /// The streaming thread blocks (a driver that hangs).
    Stall,
    /// The source posts an error (a camera unplugged mid-read).
    Error,
    /// The encoder stops taking frames (a hung hardware encoder): nothing
    /// reaches the outputs, not even the slate, so the process stops feeding
    /// systemd's watchdog.
    Wedge,
    /// The source stops delivering and opening it again hangs until the
    /// fault ends (a USB camera whose driver wedged in `open`).
    Hang,
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "stop" => Ok(FaultKind::Stop),
            "stall" => Ok(FaultKind::Stall),
            "error" => Ok(FaultKind::Error),
            "wedge" => Ok(FaultKind::Wedge),
            "hang" => Ok(FaultKind::Hang),
            other => Err(format!(
                "unknown fault {other:?}: use stop, stall, error, wedge or hang"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    kind: FaultKind,
    until: Instant,
    /// An error is raised once per injection.
    raised: bool,
}

/// Shared between the control plane (which injects) and every test source
/// built for the camera (which obey), so a fault outlives a source rebuild.
#[derive(Clone, Default)]
pub struct FaultInjector {
    fault: Arc<Mutex<Option<Fault>>>,
}

impl FaultInjector {
    pub fn inject(&self, kind: FaultKind, duration: Duration) {
        if let Ok(mut fault) = self.fault.lock() {
            *fault = Some(Fault {
                kind,
                until: Instant::now() + duration,
                raised: false,
            });
        }
        tracing::warn!("fault injected: {kind:?} for {duration:?}");
    }

    /// The fault in force now, if any; marks an error as raised.
    fn take_current(&self) -> Option<FaultKind> {
        let mut fault = self.fault.lock().ok()?;
        let current = (*fault)?;
        if Instant::now() >= current.until {
            *fault = None;
            return None;
        }
        if current.kind == FaultKind::Error {
            if current.raised {
                // After the error the source is dead until rebuilt; a rebuilt
                // one keeps failing quietly until the fault ends.
                return Some(FaultKind::Stop);
            }
            *fault = Some(Fault {
                raised: true,
                ..current
            });
        }
        Some(current.kind)
    }

    /// Whether a wedge is in force. Unlike `take_current` it changes
    /// nothing, so the encoder's look cannot use up an injected error
    /// before the source raises it.
    fn wedged(&self) -> bool {
        self.fault
            .lock()
            .ok()
            .and_then(|fault| *fault)
            .is_some_and(|fault| fault.kind == FaultKind::Wedge && Instant::now() < fault.until)
    }

    /// Blocks while a hang is in force: called where a source opens.
    pub fn hang_while_opening(&self) {
        let hung = || {
            self.fault
                .lock()
                .ok()
                .and_then(|fault| *fault)
                .is_some_and(|fault| fault.kind == FaultKind::Hang && Instant::now() < fault.until)
        };
        if hung() {
            tracing::warn!("fault: opening the source hangs");
        }
        while hung() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes `element`'s src pad obey injected faults.
    pub fn watch(&self, element: &gst::Element) -> Result<()> {
        let pad = element
            .static_pad("src")
            .context("fault injection needs a src pad")?;
        let injector = self.clone();
        let weak = element.downgrade();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            match injector.take_current() {
                None | Some(FaultKind::Wedge) => gst::PadProbeReturn::Ok,
                Some(FaultKind::Stop | FaultKind::Hang) => gst::PadProbeReturn::Drop,
                Some(FaultKind::Stall) => {
                    std::thread::sleep(Duration::from_millis(200));
                    gst::PadProbeReturn::Drop
                }
                Some(FaultKind::Error) => {
                    if let Some(element) = weak.upgrade() {
                        gst::element_error!(
                            element,
                            gst::ResourceError::Read,
                            ["injected fault: the camera failed"]
                        );
                    }
                    gst::PadProbeReturn::Drop
                }
            }
        });
        Ok(())
    }

    /// Makes the streaming thread that feeds the encoder through `pad` hang
    /// while a wedge is in force. It lets go when the pad flushes, so the
    /// pipeline can still be stopped.
    pub fn watch_encoder_input(&self, pad: &gst::Pad) {
        let injector = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
            while injector.wedged() && !pad.pad_flags().contains(gst::PadFlags::FLUSHING) {
                std::thread::sleep(Duration::from_millis(50));
            }
            gst::PadProbeReturn::Ok
        });
    }
}
