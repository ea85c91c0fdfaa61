//! What a warm instance remembers of the messages it published for each batch, so that a
//! retried event (Lambda retries an invocation that failed) does not send them twice.
//!
//! A retried batch sends again every message it claimed (its claims are recorded with it, in
//! memory or in the shared table), because a message whose publishing failed must not be
//! lost; this memory removes the ones that did go out when the retry lands on the same
//! instance. A retry on another instance may send them again: a duplicate beats a miss.
//! Bounded: entries expire, and the map has a cap beyond which the oldest are dropped.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Batches remembered, at most.
pub const MAX_BATCHES: usize = 1_000;
/// How long a batch is remembered: CloudWatch Logs events are retried by Lambda for up to six
/// hours (the maximum event age).
pub const BATCH_MEMORY: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Default)]
pub struct DeliveredMessages {
    batches: HashMap<u64, BatchEntry>,
}

#[derive(Debug)]
struct BatchEntry {
    first_seen: Instant,
    sent: HashSet<String>,
}

impl DeliveredMessages {
    /// Whether the message `key` was already published for the batch `fingerprint`.
    /// Whether anything went out for the batch `fingerprint` (it is a retry on this instance).
    pub fn knows(&self, fingerprint: Option<u64>) -> bool {
        fingerprint.is_some_and(|f| self.batches.contains_key(&f))
    }

    pub fn already_sent(&self, fingerprint: Option<u64>, key: &str) -> bool {
        fingerprint
            .and_then(|f| self.batches.get(&f))
            .is_some_and(|b| b.sent.contains(key))
    }

    /// Records that the message `key` was published for the batch `fingerprint`.
    pub fn sent(&mut self, fingerprint: Option<u64>, key: &str, now: Instant) {
        let Some(f) = fingerprint else {
            return;
        };
        if !self.batches.contains_key(&f) {
            self.make_room(now);
        }
        self.batches
            .entry(f)
            .or_insert_with(|| BatchEntry {
                first_seen: now,
                sent: HashSet::new(),
            })
            .sent
            .insert(key.to_owned());
    }

    /// How many batches are remembered.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Keeps the map under its cap: drops what is older than [`BATCH_MEMORY`] and, if that is
    /// not enough, the oldest tenth, so that a full map is not scanned on every insert.
    fn make_room(&mut self, now: Instant) {
        if self.batches.len() < MAX_BATCHES {
            return;
        }
        self.batches
            .retain(|_, b| now.saturating_duration_since(b.first_seen) < BATCH_MEMORY);
        if self.batches.len() < MAX_BATCHES {
            return;
        }
        let mut times: Vec<Instant> = self.batches.values().map(|b| b.first_seen).collect();
        let cut = self.batches.len() - MAX_BATCHES + MAX_BATCHES / 10;
        let (_, &mut threshold, _) = times.select_nth_unstable(cut);
        self.batches.retain(|_, b| b.first_seen >= threshold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_remembers_what_it_sent() {
        let mut delivered = DeliveredMessages::default();
        delivered.sent(Some(7), "10.0.0.1@5/high", Instant::now());
        assert!(delivered.already_sent(Some(7), "10.0.0.1@5/high"));
        assert!(!delivered.already_sent(Some(7), "10.0.0.2@5/high"));
        assert!(!delivered.already_sent(Some(8), "10.0.0.1@5/high"));
        assert!(!delivered.already_sent(None, "10.0.0.1@5/high"));
    }

    #[test]
    fn memory_stays_bounded_whatever_the_traffic() {
        let mut delivered = DeliveredMessages::default();
        let t0 = Instant::now();
        for i in 0..(MAX_BATCHES as u64 * 3) {
            delivered.sent(Some(i), "m", t0 + Duration::from_millis(i));
        }
        assert!(delivered.len() <= MAX_BATCHES, "{}", delivered.len());
        assert!(delivered.already_sent(Some(MAX_BATCHES as u64 * 3 - 1), "m"));
    }
}
