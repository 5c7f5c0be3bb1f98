//! Back-off between retries: a pause that doubles after each failure, from
//! a floor to a ceiling, and starts over after a success. Used wherever the
//! node tries something again later (a busy source, an index outage, a DHT
//! announcement that timed out).

use std::time::Duration;

/// The pause before the next retry.
#[derive(Debug, Clone)]
pub struct Backoff {
    floor: Duration,
    ceiling: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `floor`, doubling up to `ceiling`.
    pub fn new(floor: Duration, ceiling: Duration) -> Self {
        Self {
            floor,
            ceiling: ceiling.max(floor),
            next: floor,
        }
    }

    /// The pause to wait now; the one after it is twice as long (up to the ceiling).
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.ceiling);
        pause
    }

    /// The pause [`Backoff::next_pause`] would return, without moving on.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// After a success: the next failure waits the floor again.
    pub fn reset(&mut self) {
        self.next = self.floor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_ceiling_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(30));
        let pauses: Vec<u64> = (0..5).map(|_| b.next_pause().as_secs()).collect();
        assert_eq!(pauses, [5, 10, 20, 30, 30]);
        b.reset();
        assert_eq!(b.peek(), Duration::from_secs(5));
    }
}
