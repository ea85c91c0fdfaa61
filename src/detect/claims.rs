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
//! claim of its source (see below), which ranks before it too. A claim that ranks after more
//! than `whole` others when it is made does not even get its alert made ([`Claims::offer`],
//! [`Gathering`]): an alert is a dozen or so strings and lists to allocate, a brief none.
//!
//! When the invocation has several parts (the records of a Kinesis batch, the objects of a
//! notification), one incident may be claimed by more than one of them (opened by one,
//! escalated by the next): the most severe claim, the first of equals, speaks for its source,
//! and the others are *superseded*: they are not sent, and count as sent when it is.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::Thresholds;
use crate::detect::activity::Id;
use crate::detect::alert::{
    claim_severity, message_id, Alert, ClaimSink, Label, Origin, Rank, Severity,
};
use crate::detect::incident::{Claim, Incident};

/// What the messages need of a claim that is only counted in a digest: its id in parts (the
/// text is made when a message names it) and its account shared with the delivery's, no text
/// of its own to allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brief {
    pub severity: Severity,
    pub source: IpAddr,
    pub records: u64,
    pub detected_at: u64,
    pub opened_at: u64,
    pub label: Label,
    account: Option<Id>,
}

impl Brief {
    pub fn of(alert: &Alert) -> Brief {
        Brief {
            severity: alert.severity,
            source: alert.source,
            records: alert.records,
            detected_at: alert.detected_at,
            opened_at: alert.opened_at,
            label: alert.label,
            account: alert.accounts.first().map(|a| Id::from(a.as_str())),
        }
    }

    /// What [`Brief::of`] gives for the alert of `claim`, without making the alert.
    pub fn new(incident: &Incident, claim: Claim, thresholds: Thresholds) -> Brief {
        Brief {
            severity: claim_severity(incident, claim, thresholds),
            source: incident.seen.source,
            records: incident.seen.records,
            detected_at: incident.last_at,
            opened_at: incident.opened_at,
            label: Label::of(incident, claim),
            account: incident.seen.accounts.iter().next().cloned(),
        }
    }

    /// The alert's id ([`Alert::id`]).
    pub fn id(&self) -> String {
        message_id(self.source, self.opened_at, self.label)
    }

    /// The account to name, as [`Alert::account`].
    pub fn account(&self) -> &str {
        self.account.as_deref().unwrap_or("-")
    }

    /// The alert's [`rank`](crate::detect::alert::rank).
    pub fn rank(&self) -> Rank {
        (self.severity, Reverse(self.records), self.source)
    }
}

/// Gathers the claims of one delivery into [`Claims`] through
/// [`for_each_claim`](crate::detect::alert::for_each_claim), making the alerts only of those
/// that may be among the first.
pub struct Gathering<'a, F> {
    pub claims: &'a mut Claims,
    /// The delivery's fingerprint.
    pub part: Option<u64>,
    pub thresholds: Thresholds,
    pub origin: &'a Origin,
    /// The region the alerts name.
    pub region: Option<&'a str>,
    /// Whether a claim goes out: false when it already went out for this part (a retry).
    pub goes_out: F,
}

impl<F: FnMut(&Brief) -> bool> Gathering<'_, F> {
    /// Gathers a claim made outside [`for_each_claim`](crate::detect::alert::for_each_claim)
    /// (the function's state-table path), as that would.
    pub fn gather(&mut self, incident: &Incident, claim: Claim) {
        let made = self.make(incident, claim);
        self.take(made);
    }
}

impl<F: FnMut(&Brief) -> bool> ClaimSink for Gathering<'_, F> {
    /// Boxed: the claims of the sources a memory already holds are made before any is taken.
    type Made = (Brief, Option<Box<Alert>>);

    fn make(&mut self, incident: &Incident, claim: Claim) -> Self::Made {
        let brief = Brief::new(incident, claim, self.thresholds);
        let alert = self.claims.wants(&brief).then(|| {
            Box::new(
                Alert::new(incident, claim, self.thresholds, self.origin).in_region(self.region),
            )
        });
        (brief, alert)
    }

    fn rank((brief, _): &Self::Made) -> Rank {
        brief.rank()
    }

    fn take(&mut self, (brief, alert): Self::Made) -> bool {
        self.claims.count(&brief);
        if (self.goes_out)(&brief) {
            self.claims.add_brief(self.part, brief, alert);
        }
        true
    }
}

