//! Incidents: one per source address, across deliveries, deciding which messages go out.
//!
//! A probe of 12 hosts arrives as 12 deliveries of one record each (the rejects are recorded on
//! each target's interface), and a three-minute scan as at least three. An [`Incident`] adds
//! those slices up, so its severity is the incident's, not one delivery's. It stays open while
//! findings keep arriving with gaps shorter than the window, and allows exactly these
//! messages: one when it opens, one each time its severity rises, and a reminder at most once
//! per cooldown while findings keep coming. [`Incident::try_claim`] is that rule; the shared
//! DynamoDB store encodes the same rule in its condition expressions, and [`IncidentMemory`]
//! applies it in one process (the command line, a function without a table, and the
//! function's fallback when the table cannot be reached).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use serde::Serialize;

use crate::config::{IncidentPolicy, Thresholds};
use crate::detect::activity::{Activity, Slice};

/// `high` for port scans and host sweeps, `medium` for any other probe, `low` for replies
/// that a network ACL dropped (a misconfiguration, not a probe). Ordered most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Low, Severity::Medium, Severity::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Higher is more severe.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Low => 0,
            Severity::Medium => 1,
            Severity::High => 2,
        }
    }
}

/// A message an incident may send; claiming it makes sure only one instance sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Claim {
    /// The first message at this severity (the opening one, or an escalation).
    Level(Severity),
    /// A reminder with the totals so far, at the claimed severity.
    Reminder,
}

impl Claim {
    /// The name of the claim in the shared store and in message ids.
    pub fn key(self) -> &'static str {
        match self {
            Claim::Level(s) => s.as_str(),
            Claim::Reminder => "reminder",
        }
    }
}

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    Opened,
    Escalated,
    Reminder,
}

/// Batches an incident in memory remembers, to recognise a retried delivery.
const REMEMBERED_BATCHES: usize = 64;

/// One source's incident: everything seen since it opened, and the messages claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// When it opened (Unix seconds, the time of processing); with the source, its identity.
    pub opened_at: u64,
    /// When the latest finding was added (Unix seconds, the time of processing).
    pub last_at: u64,
    pub seen: Activity,
    /// The severities a message was claimed for.
    pub claimed: Severities,
    /// When the latest message was claimed.
    pub last_sent: Option<u64>,
    /// Reminders claimed.
    pub reminders: u64,
    /// Which batch claimed each message (`Claim::key`), so that a retry of that batch can send
    /// again a message whose publishing failed.
    pub owners: Owners,
    /// Fingerprints of recent batches added (memory only; the shared store has its own).
    pub batches: Batches,
}

/// Which batch claimed each message of an incident: one slot per claim key (each level by its
/// rank, then the reminder), held in the incident itself rather than in a table or a list of
/// its own, so that opening one of tens of thousands of incidents allocates nothing for its
/// owners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners([Option<u64>; 4]);

impl Owners {
    /// The slot of a claim key ([`Claim::key`]).
    fn slot(key: &str) -> Option<usize> {
        match Severity::parse(key) {
            Some(level) => Some(usize::from(level.rank())),
            None => (key == Claim::Reminder.key()).then_some(Severity::ALL.len()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&u64> {
        self.0[Self::slot(key)?].as_ref()
    }

    /// Sets the owner of `key`; a key that is no claim's is not kept.
    pub fn insert(&mut self, key: &'static str, owner: u64) {
        let Some(slot) = Self::slot(key) else {
            debug_assert!(false, "not a claim key: {key}");
            return;
        };
        self.0[slot] = Some(owner);
    }
}

/// The severities a message was claimed for: a set of three, kept as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Severities(u8);

impl Severities {
    pub fn contains(&self, severity: &Severity) -> bool {
        self.0 & (1 << severity.rank()) != 0
    }

    pub fn insert(&mut self, severity: Severity) {
        self.0 |= 1 << severity.rank();
    }

    /// Least severe first (the order of [`Severity::ALL`], not of [`Severity`]'s `Ord`).
    pub fn iter(&self) -> impl Iterator<Item = Severity> + '_ {
        Severity::ALL.into_iter().filter(|s| self.contains(s))
    }
}

impl FromIterator<Severity> for Severities {
    fn from_iter<I: IntoIterator<Item = Severity>>(iter: I) -> Severities {
        let mut set = Severities::default();
        for s in iter {
            set.insert(s);
        }
        set
    }
}

// `Batches` keeps the oldest apart from the others.
const _: () = assert!(REMEMBERED_BATCHES >= 2);

/// The fingerprints of the last [`REMEMBERED_BATCHES`] batches added to an incident. Most
/// incidents see one batch: the oldest is kept in place, so that they hold it without an
/// allocation of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batches {
    oldest: Option<u64>,
    newer: VecDeque<u64>,
}

impl Batches {
    pub fn contains(&self, batch: u64) -> bool {
        self.oldest == Some(batch) || self.newer.contains(&batch)
    }

