//! When each row a time-bounded join holds expires (`time_bounded_join.rs`):
//! (expiry ms, slot) entries, handed back once the watermark reaches them.
//!
//! Why not one sorted list (or sorted runs merged as they come, the earlier
//! design): sorting and merging cost on every batch, while a watermark may
//! not reach the rows for a long time (in the Nexmark bench, never before
//! the end of input), and each merge copied every held entry into freshly
//! allocated memory again. Here entries are only appended; they are grouped
//! into *runs* of about [`RUN_ROWS`] entries that remember their least and
//! greatest expiry, kept in a min-heap by least expiry. A watermark visits
//! only the runs it reaches: a run it passes entirely is taken whole,
//! unsorted; a run it cuts is sorted then (once) and its expired prefix
//! taken. Each entry is thus moved a bounded number of times, and sorted
//! only if the watermark ever cuts its run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

use super::join_state::NIL;

/// Entries the open run collects before it joins the heap: large enough
/// that the heap stays small and the per-run overhead negligible, small
/// enough that sorting a cut run is cheap.
pub(super) const RUN_ROWS: usize = 4096;

/// Some entries, with the least and greatest expiry of those not yet taken.
#[derive(Debug, Default)]
struct Run {
    entries: Vec<(i64, u32)>,
    /// Entries before `taken` have been handed out.
    taken: usize,
    /// Whether `entries[taken..]` is in ascending expiry.
    sorted: bool,
    min: i64,
    max: i64,
}

impl Run {
    fn remaining(&self) -> &[(i64, u32)] {
        &self.entries[self.taken..]
    }

    fn is_empty(&self) -> bool {
        self.taken == self.entries.len()
    }

    /// Appends entries (they need not be in order).
    fn extend(&mut self, entries: &[(i64, u32)]) {
        let Some(&(first, _)) = entries.first() else {
            return;
        };
        if self.is_empty() {
            self.entries.clear();
            self.taken = 0;
            self.sorted = true;
            (self.min, self.max) = (first, first);
        }
        let mut previous = self.entries.last().map_or(first, |e| e.0);
        for &(expiry, _) in entries {
            self.sorted &= previous <= expiry;
            previous = expiry;
            self.min = self.min.min(expiry);
            self.max = self.max.max(expiry);
        }
        self.entries.extend_from_slice(entries);
    }

    /// Recomputes `min`, `max` and `sorted` from the remaining entries.
    fn refresh(&mut self) {
        let remaining = self.remaining();
        let mut sorted = true;
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for (i, &(expiry, _)) in remaining.iter().enumerate() {
            sorted &= i == 0 || remaining[i - 1].0 <= expiry;
            min = min.min(expiry);
            max = max.max(expiry);
        }
        (self.sorted, self.min, self.max) = (sorted, min, max);
    }

    /// Appends the slots of the entries expired at `watermark` (expiry <=
    /// watermark) to `out`; the run's `min` must be <= `watermark`.
    fn take(&mut self, watermark: i64, out: &mut Vec<u32>) {
        let end = if self.max <= watermark {
            self.entries.len()
        } else {
            if !self.sorted {
                self.entries[self.taken..].sort_unstable_by_key(|e| e.0);
                self.sorted = true;
            }
            self.taken + self.remaining().partition_point(|e| e.0 <= watermark)
        };
        out.extend(self.entries[self.taken..end].iter().map(|e| e.1));
        self.taken = end;
        if self.is_empty() {
            return;
        }
        // Don't hold a long taken prefix: drop it once it is the larger part.
        if self.taken > self.entries.len() / 2 {
            self.entries.drain(..self.taken);
            self.taken = 0;
        }
        self.min = self.entries[self.taken].0;
    }

    /// Renumbers the remaining entries' slots (`moved[old]`, `NIL`: freed,
    /// dropped).
    fn renumber(&mut self, moved: &[u32]) {
        self.entries.drain(..self.taken);
        self.taken = 0;
        for entry in &mut self.entries {
            entry.1 = moved[entry.1 as usize];
        }
        self.entries.retain(|entry| entry.1 != NIL);
        self.refresh();
    }
}

/// A min-heap by least remaining expiry (ties in any order).
impl Ord for Run {
    fn cmp(&self, other: &Self) -> Ordering {
        other.min.cmp(&self.min)
    }
}

impl PartialOrd for Run {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Run {
    fn eq(&self, other: &Self) -> bool {
        self.min == other.min
    }
}

impl Eq for Run {}

/// The held rows' expiries (see the module docs).
#[derive(Debug, Default)]
pub(super) struct ExpiryQueue {
    /// Full runs, by least remaining expiry.
    sealed: BinaryHeap<Run>,
    /// The run new entries are appended to.
    open: Run,
}

impl ExpiryQueue {
    /// Adds (expiry ms, slot) entries, in any order.
    pub fn push(&mut self, entries: &[(i64, u32)]) {
        self.open.extend(entries);
        if self.open.remaining().len() >= RUN_ROWS {
            self.seal();
        }
    }