/// A claim: the fingerprint of the part that claimed it, what the messages need of it, and the
/// alert while it may be among the first.
#[derive(Debug)]
struct Entry {
    /// Arrival: the order of claims that rank the same (two claims of one source in one part).
    seq: u32,
    /// Where its part's fingerprint is in [`Claims::parts`]: a delivery has a few parts and
    /// may have tens of thousands of claims.
    part: u32,
    brief: Brief,
    alert: Option<Box<Alert>>,
}

/// Where a claim goes in the order: its rank, then its arrival.
type Key = (Rank, u32);

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
    /// A claim that ranks after this one is never among the first `whole`.
    bar: Option<Rank>,
    seq: u32,
    /// The fingerprints of the parts the claims came from, in the order they came.
    parts: Vec<Option<u64>>,
    claimed: u64,
    /// The source of every claim made: a list, counted once at the end, takes less than a set
    /// of the same tens of thousands.
    sources: Vec<IpAddr>,
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
            bar: None,
            seq: 0,
            parts: Vec::new(),
            claimed: 0,
            sources: Vec::new(),
        }
    }

    /// Makes room for `n` more claims (a delivery's sources each claim one message, mostly):
    /// tens of thousands of claims would otherwise grow their list to twice what they need.
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve_exact(n);
        self.sources.reserve_exact(n);
    }

    /// Counts a claim made (for the summary), whether or not it goes out.
    pub fn count(&mut self, claim: &Brief) {
        self.claimed += 1;
        self.sources.push(claim.source);
    }

    /// Whether a claim could still be among the first `whole`, so that its alert is worth
    /// making: false once more than `whole` claims rank before it or with it.
    pub fn wants(&self, claim: &Brief) -> bool {
        self.bar.is_none_or(|bar| claim.rank() <= bar)
    }

    /// Adds a claim that goes out by its brief, making its alert only if it is
    /// [wanted](Claims::wants).
    pub fn offer(&mut self, part: Option<u64>, claim: Brief, alert: impl FnOnce() -> Alert) {
        let alert = self.wants(&claim).then(|| Box::new(alert()));
        self.add_brief(part, claim, alert);
    }

    /// Adds a claim; `alert` is its alert, if it was made.
    pub fn add_brief(&mut self, part: Option<u64>, brief: Brief, alert: Option<Box<Alert>>) {
        if self.parts.last() != Some(&part) {
            self.parts.push(part);
        }
        let entry = Entry {
            seq: self.seq,
            part: (self.parts.len() - 1) as u32,
            brief,
            alert,
        };
        // An invocation's claims are counted in thousands, not billions.
        self.seq = self.seq.saturating_add(1);
        if self.one_per_source {
            if let Some(&at) = self.speaker.get(&entry.brief.source) {
                let speaking = &mut self.entries[at];
                if speaking.brief.severity.rank() >= entry.brief.severity.rank() {
                    self.superseded.push((part, entry.brief));
                    return;
                }
                match (speaking.alert.is_some(), entry.alert.is_some()) {
                    (false, true) => self.held.push(at),
                    (true, false) => self.held.retain(|&i| i != at),
                    _ => {}
                }
                let old = std::mem::replace(speaking, entry);
                self.superseded
                    .push((self.parts[old.part as usize], old.brief));
                self.let_go();
                return;
            }
            self.speaker.insert(entry.brief.source, self.entries.len());
        }
        if entry.alert.is_some() {
            self.held.push(self.entries.len());
        }
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
        // More than `whole` claims rank before anything that ranks after this one.
        self.bar = Some(entries[self.held[self.whole]].brief.rank());
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
            parts: part_of,
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
                    speaker.insert(e.brief.source, e.brief.id());
                }
                parts.push(part_of[e.part as usize]);
                e.brief
            })
            .collect();
        let superseded = superseded
            .into_iter()
            .map(|(part, brief)| {
                let by = speaker[&brief.source].clone();
                (part, brief.id(), by)
            })
            .collect();
        Gathered {
            alerts,
            briefs,
            parts,
            superseded,
            claimed,
            sources: distinct(sources),
        }
    }
}