    /// Adds `batch`, if there is one, forgetting the oldest when there are too many.
    fn remember(&mut self, batch: Option<u64>) {
        let Some(batch) = batch else { return };
        if self.oldest.is_none() {
            self.oldest = Some(batch);
            return;
        }
        if 1 + self.newer.len() == REMEMBERED_BATCHES {
            self.oldest = self.newer.pop_front();
        }
        self.newer.push_back(batch);
    }
}

impl Incident {
    pub fn open(activity: impl Slice, now: u64) -> Incident {
        Incident {
            opened_at: now,
            last_at: now,
            seen: activity.into_activity(),
            claimed: Severities::default(),
            last_sent: None,
            reminders: 0,
            owners: Owners::default(),
            batches: Batches::default(),
        }
    }

    pub fn source(&self) -> IpAddr {
        self.seen.source
    }

    /// `10.0.4.9@1764195300`: the same for every message of this incident.
    pub fn id(&self) -> String {
        format!("{}@{}", self.seen.source, self.opened_at)
    }

    /// Whether a finding at `now` belongs to a new incident (the gap is the window or longer).
    pub fn is_closed(&self, now: u64, window: u64) -> bool {
        closed_since(self.last_at, now, window)
    }

    /// The incident's severity: probes of many ports or hosts are high, other probes medium,
    /// replies alone low. Replies never count toward the thresholds.
    pub fn severity(&self, t: Thresholds) -> Severity {
        let s = &self.seen;
        severity(t, s.probes, s.ports.len(), s.destinations.len())
    }

    /// The most severe level claimed so far.
    pub fn highest_claimed(&self) -> Option<Severity> {
        self.claimed.iter().max_by_key(|s| s.rank())
    }

    /// The message due now, if any: the opening one, an escalation, or (when this delivery
    /// brought new findings) a reminder once the cooldown has passed since the last message.
    pub fn due(&self, t: Thresholds, now: u64, cooldown: u64, fresh: bool) -> Option<Claim> {
        let level = self.severity(t);
        match self.highest_claimed() {
            None => Some(Claim::Level(level)),
            Some(c) if level.rank() > c.rank() => Some(Claim::Level(level)),
            Some(_) if fresh && self.reminder_allowed(now, cooldown) => Some(Claim::Reminder),
            Some(_) => None,
        }
    }

    fn reminder_allowed(&self, now: u64, cooldown: u64) -> bool {
        self.last_sent
            .is_none_or(|t| now >= t.saturating_add(cooldown))
    }

    /// Claims a message for the batch `owner`: the rule every store applies. A level is
    /// claimed only if neither it nor a more severe one was; a reminder only once the cooldown
    /// has passed since the last message. False when another delivery got there first.
    pub fn try_claim(&mut self, claim: Claim, owner: u64, now: u64, cooldown: u64) -> bool {
        match claim {
            Claim::Level(level) => {
                if self.claimed.iter().any(|c| c.rank() >= level.rank()) {
                    return false;
                }
                self.claimed.insert(level);
            }
            Claim::Reminder => {
                if !self.reminder_allowed(now, cooldown) {
                    return false;
                }
                self.reminders += 1;
            }
        }
        self.last_sent = Some(now);
        self.owners.insert(claim.key(), owner);
        true
    }

