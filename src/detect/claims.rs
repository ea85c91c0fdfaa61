//! The claims of one invocation, gathered in memory that does not grow with their number.
//!
//! An invocation sends one message for each of its first alerts (`MAX_ALERTS_PER_INVOCATION`)
//! and one digest for the rest, which names a few of them and counts the others. Only those
//! first alerts and the digest's named ones are ever read whole; for every other claim the
//! messages need its id, severity, account and time. An S3 file with tens of thousands of
//! alerting sources would otherwise hold an [`Alert`] (about a kilobyte) for each.
//!
//! [`Claims`] keeps every claim as a [`Brief`] and the whole alert only while it may still be
//! among the first `whole` in [`order`](crate::detect::alert::order): once `whole` others rank
//! before it, it never will, because a claim only leaves the invocation for a more severe
//! claim of its source (see below), which ranks before it too.
//!
//! When the invocation has several parts (the records of a Kinesis batch, the objects of a
//! notification), one incident may be claimed by more than one of them (opened by one,
//! escalated by the next): the most severe claim, the first of equals, speaks for its source,
//! and the others are *superseded*: they are not sent, and count as sent when it is.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::detect::alert::{Alert, Severity};

/// What the messages need of a claim that is only counted in a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brief {
    pub id: String,
    pub severity: Severity,
    pub source: IpAddr,
    pub records: u64,
    pub detected_at: u64,
    pub account: String,
}

impl Brief {
    pub fn of(alert: &Alert) -> Brief {
        Brief {
            id: alert.id.clone(),
            severity: alert.severity,
            source: alert.source,
            records: alert.records,
            detected_at: alert.detected_at,
            account: alert.account().to_owned(),
        }
    }

    /// The alert's [`rank`](crate::detect::alert::rank).
    pub fn rank(&self) -> (Severity, Reverse<u64>, IpAddr) {
        (self.severity, Reverse(self.records), self.source)
    }
}

/// A claim: the fingerprint of the part that claimed it, what the messages need of it, and the
/// alert while it may be among the first.
#[derive(Debug)]
struct Entry {
    /// Arrival: the order of claims that rank the same (two claims of one source in one part).
    seq: u64,
    part: Option<u64>,
    brief: Brief,
    alert: Option<Box<Alert>>,
}

/// Where a claim goes in the order: its rank, then its arrival.
type Key = ((Severity, Reverse<u64>, IpAddr), u64);

impl Entry {
    fn key(&self) -> Key {
        (self.brief.rank(), self.seq)
    }
}

/// Claims gathered as they are made; see the module's documentation.
#[derive(Debug)]
pub struct Claims {
    whole: usize,
    one_per_source: bool,
    entries: Vec<Entry>,
    /// Where each source's speaking claim is in `entries` (with `one_per_source`).
    speaker: HashMap<IpAddr, usize>,
    superseded: Vec<(Option<u64>, Brief)>,
    /// Where the entries that hold their alert are in `entries`.
    held: Vec<usize>,
    seq: u64,
    claimed: u64,
    sources: HashSet<IpAddr>,
}

/// The claims of an invocation, once all are in.
#[derive(Debug, Default)]
pub struct Gathered {
    /// The first claims in order, whole: at most as many as [`Claims::new`] was asked for.
    pub alerts: Vec<Alert>,
    /// Every claim that goes out, in order (the first ones too).
    pub briefs: Vec<Brief>,
    /// The part that claimed each of `briefs`.
    pub parts: Vec<Option<u64>>,
    /// The claims another speaks for: the part that claimed each, its id, and the other's id.
    pub superseded: Vec<(Option<u64>, String, String)>,
    /// Claims made, those left out with [`Claims::count`] included.
    pub claimed: u64,
    /// Distinct sources of the claims made.
    pub sources: usize,
}

impl Claims {
    /// Holds the first `whole` claims whole; with `one_per_source`, one claim per source goes
    /// out (an invocation of several parts).
    pub fn new(whole: usize, one_per_source: bool) -> Claims {
        Claims {
            whole,
            one_per_source,
            entries: Vec::new(),
            speaker: HashMap::new(),
            superseded: Vec::new(),
            held: Vec::new(),
            seq: 0,
            claimed: 0,
            sources: HashSet::new(),
        }
    }

