//! Idle state retention, `table.exec.state.ttl` (Flink's key and rule):
//! state that has not been written for the TTL is dropped, so the state of
//! a regular join or an updating `GROUP BY` over an unbounded input stays
//! bounded by the rows (keys) written in the last TTL.
//!
//! Time is processing time, as in Flink: milliseconds of the operator's own
//! clock, not event time, so it advances with the wall clock whether or not
//! rows carry timestamps. An entry written at `t` is expired from `t + ttl`
//! on (Flink's `TtlUtils.expired`), and an expired entry is never read: the
//! operators check it on every access. Memory is reclaimed by a sweep at
//! most once per TTL (amortized over the batches), as Flink cleans up
//! incrementally rather than at the exact instant.
//!
//! Operators take the time as an argument, so unit tests drive expiry with
//! made-up times; only the running task reads [`Clock`].

use std::time::Instant;

/// The TTL of one operator instance and when it next sweeps.
#[derive(Debug, Clone, Copy)]
pub(super) struct StateTtl {
    ttl_ms: u64,
    next_sweep_ms: u64,
}

impl StateTtl {
    /// A TTL of `ttl_ms` (≥ 1 ms).
    pub fn new(ttl_ms: u64) -> Self {
        let ttl_ms = ttl_ms.max(1);
        Self {
            ttl_ms,
            next_sweep_ms: ttl_ms,
        }
    }

    /// Whether an entry last written at `written_ms` is gone at `now_ms`.
    pub fn expired(&self, written_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(written_ms) >= self.ttl_ms
    }

    /// Whether it is time to sweep expired entries out of memory (at most
    /// once per TTL); if so, the next sweep is a TTL later.
    pub fn sweep_due(&mut self, now_ms: u64) -> bool {
        if now_ms < self.next_sweep_ms {
            return false;
        }
        self.next_sweep_ms = now_ms.saturating_add(self.ttl_ms);
        true
    }
}

/// An operator instance's processing-time clock: ms since it started.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock(Instant);

impl Clock {
    /// A clock that reads 0 now.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Milliseconds since [`Clock::start`].
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_expires_a_ttl_after_its_last_write() {
        let ttl = StateTtl::new(100);
        assert!(!ttl.expired(50, 50));
        assert!(!ttl.expired(50, 149));
        assert!(ttl.expired(50, 150));
        // A clock read before the write (another instance's time) is not expiry.
        assert!(!ttl.expired(50, 10));
    }

    #[test]
    fn sweeps_come_at_most_once_per_ttl() {
        let mut ttl = StateTtl::new(100);
        assert!(!ttl.sweep_due(99));
        assert!(ttl.sweep_due(100));
        assert!(!ttl.sweep_due(150));
        assert!(ttl.sweep_due(200));
        assert!(StateTtl::new(0).expired(0, 1), "a TTL is at least 1 ms");
    }
}