    /// The messages the batch `owner` claimed in this incident, most severe last. A level is
    /// left out once a more severe one was claimed: that one's owner sends the news, and a
    /// late "[MEDIUM]" after a "[HIGH]" would only confuse.
    pub fn claimed_by(&self, owner: u64) -> Vec<Claim> {
        let highest = self.highest_claimed();
        let mut claims: Vec<Claim> = Severity::ALL
            .into_iter()
            .filter(|s| self.claimed.contains(s) && Some(*s) == highest)
            .map(Claim::Level)
            .collect();
        claims.push(Claim::Reminder);
        claims.retain(|c| self.owners.get(c.key()) == Some(&owner));
        claims
    }

    /// Why a claimed message is sent.
    pub fn reason(&self, claim: Claim) -> Reason {
        match claim {
            Claim::Reminder => Reason::Reminder,
            Claim::Level(level) => {
                let lowest = self.claimed.iter().min_by_key(|s| s.rank());
                if lowest.is_none_or(|l| l == level) {
                    Reason::Opened
                } else {
                    Reason::Escalated
                }
            }
        }
    }

    /// How many values its sets hold: the measure of its memory.
    fn weight(&self) -> usize {
        let s = &self.seen;
        let r = s.responses();
        1 + s.destinations.len() + s.ports.len() + r.peers.len() + r.service_ports.len()
    }
}

/// Whether an incident last added to at `last_at` is closed at `now`.
fn closed_since(last_at: u64, now: u64, window: u64) -> bool {
    now.saturating_sub(last_at) >= window
}

/// The severity of an incident made of `activity` alone.
pub fn severity_of(t: Thresholds, activity: &Activity) -> Severity {
    severity(
        t,
        activity.probes,
        activity.ports.len(),
        activity.destinations.len(),
    )
}

/// Probes of many ports or hosts are high, other probes medium, replies alone low.
fn severity(t: Thresholds, probes: u64, ports: usize, destinations: usize) -> Severity {
    if probes == 0 {
        Severity::Low
    } else if ports >= t.port_scan || destinations >= t.host_sweep {
        Severity::High
    } else {
        Severity::Medium
    }
}

/// What tracking one delivery's slice did to its source's incident.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The incident with the slice added.
    pub incident: Incident,
    /// The slice was already added by an earlier delivery of the same batch (a retry): nothing
    /// new, but messages this batch claimed before may need sending again.
    pub replay: bool,
}

impl Tracked {
    /// The messages this delivery should send: those its batch claimed before (a retry sends
    /// them again: their publishing may have failed), and the one now due, still to be claimed.
    /// A retry is not always recognised as one (the store remembers a few recent batches per
    /// source), but its claims always are, by their owner.
    pub fn wanted(&self, batch: Option<u64>, policy: &IncidentPolicy, now: u64) -> Wanted {
        wanted(&self.incident, self.replay, batch, policy, now)
    }
}

/// See [`Tracked::wanted`].
fn wanted(
    incident: &Incident,
    replay: bool,
    batch: Option<u64>,
    policy: &IncidentPolicy,
    now: u64,
) -> Wanted {
    Wanted {
        resend: batch.map(|b| incident.claimed_by(b)).unwrap_or_default(),
        due: incident.due(policy.thresholds, now, policy.cooldown, !replay),
    }
}

/// See [`Tracked::wanted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub resend: Vec<Claim>,
    pub due: Option<Claim>,
}

/// Incidents held in one process, bounded: at most [`IncidentMemory::MAX_INCIDENTS`] and a
/// budget of set values; the least recently active go first.
#[derive(Debug)]
pub struct IncidentMemory {
    policy: IncidentPolicy,
    /// Boxed: an incident is a few hundred bytes, and a map of them would spread that over
    /// every empty slot of its table.
    incidents: HashMap<IpAddr, Held, foldhash::fast::RandomState>,
    weight: usize,
    /// Room for [`IncidentMemory::make_room`]'s list of ages (last active, source, weight),
    /// kept once the memory has been full: a few hundred KB for 10,000 incidents.
    by_age: Vec<(u64, IpAddr, usize)>,
}

