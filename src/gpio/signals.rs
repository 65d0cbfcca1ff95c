//! What the lines say, as pure functions of time: the status LED's
//! patterns and the button's debounced presses. No clock is read here.

use std::time::{Duration, Instant};

/// What the status LED shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No frame has reached the outputs yet: a slow blink (1 Hz).
    Starting,
    /// Frames flow: steadily on.
    Streaming,
    /// The camera is gone and the slate is shown: a fast blink (5 Hz).
    CameraLost,
    /// Frames have stopped altogether: a double blink once a second.
    Stalled,
}

/// Whether the LED is lit `into` a pattern (time since it began).
pub fn lit(status: Status, into: Duration) -> bool {
    let ms = into.as_millis();
    match status {
        Status::Streaming => true,
        Status::Starting => ms % 1000 < 500,
        Status::CameraLost => ms % 200 < 100,
        Status::Stalled => matches!(ms % 1000, 0..100 | 200..300),
    }
}

/// A level must hold this long to count: contacts bounce for a few ms.
pub const DEBOUNCE: Duration = Duration::from_millis(30);
/// Held this long, a press is a hold.
pub const HOLD: Duration = Duration::from_secs(3);

/// What a press of the button means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// Pressed and released within [`HOLD`]: reported at the release.
    Short,
    /// Held for [`HOLD`]: reported then, once (the release says nothing).
    Hold,
}

/// Turns samples of the button's line into presses.
#[derive(Debug)]
pub struct Button {
    /// The debounced state.
    pressed: bool,
    /// A level seen that differs from it, and since when.
    changing: Option<(bool, Instant)>,
    /// When the current press began, and whether it became a hold.
    press: Option<(Instant, bool)>,
}

impl Button {
    /// A button first sampled `active`: a button held at start is not a
    /// press until it has been released.
    pub fn new(active: bool) -> Self {
        Self {
            pressed: active,
            changing: None,
            press: None,
        }
    }

    /// A sample of the line at `now`.
    pub fn sample(&mut self, active: bool, now: Instant) -> Option<Press> {
        if active == self.pressed {
            self.changing = None;
        } else {
            match self.changing {
                Some((level, since)) if level == active => {
                    if now.saturating_duration_since(since) >= DEBOUNCE {
                        self.changing = None;
                        self.pressed = active;
                        return self.settled(since, now);
                    }
                }
                _ => self.changing = Some((active, now)),
            }
        }
        self.check_hold(now)
    }

    /// The debounced state changed at `at`.
    fn settled(&mut self, at: Instant, now: Instant) -> Option<Press> {
        if self.pressed {
            self.press = Some((at, false));
            return self.check_hold(now);
        }
        match self.press.take() {
            Some((_, false)) => Some(Press::Short),
            _ => None,
        }
    }

    fn check_hold(&mut self, now: Instant) -> Option<Press> {
        match &mut self.press {
            Some((since, held)) if self.pressed && !*held && now - *since >= HOLD => {
                *held = true;
                Some(Press::Hold)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pattern(status: Status) -> String {
        (0..10)
            .map(|tenth| {
                if lit(status, tenth * 100 * MS) {
                    '#'
                } else {
                    '.'
                }
            })
            .collect()
    }

    #[test]
    fn patterns_over_a_second() {
        assert_eq!(pattern(Status::Streaming), "##########");
        assert_eq!(pattern(Status::Starting), "#####.....");
        assert_eq!(pattern(Status::CameraLost), "#.#.#.#.#.");
        assert_eq!(pattern(Status::Stalled), "#.#.......");
    }

    /// Feeds `levels` (one per 10 ms) and returns the presses with the ms
    /// they came at.
    fn feed(button: &mut Button, start: Instant, levels: &[(bool, u64)]) -> Vec<(u64, Press)> {
        let mut at: u32 = 0;
        let mut presses = Vec::new();
        for &(level, ms) in levels {
            for _ in 0..ms / 10 {
                at += 10;
                if let Some(press) = button.sample(level, start + at * MS) {
                    presses.push((u64::from(at), press));
                }
            }
        }
        presses
    }

    #[test]
    fn a_short_press_is_reported_at_its_release() {
        let start = Instant::now();
        let mut button = Button::new(false);
        let presses = feed(
            &mut button,
            start,
            &[(false, 100), (true, 200), (false, 100)],
        );
        assert_eq!(presses, [(340, Press::Short)]);
    }

    #[test]
    fn bounces_shorter_than_the_debounce_are_ignored() {
        let start = Instant::now();
        let mut button = Button::new(false);
        let bouncy = [(true, 10), (false, 10), (true, 20), (false, 100)];
        assert!(feed(&mut button, start, &bouncy).is_empty());
    }

    #[test]
    fn a_hold_is_reported_once_at_three_seconds_and_not_at_release() {
        let start = Instant::now();
        let mut button = Button::new(false);
        let presses = feed(&mut button, start, &[(true, 5000), (false, 100)]);
        assert_eq!(presses, [(3010, Press::Hold)]);
    }

    #[test]
    fn a_button_held_at_start_is_not_a_press() {
        let start = Instant::now();
        let mut button = Button::new(true);
        let presses = feed(&mut button, start, &[(true, 4000), (false, 100)]);
        assert!(presses.is_empty(), "{presses:?}");
    }
}
