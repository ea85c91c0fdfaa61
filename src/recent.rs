//! What a warm instance remembers between invocations: alerts it sent recently (for the
//! cooldown) and the messages it already published for each batch (so a retried event does
//! not send them twice).
//!
//! This is per instance and best effort: a new instance starts with an empty memory, and
//! concurrent instances do not share it. Memory stays bounded: entries expire, and each map
//! has a cap beyond which the oldest entries are dropped.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Sources remembered for the cooldown, at most.
pub const MAX_SOURCES: usize = 10_000;
/// Batches remembered for deduplication, at most.
pub const MAX_BATCHES: usize = 1_000;
/// How long a batch is remembered: CloudWatch Logs events are retried by Lambda for up to six
/// hours (the maximum event age).
pub const BATCH_MEMORY: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug)]
pub struct RecentAlerts {
    cooldown: Duration,
    sources: HashMap<String, SourceEntry>,
    batches: HashMap<u64, BatchEntry>,
}

#[derive(Debug)]
struct SourceEntry {
    last_sent: Instant,
    held_back: u64,
}

#[derive(Debug)]
struct BatchEntry {
    first_seen: Instant,
    sent: HashSet<String>,
}

impl RecentAlerts {
    /// `cooldown` zero turns the cooldown off; deduplication of retried batches stays on.
    pub fn new(cooldown: Duration) -> RecentAlerts {
        RecentAlerts {
            cooldown,
            sources: HashMap::new(),
            batches: HashMap::new(),
        }
    }

    /// Whether the message `key` was already published for the batch `fingerprint`.
    pub fn already_sent(&self, fingerprint: Option<u64>, key: &str) -> bool {
        fingerprint
            .and_then(|f| self.batches.get(&f))
            .is_some_and(|b| b.sent.contains(key))
    }

    /// Whether an alert for `key` must be held back now; if so, it is counted against the
    /// source, to be mentioned in its next alert.
    pub fn hold_back(&mut self, key: &str, now: Instant) -> bool {
        if self.cooldown.is_zero() {
            return false;
        }
        match self.sources.get_mut(key) {
            Some(e) if now.saturating_duration_since(e.last_sent) < self.cooldown => {
                e.held_back += 1;
                true
            }
            _ => false,
        }
    }

    /// How many alerts for `key` were held back since the last one sent.
    pub fn held_back(&self, key: &str) -> u64 {
        self.sources.get(key).map_or(0, |e| e.held_back)
    }

    /// Records that a message about `covers` was published for the batch `fingerprint`.
    pub fn sent(
        &mut self,
        fingerprint: Option<u64>,
        message_key: &str,
        covers: &[String],
        now: Instant,
    ) {
        if let Some(f) = fingerprint {
            make_room(&mut self.batches, MAX_BATCHES, BATCH_MEMORY, now, |b| {
                b.first_seen
            });
            self.batches
                .entry(f)
                .or_insert_with(|| BatchEntry {
                    first_seen: now,
                    sent: HashSet::new(),
                })
                .sent
                .insert(message_key.to_owned());
        }
        if self.cooldown.is_zero() {
            return;
        }
        for key in covers {
            if !self.sources.contains_key(key) {
                make_room(&mut self.sources, MAX_SOURCES, self.cooldown, now, |e| {
                    e.last_sent
                });
            }
            self.sources.insert(
                key.clone(),
                SourceEntry {
                    last_sent: now,
                    held_back: 0,
                },
            );
        }
    }

    /// How many sources and batches are remembered.
    pub fn remembered(&self) -> (usize, usize) {
        (self.sources.len(), self.batches.len())
    }
}

/// Keeps `map` under `cap` entries: drops what is older than `max_age` and, if that is not
/// enough, the oldest tenth, so that a full map is not scanned on every insert.
fn make_room<K: Clone + std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    max_age: Duration,
    now: Instant,
    time: impl Fn(&V) -> Instant,
) {
    if map.len() < cap {
        return;
    }
    map.retain(|_, v| now.saturating_duration_since(time(v)) < max_age);
    if map.len() < cap {
        return;
    }
    let mut times: Vec<Instant> = map.values().map(&time).collect();
    let cut = map.len() - cap + cap / 10;
    let (_, &mut threshold, _) = times.select_nth_unstable(cut);
    map.retain(|_, v| time(v) >= threshold);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_source_is_held_back_inside_the_window_and_counted() {
        let mut recent = RecentAlerts::new(15 * MIN);
        let t0 = Instant::now();
        assert!(!recent.hold_back("a", t0));
        recent.sent(None, "a", &["a".into()], t0);
        assert!(recent.hold_back("a", t0 + MIN));
        assert!(recent.hold_back("a", t0 + 2 * MIN));
        assert_eq!(recent.held_back("a"), 2);
        assert!(!recent.hold_back("a", t0 + 16 * MIN));
        recent.sent(None, "a", &["a".into()], t0 + 16 * MIN);
        assert_eq!(recent.held_back("a"), 0);
    }

    #[test]
    fn a_zero_cooldown_holds_nothing_back() {
        let mut recent = RecentAlerts::new(Duration::ZERO);
        let t0 = Instant::now();
        recent.sent(None, "a", &["a".into()], t0);
        assert!(!recent.hold_back("a", t0));
    }

    #[test]
    fn a_batch_remembers_what_it_sent() {
        let mut recent = RecentAlerts::new(Duration::ZERO);
        recent.sent(Some(7), "alert:x", &[], Instant::now());
        assert!(recent.already_sent(Some(7), "alert:x"));
        assert!(!recent.already_sent(Some(7), "alert:y"));
        assert!(!recent.already_sent(Some(8), "alert:x"));
        assert!(!recent.already_sent(None, "alert:x"));
    }

    #[test]
    fn memory_stays_bounded_whatever_the_traffic() {
        let mut recent = RecentAlerts::new(15 * MIN);
        let t0 = Instant::now();
        for i in 0..(MAX_SOURCES as u64 * 3) {
            let key = format!("alert:{i}");
            recent.sent(
                Some(i),
                &key,
                std::slice::from_ref(&key),
                t0 + Duration::from_millis(i),
            );
        }
        let (sources, batches) = recent.remembered();
        assert!(sources <= MAX_SOURCES, "{sources}");
        assert!(batches <= MAX_BATCHES, "{batches}");
        // The newest are the ones kept.
        let newest = format!("alert:{}", MAX_SOURCES as u64 * 3 - 1);
        assert!(recent.hold_back(&newest, t0 + MIN));
    }
}