/// An incident held, with what making room reads of it beside it in the table: a memory
/// full of incidents is scanned for the oldest every thousand new sources, and reading each
/// incident itself there would miss the processor's cache on every one. Both are set when the
/// incident is put (`last_at` and the sets change only before).
#[derive(Debug)]
struct Held {
    last_at: u64,
    weight: usize,
    incident: Box<Incident>,
}

impl IncidentMemory {
    pub const MAX_INCIDENTS: usize = 10_000;
    /// About 40 MB of set values in the worst case (IPv6 peers), a few MB in practice.
    pub const MAX_WEIGHT: usize = 400_000;

    pub fn new(policy: IncidentPolicy) -> IncidentMemory {
        IncidentMemory {
            policy,
            incidents: HashMap::default(),
            weight: 0,
            by_age: Vec::new(),
        }
    }

    /// Adds a delivery's slice to its source's incident (opening one if there is none, or the
    /// last one closed). `batch` identifies the delivery across retries, when it has ids.
    pub fn track(&mut self, activity: &Activity, batch: Option<u64>, now: u64) -> Tracked {
        let (incident, replay) = self.add(activity, batch, now);
        Tracked {
            incident: incident.clone(),
            replay,
        }
    }

    /// [`Self::track`] without the copy: the incident as it is now in memory, and whether the
    /// slice was a replay of its batch.
    fn add(&mut self, activity: impl Slice, batch: Option<u64>, now: u64) -> (&mut Incident, bool) {
        let window = self.policy.window;
        let (incident, replay) = match self.incidents.remove(&activity.activity().source) {
            Some(Held {
                weight,
                incident: mut old,
                ..
            }) if !old.is_closed(now, window) => {
                self.weight -= weight;
                let replay = batch.is_some_and(|b| old.batches.contains(b));
                if !replay {
                    old.seen.merge(activity.activity());
                    old.last_at = now;
                    old.batches.remember(batch);
                }
                (old, replay)
            }
            closed => {
                if let Some(old) = closed {
                    self.weight -= old.weight;
                }
                let mut incident = Box::new(Incident::open(activity, now));
                incident.batches.remember(batch);
                (incident, false)
            }
        };
        (self.put(incident, now), replay)
    }

    /// Claims `claim` in the incident of `source` opened at `opened_at` (see
    /// [`Incident::try_claim`]). False when it was claimed already, or the incident is gone.
    pub fn claim(
        &mut self,
        source: IpAddr,
        opened_at: u64,
        claim: Claim,
        owner: u64,
        now: u64,
    ) -> bool {
        let cooldown = self.policy.cooldown;
        match self.incidents.get_mut(&source) {
            Some(Held { incident, .. }) if incident.opened_at == opened_at => {
                incident.try_claim(claim, owner, now, cooldown)
            }
            _ => false,
        }
    }

    /// Replaces what this process knows of an incident with the shared store's view, so that
    /// a fallback to memory starts from the totals and claims of every instance.
    pub fn replace(&mut self, mut incident: Incident, now: u64) {
        if let Some(Held {
            weight,
            incident: mut old,
            ..
        }) = self.incidents.remove(&incident.source())
        {
            self.weight -= weight;
            if old.opened_at == incident.opened_at {
                incident.batches = std::mem::take(&mut old.batches);
            }
        }
        self.put(Box::new(incident), now);
    }

    pub fn policy(&self) -> &IncidentPolicy {
        &self.policy
    }

    /// Tracks a delivery's slice and claims what is due in memory: the messages to send, each
    /// with the incident as it was when the message was claimed.
    pub fn observe(
        &mut self,
        activity: &Activity,
        batch: Option<u64>,
        now: u64,
    ) -> Vec<(Incident, Claim)> {
        let mut out = Vec::new();
        self.observe_each(activity, batch, now, |incident, claim| {
            out.push((incident.clone(), claim));
        });
        out
    }