/// How many distinct addresses `sources` holds.
pub fn distinct(mut sources: Vec<IpAddr>) -> usize {
    sources.sort_unstable();
    sources.dedup();
    sources.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::order;
    use crate::detect::alert::tests::sample;

    fn alert(source: u32, severity: Severity, records: u64, label: Label) -> Alert {
        let mut a = sample();
        a.source = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + source));
        a.severity = severity;
        a.records = records;
        a.opened_at = 1;
        a.label = label;
        a.id = message_id(a.source, a.opened_at, label);
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
        for (i, (part, a)) in claims.iter().enumerate() {
            c.count(&Brief::of(a));
            // Both ways in: whole, and by the brief (the alert made only if wanted).
            if i % 2 == 0 {
                c.add_brief(*part, Brief::of(a), Some(Box::new(a.clone())));
            } else {
                c.offer(*part, Brief::of(a), || a.clone());
            }
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
                    // A distinct id for every claim.
                    Label::Reminder(i as u64),
                );
                (Some(r >> 40 & 3), a)
            })
            .collect()
    }

    type Stream = Vec<(Option<u64>, Alert)>;

    /// Seeded streams of `n` claims, for one part and for several, each with what holding them
    /// all gives.
    fn streams(n: usize) -> impl Iterator<Item = (Stream, bool, Vec<String>)> {
        (1..20).flat_map(move |seed| {
            [false, true].map(|one_per_source| {
                let claims = stream(seed, n);
                let expected = holding_all(&claims, one_per_source);
                (claims, one_per_source, expected)
            })
        })
    }

    /// `g` gives the claims in `expected`'s order, and the first `whole` of them whole.
    fn assert_gathered(g: &Gathered, expected: &[String], whole: usize) {
        let ids: Vec<String> = g.briefs.iter().map(Brief::id).collect();
        assert_eq!(ids, expected, "whole {whole}");
        let whole_ids: Vec<&str> = g.alerts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(
            whole_ids,
            expected[..whole.min(expected.len())],
            "whole {whole}"
        );
    }

    #[test]
    fn the_first_claims_come_out_whole_and_all_in_the_order_of_holding_them_all() {
        for (claims, one_per_source, expected) in streams(900) {
            let part_of: HashMap<&str, Option<u64>> =
                claims.iter().map(|(p, a)| (a.id.as_str(), *p)).collect();
            for whole in [0, 1, 10, 60, 2000] {
                let g = gathered(&claims, whole, one_per_source);
                assert_gathered(&g, &expected, whole);
                for (b, part) in g.briefs.iter().zip(&g.parts) {
                    assert_eq!(*part, part_of[b.id().as_str()]);
                }
                assert_eq!(g.claimed, 900);
                assert_eq!(g.briefs.len() + g.superseded.len(), 900);
            }
        }
    }

    #[test]
    fn a_brief_says_what_the_alert_of_its_claim_says() {
        use crate::config::Thresholds;
        use crate::detect::activity::{tests::finding, Activity};
        let t = Thresholds {
            port_scan: 10,
            host_sweep: 10,
        };
        let mut a = Activity::new("10.0.3.7".parse().unwrap());
        for port in 1..=12 {
            a.add(&finding("10.0.3.7", "10.0.1.5", port), None);
        }
        let mut incident = Incident::open(&a, 1_764_195_660);
        let claims = [
            Claim::Level(Severity::Medium),
            Claim::Level(Severity::High),
            Claim::Reminder,
        ];
        for with_account in [false, true] {
            if with_account {
                for account in ["210987654321", "111122223333"] {
                    let mut f = finding("10.0.3.7", "10.0.1.6", 80);
                    f.account = Some(account);
                    incident.seen.add(&f, None);
                }
                incident.reminders = 3;
                incident.last_at += 60;
            }
            for claim in claims {
                let alert = Alert::new(&incident, claim, t, &Origin::default());
                assert_eq!(
                    Brief::new(&incident, claim, t),
                    Brief::of(&alert),
                    "{claim:?}"
                );
            }
        }
    }

    #[test]
    fn a_superseded_claim_names_the_one_that_speaks_for_its_source() {
        let claims = vec![
            (
                Some(1),
                alert(7, Severity::Medium, 5, Label::Level(Severity::Medium)),
            ),
            (
                Some(2),
                alert(7, Severity::High, 9, Label::Level(Severity::High)),
            ),
            (Some(3), alert(7, Severity::High, 12, Label::Reminder(1))),
            (
                Some(3),
                alert(8, Severity::Low, 1, Label::Level(Severity::Low)),
            ),
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
                (
                    Some(3),
                    "10.0.0.7@1/reminder-1".into(),
                    "10.0.0.7@1/high".into()
                ),
            ]
        );
        assert_eq!((g.claimed, g.sources), (4, 2));
        // One part: every claim goes out.
        assert_eq!(gathered(&claims, 1, false).briefs.len(), 4);
    }

    #[test]
    fn alerts_decided_before_their_claims_are_added_are_never_missing() {
        // As `Gathering` does for the sources a memory holds: their claims are made (and their
        // alerts made or not) before any of them is added.
        for (claims, one_per_source, expected) in streams(600) {
            for whole in [0, 1, 10, 60] {
                let mut c = Claims::new(whole, one_per_source);
                for batch in claims.chunks(97) {
                    let made: Vec<_> = batch
                        .iter()
                        .map(|(part, a)| {
                            let brief = Brief::of(a);
                            let alert = c.wants(&brief).then(|| Box::new(a.clone()));
                            (*part, brief, alert)
                        })
                        .collect();
                    for (part, brief, alert) in made {
                        c.count(&brief);
                        c.add_brief(part, brief, alert);
                    }
                }
                assert_gathered(&c.finish(), &expected, whole);
            }
        }
    }

    #[test]
    fn tens_of_thousands_of_claims_hold_only_the_first_whole() {
        let mut c = Claims::new(60, false);
        for i in 0..20_000 {
            let a = alert(
                i,
                Severity::Medium,
                u64::from(i % 97),
                Label::Level(Severity::Medium),
            );
            let brief = Brief::of(&a);
            c.count(&brief);
            c.add_brief(Some(1), brief, Some(Box::new(a)));
            assert!(c.held.len() <= 128, "{} held after {i}", c.held.len());
            if i % 1000 == 0 {
                let holding = c.entries.iter().filter(|e| e.alert.is_some()).count();
                assert_eq!(holding, c.held.len());
            }
        }
        let g = c.finish();
        assert_eq!((g.alerts.len(), g.briefs.len()), (60, 20_000));
        assert_eq!(g.alerts[0].records, 96);
        // Offered best first (as one delivery's claims come), only the first alerts are made.
        let mut c = Claims::new(60, false);
        let mut made = 0;
        for i in 0..20_000 {
            let a = alert(i, Severity::Medium, 1, Label::Level(Severity::Medium));
            c.offer(Some(1), Brief::of(&a), || {
                made += 1;
                a.clone()
            });
        }
        assert!(made <= 2 * 64 + 1, "{made} alerts made");
        let g = c.finish();
        assert_eq!(g.alerts.len(), 60);
        assert_eq!(g.alerts.last().unwrap().source, g.briefs[59].source);
    }
}
