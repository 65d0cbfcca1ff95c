//! What systemd is told, through `sd_notify`: `READY=1` once the first frame
//! has reached the outputs, `WATCHDOG=1` only while frames keep reaching them
//! (see `watchdog`), a one-line `STATUS=`, `RELOADING=1` … `READY=1` around a
//! configuration reload, `STOPPING=1` on the way out and
//! `EXTEND_TIMEOUT_USEC=` while a slow camera opens. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call here does nothing.

pub mod watchdog;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// Whether a service manager listens (systemd sets `NOTIFY_SOCKET` for
/// `Type=notify` units).
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends `states` in one datagram. A failure is logged, never fatal: systemd
/// itself notices a service that stops talking (start timeout, watchdog).
fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        let sent: Vec<String> = states.iter().map(ToString::to_string).collect();
        tracing::warn!("telling systemd {} failed: {err}", sent.join(" "));
    }
}

/// Whether READY=1 went out: the start timeout and reloads depend on it.
static READY: AtomicBool = AtomicBool::new(false);

/// While starting, asks for `by` more time from now, saying why: a USB
/// camera can take seconds to open and deliver its first frame. Once
/// running it does nothing (a camera reopened by recovery is no start).
pub fn extend_timeout(by: Duration, doing: &str) {
    if READY.load(Ordering::Relaxed) {
        return;
    }
    let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
    send(&[
        NotifyState::ExtendTimeoutUsec(usec),
        NotifyState::Status(doing),
    ]);
}

/// The service is up: called once frames reach the outputs, and again when
/// a reload is over.
pub fn ready(status: &str) {
    READY.store(true, Ordering::Relaxed);
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A configuration reload starts; `ready` ends it. Before the service is
/// ready there is nothing to tell (READY=1 must wait for the first frame):
/// returns whether it told.
pub fn reloading(why: &str) -> bool {
    if !READY.load(Ordering::Relaxed) {
        return false;
    }
    send(&[
        NotifyState::Reloading,
        NotifyState::Status(&format!("reloading the configuration ({why})")),
    ]);
    true
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

pub fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}