    /// [`observe`](IncidentMemory::observe) without copying the incident: `each` sees it as it
    /// is when each message is claimed.
    pub fn observe_each(
        &mut self,
        activity: impl Slice,
        batch: Option<u64>,
        now: u64,
        mut each: impl FnMut(&Incident, Claim),
    ) {
        let policy = self.policy;
        let (incident, replay) = self.add(activity, batch, now);
        let Wanted { resend, due } = wanted(incident, replay, batch, &policy, now);
        for claim in resend {
            each(incident, claim);
        }
        if let Some(claim) = due {
            if incident.try_claim(claim, batch.unwrap_or(0), now, policy.cooldown) {
                each(incident, claim);
            }
        }
    }

    pub fn get(&self, source: &IpAddr) -> Option<&Incident> {
        self.incidents
            .get(source)
            .map(|held| held.incident.as_ref())
    }

    /// Incidents held and their weight.
    pub fn size(&self) -> (usize, usize) {
        (self.incidents.len(), self.weight)
    }

    /// Holds `incident`, making room first if the memory is full (so the incident just added is
    /// never the one dropped).
    fn put(&mut self, incident: Box<Incident>, now: u64) -> &mut Incident {
        let weight = incident.weight();
        if self.incidents.len() + 1 > Self::MAX_INCIDENTS || self.weight + weight > Self::MAX_WEIGHT
        {
            self.make_room(now);
        }
        self.weight += weight;
        let held = Held {
            last_at: incident.last_at,
            weight,
            incident,
        };
        &mut self
            .incidents
            .entry(held.incident.source())
            .insert_entry(held)
            .into_mut()
            .incident
    }