    /// Moves the open run to the heap.
    fn seal(&mut self) {
        // The next run is about as large: allocate it once, not by doubling.
        let capacity = self.open.entries.len();
        let run = std::mem::take(&mut self.open);
        if !run.is_empty() {
            self.sealed.push(run);
            self.open.entries.reserve_exact(capacity);
        }
    }

    /// Removes the entries expired at `watermark` (expiry <= watermark) and
    /// returns their slots, in no set order.
    pub fn take_expired(&mut self, watermark: i64) -> Vec<u32> {
        let mut out = Vec::new();
        if !self.open.is_empty() && self.open.min <= watermark {
            self.seal();
        }
        while let Some(mut run) = self.sealed.peek_mut() {
            if run.min > watermark {
                break;
            }
            run.take(watermark, &mut out);
            if run.is_empty() {
                PeekMut::pop(run);
            }
            // Otherwise dropping `run` restores the heap order (its `min`
            // grew).
        }
        out
    }

    /// Renumbers the slots after the rows moved (`moved[old]` is the new
    /// slot, `NIL`: freed; its entry is dropped).
    pub fn renumber(&mut self, moved: &[u32]) {
        let mut runs = std::mem::take(&mut self.sealed).into_vec();
        for run in &mut runs {
            run.renumber(moved);
        }
        runs.retain(|run| !run.is_empty());
        self.sealed = runs.into();
        self.open.renumber(moved);
    }

    /// Runs held (sealed and the open one if not empty).
    #[cfg(test)]
    pub fn runs(&self) -> usize {
        self.sealed.len() + usize::from(!self.open.is_empty())
    }

    /// Entries held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sealed
            .iter()
            .chain([&self.open])
            .map(|r| r.remaining().len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut slots: Vec<u32>) -> Vec<u32> {
        slots.sort_unstable();
        slots
    }

    #[test]
    fn entries_leave_when_the_watermark_reaches_them_in_any_arrival_order() {
        let mut q = ExpiryQueue::default();
        q.push(&[(30, 0), (10, 1), (20, 2)]);
        q.push(&[(15, 3), (5, 4)]);
        assert_eq!(q.take_expired(4), Vec::<u32>::new());
        assert_eq!(sorted(q.take_expired(15)), [1, 3, 4]);
        assert_eq!(q.take_expired(15), Vec::<u32>::new());
        q.push(&[(16, 5)]);
        assert_eq!(sorted(q.take_expired(25)), [2, 5]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.take_expired(i64::MAX), [0]);
        assert_eq!(q.runs(), 0);
    }

    #[test]
    fn many_runs_are_cut_and_taken_whole_exactly_once() {
        let mut q = ExpiryQueue::default();
        // 40 batches of 1,000 entries, expiries descending within a batch
        // and overlapping across batches.
        let mut slot = 0u32;
        for b in 0..40i64 {
            let batch: Vec<(i64, u32)> = (0..1_000i64)
                .map(|i| {
                    slot += 1;
                    (b * 500 + (999 - i), slot - 1)
                })
                .collect();
            q.push(&batch);
        }
        assert!(q.runs() <= 40_000 / RUN_ROWS + 1, "runs: {}", q.runs());
        let mut seen = vec![false; slot as usize];
        let expiry = |s: u32| (s / 1_000) as i64 * 500 + (999 - (s % 1_000)) as i64;
        for watermark in (0..21_000).step_by(777).chain([i64::MAX]) {
            for s in q.take_expired(watermark) {
                assert!(expiry(s) <= watermark, "slot {s} early at {watermark}");
                assert!(!seen[s as usize], "slot {s} twice");
                seen[s as usize] = true;
            }
            // Everything at or before the watermark is gone.
            assert!(
                (0..slot).all(|s| seen[s as usize] || expiry(s) > watermark),
                "left behind at {watermark}"
            );
        }
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn renumbering_drops_freed_slots_and_keeps_the_rest() {
        let mut q = ExpiryQueue::default();
        let entries: Vec<(i64, u32)> = (0..10_000u32).map(|s| (i64::from(s % 100), s)).collect();
        q.push(&entries);
        assert_eq!(q.take_expired(9).len(), 1_000);
        // Keep the odd slots, renumbered s / 2.
        let moved: Vec<u32> = (0..10_000u32)
            .map(|s| if s % 2 == 1 { s / 2 } else { NIL })
            .collect();
        q.renumber(&moved);
        assert_eq!(q.len(), 4_500);
        let taken = sorted(q.take_expired(19));
        assert_eq!(taken.len(), 500);
        assert!(taken.iter().all(|s| (s * 2 + 1) % 100 / 10 == 1));
    }
}
