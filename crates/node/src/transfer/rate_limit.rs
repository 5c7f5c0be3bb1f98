//! A byte rate shared by every transfer in one direction (all uploads, or
//! all downloads), changeable while they run.
//!
//! It paces: each chunk reserves its time slot and the caller sleeps until
//! the slot starts, so many transfers together never exceed the rate. It
//! never buffers bytes and never fails; with no limit it returns at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Paces every transfer of one direction together to a byte rate.
pub struct RateLimit {
    /// Bytes per second; 0 means no limit.
    bytes_per_sec: AtomicU64,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimit {
    /// A limit of `bytes_per_sec` (none when `None`).
    pub fn new(bytes_per_sec: Option<u64>) -> Self {
        Self {
            bytes_per_sec: AtomicU64::new(bytes_per_sec.unwrap_or(0)),
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// The limit in force, if any.
    pub fn get(&self) -> Option<u64> {
        Some(self.bytes_per_sec.load(Ordering::Relaxed)).filter(|r| *r > 0)
    }

    /// Changes the limit for every transfer, at once.
    pub fn set(&self, bytes_per_sec: Option<u64>) {
        self.bytes_per_sec
            .store(bytes_per_sec.unwrap_or(0), Ordering::Relaxed);
    }

    /// Waits until `bytes` more may move.
    pub async fn pace(&self, bytes: usize) {
        let rate = self.bytes_per_sec.load(Ordering::Relaxed);
        if rate == 0 {
            return;
        }
        let wait_until = {
            let mut next = self.next.lock().await;
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
            start
        };
        tokio::time::sleep_until(wait_until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn chunks_are_paced_to_the_rate_and_a_change_applies_at_once() {
        let limit = RateLimit::new(Some(1000));
        let start = tokio::time::Instant::now();
        for _ in 0..4 {
            limit.pace(500).await;
        }
        // Four chunks of 500 B at 1000 B/s: the fourth starts after 1.5 s.
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
        limit.set(None);
        let unlimited = tokio::time::Instant::now();
        limit.pace(1 << 30).await;
        assert_eq!(unlimited.elapsed(), Duration::ZERO);
        assert_eq!(limit.get(), None);
    }
}