    /// Drops closed incidents, then the least recently active ones, down to 90% of the limits,
    /// so that a full memory is not scanned on every insert. The ages are listed in a vector
    /// kept from one call to the next (a new one of ten thousand entries each time is fresh
    /// memory to fault in), and the oldest are dropped in one pass over the table, not looked
    /// up one by one.
    fn make_room(&mut self, now: u64) {
        let window = self.policy.window;
        let mut by_age = std::mem::take(&mut self.by_age);
        by_age.clear();
        self.incidents.retain(|&source, held| {
            let open = !closed_since(held.last_at, now, window);
            if open {
                by_age.push((held.last_at, source, held.weight));
            }
            open
        });
        let count = by_age.len();
        let mut weight: usize = by_age.iter().map(|e| e.2).sum();
        // The oldest that are too many go first, found without sorting them all: a delivery of
        // tens of thousands of sources makes room every thousand of them.
        let too_many = count.saturating_sub(Self::MAX_INCIDENTS * 9 / 10);
        if too_many > 0 && too_many < count {
            by_age.select_nth_unstable(too_many);
        }
        let mut dropped = too_many.min(count);
        weight -= by_age[..dropped].iter().map(|e| e.2).sum::<usize>();
        // Then, if they still weigh too much, the oldest of the others.
        if weight > Self::MAX_WEIGHT * 9 / 10 {
            let rest = &mut by_age[dropped..];
            rest.sort_unstable();
            for &(_, _, w) in rest.iter() {
                if weight <= Self::MAX_WEIGHT * 9 / 10 {
                    break;
                }
                weight -= w;
                dropped += 1;
            }
        }
        // The ones to drop are the oldest `dropped`, and no two incidents have the same age
        // and source: they are those no newer than the newest of them.
        let newest = by_age[..dropped]
            .iter()
            .map(|&(at, source, _)| (at, source))
            .max();
        if let Some(newest) = newest {
            self.incidents
                .retain(|&source, held| (held.last_at, source) > newest);
        }
        debug_assert_eq!(count - dropped, self.incidents.len());
        self.weight = weight;
        self.by_age = by_age;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::activity::tests::finding;

    const T: Thresholds = Thresholds {
        port_scan: 10,
        host_sweep: 10,
    };
    const HOUR: u64 = 3600;

    fn probe(source: &str, dst: &str, port: u16) -> Activity {
        let mut a = Activity::new(source.parse().unwrap());
        a.add(&finding(source, dst, port), None);
        a
    }

    fn reply(source: &str, client: &str) -> Activity {
        let mut f = finding(source, client, 50_000);
        f.srcport = Some(443);
        let mut a = Activity::new(source.parse().unwrap());
        a.add(&f, None);
        a
    }

    const POLICY: IncidentPolicy = IncidentPolicy {
        thresholds: T,
        window: HOUR,
        cooldown: HOUR,
    };

    fn memory(window: u64) -> IncidentMemory {
        IncidentMemory::new(IncidentPolicy { window, ..POLICY })
    }

    /// Tracks and claims as the function does; returns the messages sent.
    fn deliver(
        memory: &mut IncidentMemory,
        slice: &Activity,
        batch: u64,
        now: u64,
    ) -> Vec<(Severity, Reason)> {
        memory
            .observe(slice, Some(batch), now)
            .into_iter()
            .map(|(i, claim)| (i.highest_claimed().unwrap(), i.reason(claim)))
            .collect()
    }

    #[test]
    fn a_sweep_delivered_one_target_at_a_time_opens_medium_then_escalates_to_high() {
        let mut memory = memory(HOUR);
        let mut sent = vec![];
        for host in 0..12u64 {
            let slice = probe("10.0.4.9", &format!("10.0.1.{host}"), 22);
            sent.extend(deliver(&mut memory, &slice, host, 1000 + host));
        }
        assert_eq!(
            sent,
            [
                (Severity::Medium, Reason::Opened),
                (Severity::High, Reason::Escalated)
            ]
        );
    }

    #[test]
    fn repeats_send_nothing_until_the_cooldown_then_one_reminder() {
        let mut memory = memory(2 * HOUR);
        let slice = probe("10.0.0.1", "10.0.1.1", 22);
        assert_eq!(deliver(&mut memory, &slice, 1, 0).len(), 1);
        assert!(deliver(&mut memory, &slice, 2, 60).is_empty());
        assert!(deliver(&mut memory, &slice, 3, HOUR - 1).is_empty());
        assert_eq!(
            deliver(&mut memory, &slice, 4, HOUR),
            [(Severity::Medium, Reason::Reminder)]
        );
        assert!(deliver(&mut memory, &slice, 5, HOUR + 60).is_empty());
    }

    #[test]
    fn a_gap_of_the_window_opens_a_new_incident() {
        let mut memory = memory(HOUR);
        let slice = probe("10.0.0.1", "10.0.1.1", 22);
        deliver(&mut memory, &slice, 1, 0);
        assert_eq!(
            deliver(&mut memory, &slice, 2, HOUR),
            [(Severity::Medium, Reason::Opened)]
        );
        assert_eq!(memory.get(&slice.source).unwrap().seen.records, 1);
    }

    #[test]
    fn a_retried_batch_adds_nothing_and_sends_again_only_what_it_claimed() {
        let mut memory = memory(HOUR);
        let slice = probe("10.0.0.1", "10.0.1.1", 22);
        deliver(&mut memory, &slice, 7, 0);
        let again = memory.track(&slice, Some(7), 10);
        assert!(again.replay);
        assert_eq!(again.incident.seen.records, 1);
        assert_eq!(
            again.incident.claimed_by(7),
            [Claim::Level(Severity::Medium)]
        );
        assert!(again.incident.claimed_by(8).is_empty());
        assert_eq!(again.incident.due(T, 10, HOUR, false), None);
    }

    #[test]
    fn replies_alone_are_low_and_never_reach_high() {
        let mut memory = memory(HOUR);
        let mut sent = vec![];
        for client in 0..30u64 {
            let slice = reply("10.0.1.5", &format!("198.51.100.{client}"));
            sent.extend(deliver(&mut memory, &slice, client, client));
        }
        assert_eq!(sent, [(Severity::Low, Reason::Opened)]);
        let i = memory.get(&"10.0.1.5".parse().unwrap()).unwrap();
        assert_eq!(
            (i.seen.responses().peers.len(), i.seen.destinations.len()),
            (30, 0)
        );
    }

    #[test]
    fn a_retry_does_not_resend_a_level_below_one_claimed_since() {
        let mut i = Incident::open(probe("10.0.0.1", "10.0.1.1", 22), 0);
        assert!(i.try_claim(Claim::Level(Severity::Medium), 1, 0, HOUR));
        assert!(i.try_claim(Claim::Level(Severity::High), 2, 0, HOUR));
        assert!(i.claimed_by(1).is_empty(), "batch 2's HIGH tells the news");
        assert_eq!(i.claimed_by(2), [Claim::Level(Severity::High)]);
    }

    #[test]
    fn a_lower_level_is_not_claimed_after_a_higher_one() {
        let mut i = Incident::open(probe("10.0.0.1", "10.0.1.1", 22), 0);
        assert!(i.try_claim(Claim::Level(Severity::High), 1, 0, HOUR));
        assert!(!i.try_claim(Claim::Level(Severity::Medium), 2, 0, HOUR));
        assert!(!i.try_claim(Claim::Level(Severity::High), 2, 0, HOUR));
        assert_eq!(i.reason(Claim::Level(Severity::High)), Reason::Opened);
    }

    #[test]
    fn each_claim_has_an_owner_of_its_own() {
        let claims = [
            Claim::Level(Severity::High),
            Claim::Level(Severity::Medium),
            Claim::Level(Severity::Low),
            Claim::Reminder,
        ];
        let mut owners = Owners::default();
        for (n, claim) in (0u64..).zip(claims) {
            owners.insert(claim.key(), n);
        }
        for (n, claim) in (0u64..).zip(claims) {
            assert_eq!(owners.get(claim.key()), Some(&n), "{claim:?}");
        }
        assert_eq!(owners.get("closed"), None);
    }

    #[test]
    fn an_incident_remembers_the_last_batches_only() {
        let last = REMEMBERED_BATCHES as u64 + 3;
        let mut batches = Batches::default();
        for n in 0..last {
            batches.remember(Some(n));
            batches.remember(None);
        }
        let held: Vec<u64> = (0..last).filter(|&n| batches.contains(n)).collect();
        assert_eq!(held, (3..last).collect::<Vec<_>>());
    }

    #[test]
    fn memory_stays_bounded_whatever_the_traffic() {
        let mut memory = memory(HOUR);
        let last = IncidentMemory::MAX_INCIDENTS as u32 + 500;
        // Later sources have lower addresses: age, not address, decides which go.
        let light = |n: u32| std::net::Ipv4Addr::from(0x0a00_0000 + last - n);
        for n in 0..last {
            let source = light(n).to_string();
            memory.track(&probe(&source, "10.9.0.1", 22), None, u64::from(n) / 100);
        }
        let (count, _) = memory.size();
        assert!(count <= IncidentMemory::MAX_INCIDENTS, "{count}");
        // The most recent are kept, and only they: the oldest went first.
        let held = |memory: &IncidentMemory, n: u32| memory.get(&light(n).into()).is_some();
        let kept: Vec<u32> = (0..last).filter(|&n| held(&memory, n)).collect();
        assert_eq!(kept, ((last - count as u32)..last).collect::<Vec<_>>());
        let mut big = Activity::new("10.1.0.1".parse().unwrap());
        for n in 0..1000u32 {
            big.add(
                &finding(
                    "10.1.0.1",
                    &std::net::Ipv4Addr::from(n).to_string(),
                    n as u16,
                ),
                None,
            );
        }
        for n in 0..1000u32 {
            big.source = std::net::Ipv4Addr::from(0x0b00_0000 + n).into();
            memory.track(&big, None, 200);
        }
        let (_, weight) = memory.size();
        assert!(weight <= IncidentMemory::MAX_WEIGHT, "{weight}");
        // The heavy ones made room by dropping the oldest first: every light one (older), then
        // the heavy ones first tracked (the same time, the lower addresses first).
        assert!((0..last).all(|n| !held(&memory, n)));
        let heavy: Vec<u32> = (0..1000u32)
            .filter(|&n| {
                memory
                    .get(&std::net::Ipv4Addr::from(0x0b00_0000 + n).into())
                    .is_some()
            })
            .collect();
        assert!(heavy.len() < 1000, "{}", heavy.len());
        assert_eq!(
            heavy,
            ((1000 - heavy.len() as u32)..1000).collect::<Vec<_>>()
        );
    }
}