    /// Makes room for `n` more claims (a delivery's sources each claim one message, mostly):
    /// tens of thousands of claims would otherwise grow their list to twice what they need.
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// Counts a claim made (for the summary), whether or not it goes out.
    pub fn count(&mut self, alert: &Alert) {
        self.claimed += 1;
        self.sources.insert(alert.source);
    }

    /// Adds a claim of the part `part` that goes out (already [counted](Claims::count)).
    pub fn add(&mut self, part: Option<u64>, alert: Alert) {
        let entry = Entry {
            seq: self.seq,
            part,
            brief: Brief::of(&alert),
            alert: Some(Box::new(alert)),
        };
        self.seq += 1;
        if self.one_per_source {
            if let Some(&at) = self.speaker.get(&entry.brief.source) {
                let speaking = &mut self.entries[at];
                if speaking.brief.severity.rank() >= entry.brief.severity.rank() {
                    self.superseded.push((entry.part, entry.brief));
                    return;
                }
                if speaking.alert.is_none() {
                    self.held.push(at);
                }
                let old = std::mem::replace(speaking, entry);
                self.superseded.push((old.part, old.brief));
                self.let_go();
                return;
            }
            self.speaker.insert(entry.brief.source, self.entries.len());
        }
        self.held.push(self.entries.len());
        self.entries.push(entry);
        self.let_go();
    }

    /// Past twice `whole` alerts held, lets go of those that `whole` others rank before.
    fn let_go(&mut self) {
        if self.held.len() <= self.whole.saturating_mul(2).max(64) {
            return;
        }
        let entries = &mut self.entries;
        self.held
            .select_nth_unstable_by_key(self.whole, |&i| entries[i].key());
        for &i in &self.held[self.whole..] {
            entries[i].alert = None;
        }
        self.held.truncate(self.whole);
    }

