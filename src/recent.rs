//! What a warm instance remembers of the messages it published for each batch, so that a
//! retried event (Lambda retries an invocation that failed) does not send them twice.
//!
//! A retried batch sends again every message it claimed (its claims are recorded with it, in
//! memory or in the shared table), because a message whose publishing failed must not be
//! lost; this memory removes the ones that did go out when the retry lands on the same
//! instance. A retry on another instance may send them again: a duplicate beats a miss.
//! Bounded: entries expire, and past a cap on batches or on messages remembered the oldest
//! batches are dropped. A message is remembered by a 64-bit hash of its key, not the key: a
//! digest covers thousands of claims, and an object of 83,000 sources would otherwise keep
//! megabytes of ids for six hours.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// Batches remembered, at most.
pub const MAX_BATCHES: usize = 1_000;
/// Messages remembered, at most, over all batches (about 16 bytes each).
pub const MAX_MESSAGES: usize = 500_000;
/// How long a batch is remembered: CloudWatch Logs events are retried by Lambda for up to six
/// hours (the maximum event age).
pub const BATCH_MEMORY: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Default)]
pub struct DeliveredMessages {
    batches: HashMap<u64, BatchEntry>,
    /// Messages remembered, over all batches.
    messages: usize,
}

#[derive(Debug)]
struct BatchEntry {
    first_seen: Instant,
    sent: HashSet<u64>,
}

/// What a message is remembered by. Two keys of one batch share a hash about once in 4 * 10^9
/// batches of 100,000 messages; a retry would then leave out one of them.
fn hashed(key: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

impl DeliveredMessages {
    /// Whether anything went out for the batch `fingerprint` (it is a retry on this instance).
    pub fn knows(&self, fingerprint: Option<u64>) -> bool {
        fingerprint.is_some_and(|f| self.batches.contains_key(&f))
    }

    /// Whether the message `key` was already published for the batch `fingerprint`.
    pub fn already_sent(&self, fingerprint: Option<u64>, key: &str) -> bool {
        fingerprint
            .and_then(|f| self.batches.get(&f))
            .is_some_and(|b| b.sent.contains(&hashed(key)))
    }

    /// Records that the message `key` was published for the batch `fingerprint`. Past
    /// [`MAX_MESSAGES`] for this batch alone, it is not recorded: a retry sends it again.
    pub fn sent(&mut self, fingerprint: Option<u64>, key: &str, now: Instant) {
        let Some(f) = fingerprint else {
            return;
        };
        let new_batch = !self.batches.contains_key(&f);
        if (new_batch && self.batches.len() >= MAX_BATCHES) || self.messages >= MAX_MESSAGES {
            self.make_room(now, f);
            if self.messages >= MAX_MESSAGES {
                return;
            }
        }
        let batch = self.batches.entry(f).or_insert_with(|| BatchEntry {
            first_seen: now,
            sent: HashSet::new(),
        });
        if batch.sent.insert(hashed(key)) {
            self.messages += 1;
        }
    }

    /// How many batches are remembered.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// How many messages are remembered, over all batches.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Brings the map under its caps, keeping the batch `keep`: drops what is older than
    /// [`BATCH_MEMORY`] and, if that is not enough, the oldest batches until a tenth of each
    /// cap is free, so that a full map is not sorted on every insert.
    fn make_room(&mut self, now: Instant, keep: u64) {
        self.batches
            .retain(|_, b| now.saturating_duration_since(b.first_seen) < BATCH_MEMORY);
        self.messages = self.batches.values().map(|b| b.sent.len()).sum();
        let over = |batches: usize, messages: usize| {
            batches >= MAX_BATCHES - MAX_BATCHES / 10 || messages > MAX_MESSAGES - MAX_MESSAGES / 10
        };
        if !over(self.batches.len(), self.messages) {
            return;
        }
        let mut oldest: Vec<(Instant, u64)> = self
            .batches
            .iter()
            .filter(|(&f, _)| f != keep)
            .map(|(&f, b)| (b.first_seen, f))
            .collect();
        oldest.sort_unstable();
        for (_, f) in oldest {
            if !over(self.batches.len(), self.messages) {
                break;
            }
            if let Some(dropped) = self.batches.remove(&f) {
                self.messages -= dropped.sent.len();
            }
        }
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

    #[test]
    fn digests_of_many_claims_keep_the_memory_under_its_cap() {
        // Objects of 83,000 sources, each claim covered by a digest, retried or not.
        let mut delivered = DeliveredMessages::default();
        let t0 = Instant::now();
        let claims = 83_000;
        for object in 0..20u64 {
            for c in 0..claims {
                delivered.sent(Some(object), &format!("10.{object}.{c}@1/high"), t0);
            }
            assert!(
                delivered.messages() <= MAX_MESSAGES,
                "{}",
                delivered.messages()
            );
            // The object just published is remembered whole, whatever came before it.
            assert!((0..claims)
                .all(|c| delivered.already_sent(Some(object), &format!("10.{object}.{c}@1/high"))));
            assert!(!delivered.already_sent(Some(object), "10.0.0.1@1/medium"));
        }
        // The oldest objects made room; a retry of one sends its messages again.
        assert!(!delivered.knows(Some(0)));
        assert!(delivered.knows(Some(19)));
        // One batch larger than the cap keeps what fits; the rest would be sent again.
        let mut huge = DeliveredMessages::default();
        for c in 0..MAX_MESSAGES + 10 {
            huge.sent(Some(1), &c.to_string(), t0);
        }
        assert_eq!(huge.messages(), MAX_MESSAGES);
        assert!(huge.already_sent(Some(1), "0"));
        assert!(!huge.already_sent(Some(1), &(MAX_MESSAGES + 5).to_string()));
    }
}