    /// The claims in order: the first whole, all briefly, and those spoken for.
    pub fn finish(self) -> Gathered {
        let Claims {
            whole,
            mut entries,
            superseded,
            claimed,
            sources,
            ..
        } = self;
        entries.sort_unstable_by_key(Entry::key);
        let mut alerts = Vec::with_capacity(whole.min(entries.len()));
        let mut speaker: HashMap<IpAddr, String> = HashMap::new();
        let mut parts = Vec::with_capacity(entries.len());
        let briefs = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                // The first `whole` are never let go (see the module's documentation).
                debug_assert!(i >= whole || e.alert.is_some());
                // `alerts` stays the first of `briefs`, whatever happens.
                if let (true, Some(alert)) = (i < whole && alerts.len() == i, e.alert) {
                    alerts.push(*alert);
                }
                if !superseded.is_empty() {
                    speaker.insert(e.brief.source, e.brief.id.clone());
                }
                parts.push(e.part);
                e.brief
            })
            .collect();
        let superseded = superseded
            .into_iter()
            .map(|(part, brief)| {
                let by = speaker[&brief.source].clone();
                (part, brief.id, by)
            })
            .collect();
        Gathered {
            alerts,
            briefs,
            parts,
            superseded,
            claimed,
            sources: sources.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::order;
    use crate::detect::alert::tests::sample;

    fn alert(source: u32, severity: Severity, records: u64, id: &str) -> Alert {
        let mut a = sample();
        a.source = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + source));
        a.severity = severity;
        a.records = records;
        a.id = format!("{}@1/{id}", a.source);
        a
    }

    /// What the function did before claims were gathered: every alert held, one per source
    /// with several parts (the most severe, the first of equals), sorted.
    fn holding_all(claims: &[(Option<u64>, Alert)], one_per_source: bool) -> Vec<String> {
        let mut kept: Vec<Alert> = Vec::new();
        for (_, a) in claims {
            match kept.iter().position(|k| k.source == a.source) {
                Some(at) if one_per_source => {
                    if a.severity.rank() > kept[at].severity.rank() {
                        kept.remove(at);
                        kept.push(a.clone());
                    }
                }
                _ => kept.push(a.clone()),
            }
        }
        order(&mut kept);
        kept.into_iter().map(|a| a.id).collect()
    }

    fn gathered(claims: &[(Option<u64>, Alert)], whole: usize, one_per_source: bool) -> Gathered {
        let mut c = Claims::new(whole, one_per_source);
        for (part, a) in claims {
            c.count(a);
            c.add(*part, a.clone());
        }
        c.finish()
    }

    /// A pseudo-random stream of claims: 300 sources (three claims each on average), over four
    /// parts.
    fn stream(seed: u64, n: usize) -> Vec<(Option<u64>, Alert)> {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let r = next();
                let severity = [Severity::Low, Severity::Medium, Severity::High][(r % 3) as usize];
                let a = alert(
                    (r >> 8) as u32 % 300,
                    severity,
                    (r >> 20) % 40,
                    &format!("{i}"),
                );
                (Some(r >> 40 & 3), a)
            })
            .collect()
    }

    #[test]
    fn the_first_claims_come_out_whole_and_all_in_the_order_of_holding_them_all() {
        for seed in 1..20 {
            for one_per_source in [false, true] {
                let claims = stream(seed, 900);
                let expected = holding_all(&claims, one_per_source);
                let part_of: HashMap<&str, Option<u64>> =
                    claims.iter().map(|(p, a)| (a.id.as_str(), *p)).collect();
                for whole in [0, 1, 10, 60, 2000] {
                    let g = gathered(&claims, whole, one_per_source);
                    let ids: Vec<&str> = g.briefs.iter().map(|b| b.id.as_str()).collect();
                    assert_eq!(
                        ids, expected,
                        "seed {seed}, whole {whole}, {one_per_source}"
                    );
                    for (b, part) in g.briefs.iter().zip(&g.parts) {
                        assert_eq!(*part, part_of[b.id.as_str()]);
                    }
                    let whole_ids: Vec<&str> = g.alerts.iter().map(|a| a.id.as_str()).collect();
                    assert_eq!(whole_ids, expected[..whole.min(expected.len())]);
                    assert_eq!(g.claimed, 900);
                    assert_eq!(g.briefs.len() + g.superseded.len(), 900);
                }
            }
        }
    }

    #[test]
    fn a_superseded_claim_names_the_one_that_speaks_for_its_source() {
        let claims = vec![
            (Some(1), alert(7, Severity::Medium, 5, "medium")),
            (Some(2), alert(7, Severity::High, 9, "high")),
            (Some(3), alert(7, Severity::High, 12, "again")),
            (Some(3), alert(8, Severity::Low, 1, "low")),
        ];
        let g = gathered(&claims, 1, true);
        assert_eq!(g.alerts.len(), 1);
        assert_eq!(g.alerts[0].id, "10.0.0.7@1/high");
        assert_eq!(
            g.superseded,
            [
                (
                    Some(1),
                    "10.0.0.7@1/medium".into(),
                    "10.0.0.7@1/high".into()
                ),
                (Some(3), "10.0.0.7@1/again".into(), "10.0.0.7@1/high".into()),
            ]
        );
        assert_eq!((g.claimed, g.sources), (4, 2));
        // One part: every claim goes out.
        assert_eq!(gathered(&claims, 1, false).briefs.len(), 4);
    }

    #[test]
    fn tens_of_thousands_of_claims_hold_only_the_first_whole() {
        let mut c = Claims::new(60, false);
        for i in 0..20_000 {
            let a = alert(i, Severity::Medium, u64::from(i % 97), "m");
            c.count(&a);
            c.add(Some(1), a);
            assert!(c.held.len() <= 128, "{} held after {i}", c.held.len());
            if i % 1000 == 0 {
                let holding = c.entries.iter().filter(|e| e.alert.is_some()).count();
                assert_eq!(holding, c.held.len());
            }
        }
        let g = c.finish();
        assert_eq!((g.alerts.len(), g.briefs.len()), (60, 20_000));
        assert_eq!(g.alerts[0].records, 96);
    }
}
