//! Alerts: what one message says about an incident, with everything a responder needs.
//!
//! An [`Alert`] is a snapshot of an incident at the moment a message was claimed for it: the
//! totals so far, bounded samples, where the traffic was rejected, and why the message goes
//! out (the incident opened, its severity rose, or a reminder). Everything in it is bounded in
//! size, so a host sweeping a /16 yields an alert of the same size as one probing a port.

use std::cmp::Reverse;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::config::Thresholds;
use crate::detect::activity::{Id, Slice};
use crate::detect::incident::{severity_of, Claim, Incident, IncidentMemory, Reason};

pub use crate::detect::incident::Severity;

/// How many destination addresses and ports an alert quotes as a sample.
pub const SAMPLE_SIZE: usize = 10;
/// How many ids of each kind (interfaces, instances, log streams, ...) an alert lists.
pub const ID_LIMIT: usize = 10;

/// What the incident looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Many ports probed (PORT_SCAN_THRESHOLD).
    PortScan,
    /// Many hosts probed (HOST_SWEEP_THRESHOLD).
    HostSweep,
    /// Other rejected probes.
    Probe,
    /// Only replies rejected: a network ACL without a rule for return traffic.
    BlockedResponses,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PortScan => "port-scan",
            Kind::HostSweep => "host-sweep",
            Kind::Probe => "probe",
            Kind::BlockedResponses => "blocked-responses",
        }
    }
}

/// Where a delivery came from, as far as it says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
}

/// A distinct count that is exact up to a cap, then a lower bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Count {
    pub count: usize,
    /// False when the count is "at least".
    pub exact: bool,
}

/// The ids of where records were captured, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Places {
    pub interfaces: Vec<String>,
    pub instances: Vec<String>,
    pub subnets: Vec<String>,
    pub vpcs: Vec<String>,
}

/// Who owns the sender's address, as EC2 says (filled in by the lookup, when it is on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// False when the address belongs to nothing visible (another account, released since).
    pub found: bool,
    pub interface_id: Option<String>,
    /// EC2's interface type: `interface`, `natGateway`, `lambda`, `network_load_balancer`,
    /// `vpc_endpoint`, ...
    pub interface_type: Option<String>,
    pub description: Option<String>,
    pub instance_id: Option<String>,
    /// The instance's `Name` tag.
    pub name: Option<String>,
    pub security_groups: Vec<String>,
    pub subnet_id: Option<String>,
    pub vpc_id: Option<String>,
    pub availability_zone: Option<String>,
}

/// One message's content about one source's incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// `<source>@<opened_at>`: the same for every message of the incident.
    pub incident: String,
    /// `<incident>/<severity>` for the opening and escalation messages, and
    /// `<incident>/reminder-<n>` for reminders: consumers can deduplicate on it.
    pub id: String,
    /// The id's last part, which the digest's briefs keep instead of the text.
    #[serde(skip)]
    pub label: Label,
    pub reason: Reason,
    pub severity: Severity,
    pub kind: Kind,
    pub source: IpAddr,
    /// Owners of the interfaces where the records were captured (the receivers' accounts for
    /// inbound rejects).
    pub accounts: Vec<String>,
    pub region: Option<String>,
    /// When the incident opened (Unix seconds).
    pub opened_at: u64,
    /// When the delivery that brought this message was processed (Unix seconds).
    pub detected_at: u64,
    /// Finding records, probes and responses together.
    pub records: u64,
    pub packets: u64,
    pub bytes: u64,
    pub probes: u64,
    pub responses: u64,
    /// Distinct hosts and ports probed.
    pub destinations: Count,
    pub ports: Count,
    /// Distinct clients the rejected replies went to, and the ports they came from.
    pub peers: Count,
    pub service_ports: Count,
    /// IANA protocol numbers seen (6 TCP, 17 UDP, 1 ICMP, ...).
    pub protocols: Vec<u8>,
    /// The lowest probed addresses and ports, at most [`SAMPLE_SIZE`] each.
    pub sample_destinations: Vec<IpAddr>,
    pub sample_ports: Vec<u16>,
    pub sample_peers: Vec<IpAddr>,
    pub sample_service_ports: Vec<u16>,
    /// Where the records were captured on a receiver's interface (or with no direction): the
    /// targets' side, not the sender's.
    pub rejected_at: Places,
    /// The sender's own interface, from records marked `egress`.
    pub sender: Places,
    /// Who owns the sender's address in EC2: `None` when it was not looked up (the lookup is
    /// off, or it failed or took too long).
    pub owner: Option<Owner>,
    pub log_group: Option<String>,
    pub log_streams: Vec<String>,
    /// Earliest start and latest end of the records (Unix seconds).
    pub first_seen: Option<u64>,
    pub last_seen: Option<u64>,
}

impl Alert {
    /// The alert for the message `claim` of `incident`.
    pub fn new(
        incident: &Incident,
        claim: Claim,
        thresholds: Thresholds,
        origin: &Origin,
    ) -> Alert {
        let s = &incident.seen;
        let severity = claim_severity(incident, claim, thresholds);
        let kind = if s.probes == 0 {
            Kind::BlockedResponses
        } else if s.ports.len() >= thresholds.port_scan {
            Kind::PortScan
        } else if s.destinations.len() >= thresholds.host_sweep {
            Kind::HostSweep
        } else {
            Kind::Probe
        };
        Alert {
            incident: incident.id(),
            id: claim_id(incident, claim),
            label: Label::of(incident, claim),
            reason: incident.reason(claim),
            severity,
            kind,
            source: s.source,
            accounts: texts(s.accounts.iter().take(ID_LIMIT)),
            region: None,
            opened_at: incident.opened_at,
            detected_at: incident.last_at,
            records: s.records,
            packets: s.packets,
            bytes: s.bytes,
            probes: s.probes,
            responses: s.responses().count,
            destinations: count(s.destinations.len(), s.destinations.is_exact()),
            ports: count(s.ports.len(), s.ports.is_exact()),
            peers: count(s.responses().peers.len(), s.responses().peers.is_exact()),
            service_ports: count(
                s.responses().service_ports.len(),
                s.responses().service_ports.is_exact(),
            ),
            protocols: s.protocols.lowest(256),
            sample_destinations: s.destinations.lowest(SAMPLE_SIZE),
            sample_ports: s.ports.lowest(SAMPLE_SIZE),
            sample_peers: s.responses().peers.lowest(SAMPLE_SIZE),
            sample_service_ports: s.responses().service_ports.lowest(SAMPLE_SIZE),
            rejected_at: places(s.rejected_at.iter()),
            sender: places(s.sender_at.iter()),
            owner: None,
            log_group: origin.log_group.clone(),
            log_streams: texts(s.log_streams.iter().take(ID_LIMIT)),
            first_seen: s.first_seen(),
            last_seen: s.last_seen(),
        }
    }

    /// The alert naming `region` (the flow log's, or the function's).
    pub fn in_region(mut self, region: Option<&str>) -> Alert {
        self.region = region.map(str::to_owned);
        self
    }

    /// The account to name: the only one, or the first of several.
    pub fn account(&self) -> &str {
        self.accounts.first().map_or("-", String::as_str)
    }
}

/// The severity a message claimed for `incident` announces.
pub fn claim_severity(incident: &Incident, claim: Claim, thresholds: Thresholds) -> Severity {
    match claim {
        Claim::Level(level) => level,
        Claim::Reminder => incident.severity(thresholds),
    }
}

/// The id of the message `claim` of `incident`: stable for an incident and level.
pub fn claim_id(incident: &Incident, claim: Claim) -> String {
    message_id(
        incident.seen.source,
        incident.opened_at,
        Label::of(incident, claim),
    )
}

/// `<source>@<opened_at>/<label>`: the id of a message (see [`Alert::id`]).
pub fn message_id(source: IpAddr, opened_at: u64, label: Label) -> String {
    format!("{source}@{opened_at}/{label}")
}

/// Which message of its incident a claim is: the last part of its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// The opening or an escalation: `high`, `medium`, `low`.
    Level(Severity),
    /// The reminder after the `n`th: `reminder-<n>`.
    Reminder(u64),
}

impl Label {
    /// The label of the message `claim` of `incident`.
    pub fn of(incident: &Incident, claim: Claim) -> Label {
        match claim {
            Claim::Level(level) => Label::Level(level),
            Claim::Reminder => Label::Reminder(incident.reminders),
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Level(level) => f.write_str(level.as_str()),
            Label::Reminder(n) => write!(f, "reminder-{n}"),
        }
    }
}

fn count(count: usize, exact: bool) -> Count {
    Count { count, exact }
}

fn texts<'a>(ids: impl Iterator<Item = &'a Id>) -> Vec<String> {
    ids.map(Id::to_string).collect()
}

/// Sorts ids into their kinds by their prefixes (`eni-`, `i-`, `subnet-`, `vpc-`).
fn places<'a>(ids: impl Iterator<Item = &'a Id>) -> Places {
    let mut p = Places::default();
    for id in ids {
        let list = if id.starts_with("eni-") {
            &mut p.interfaces
        } else if id.starts_with("i-") {
            &mut p.instances
        } else if id.starts_with("subnet-") {
            &mut p.subnets
        } else if id.starts_with("vpc-") {
            &mut p.vpcs
        } else {
            &mut p.interfaces
        };
        if list.len() < ID_LIMIT {
            list.push(id.to_string());
        }
    }
    p
}

/// The order claims go out in, as [`rank`] gives it.
pub type Rank = (Severity, Reverse<u64>, IpAddr);

/// What [`for_each_claim`] hands the claims of a delivery to: it makes something of each claim
/// when it is made (from the incident as it is then), and takes them in [`order`].
pub trait ClaimSink {
    type Made;
    fn make(&mut self, incident: &Incident, claim: Claim) -> Self::Made;
    fn rank(made: &Self::Made) -> Rank;
    /// Takes the next claim in order; false stops.
    fn take(&mut self, made: Self::Made) -> bool;
}

/// Makes an alert of each claim, for `each`.
struct Alerts<'a, F> {
    thresholds: Thresholds,
    origin: &'a Origin,
    region: Option<&'a str>,
    each: F,
}

impl<F: FnMut(Alert) -> bool> ClaimSink for Alerts<'_, F> {
    type Made = Alert;

    fn make(&mut self, incident: &Incident, claim: Claim) -> Alert {
        Alert::new(incident, claim, self.thresholds, self.origin).in_region(self.region)
    }

    fn rank(alert: &Alert) -> Rank {
        rank(alert)
    }

    fn take(&mut self, alert: Alert) -> bool {
        (self.each)(alert)
    }
}

/// Adds one delivery's slices to the incidents in `memory`, and hands the alerts they claim to
/// `each`, most severe first ([`order`]), naming `region`.
///
/// Slices of sources the memory holds go first: a full memory makes room by dropping the
/// least recently active incidents, and one of them must not be dropped by this delivery's
/// new sources just before its own slice is added to it (it would open again, and alert again).
///
/// The alerts are handed over one at a time instead of held together: a file with tens of
/// thousands of sources would otherwise hold an alert per source at once. Only the alerts of
/// sources the memory already holds (bounded by its size) are made first and held; a new
/// source's alert is known before it is made (its incident is the slice alone, opened now), so
/// new sources go in that order and the held alerts are merged in. `each` returns false to stop.
pub fn for_each_alert<A: Slice>(
    memory: &mut IncidentMemory,
    activities: Vec<A>,
    key: (Option<u64>, u64),
    origin: &Origin,
    region: Option<&str>,
    each: impl FnMut(Alert) -> bool,
) {
    let mut alerts = Alerts {
        thresholds: memory.policy().thresholds,
        origin,
        region,
        each,
    };
    for_each_claim(memory, activities, key, &mut alerts);
}

/// [`for_each_alert`] for any [`ClaimSink`]: what `sink` makes of each claim, handed back to
/// it in the same order.
pub fn for_each_claim<A: Slice, S: ClaimSink>(
    memory: &mut IncidentMemory,
    activities: Vec<A>,
    (batch, now): (Option<u64>, u64),
    sink: &mut S,
) {
    let mut activities = activities;
    let known = known_first(memory, &mut activities);
    let mut held: Vec<S::Made> = Vec::new();
    for activity in &activities[..known] {
        claimed(memory, activity.activity(), batch, now, sink, &mut held);
    }
    held.sort_by_key(S::rank);
    let mut held = held.into_iter().peekable();
    // One slice's claims, in a vector used again for each (most slices have one claim).
    let mut slice_made = Vec::new();
    for activity in activities.drain(known..) {
        claimed(memory, activity, batch, now, sink, &mut slice_made);
        for made in slice_made.drain(..) {
            while let Some(first) = held.next_if(|h| S::rank(h) < S::rank(&made)) {
                if !sink.take(first) {
                    return;
                }
            }
            if !sink.take(made) {
                return;
            }
        }
    }
    for made in held {
        if !sink.take(made) {
            return;
        }
    }
}

/// Puts the slices of sources `memory` holds first, then the new ones in the order of their
/// alerts (a new source's alert is its slice alone, opened now); sorted in place, since a copy
/// of tens of thousands of slices would double the memory. How many are known.
fn known_first<A: Slice>(memory: &IncidentMemory, slices: &mut [A]) -> usize {
    let thresholds = memory.policy().thresholds;
    slices.sort_by_cached_key(|a| {
        let a = a.activity();
        match memory.get(&a.source) {
            Some(_) => None,
            None => Some((severity_of(thresholds, a), Reverse(a.records), a.source)),
        }
    });
    slices
        .iter()
        .take_while(|a| memory.get(&a.activity().source).is_some())
        .count()
}

/// What `sink` makes of the claims of one slice, in [`order`], added to `made`.
fn claimed<S: ClaimSink>(
    memory: &mut IncidentMemory,
    activity: impl Slice,
    batch: Option<u64>,
    now: u64,
    sink: &mut S,
    made: &mut Vec<S::Made>,
) {
    let start = made.len();
    memory.observe_each(activity, batch, now, |incident, claim| {
        made.push(sink.make(incident, claim));
    });
    made[start..].sort_by_key(S::rank);
}

/// Orders alerts most severe first, then more records first, then by source address.
pub fn order(alerts: &mut [Alert]) {
    alerts.sort_by_key(rank);
}

/// The order alerts go out in: most severe first, then the busiest source.
pub fn rank(alert: &Alert) -> Rank {
    (alert.severity, Reverse(alert.records), alert.source)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::detect::activity::tests::finding;
    use crate::detect::activity::Activity;

    /// What [`for_each_alert`] hands over, made the plain way: every alert held, then ordered.
    fn alerts_from_memory(
        memory: &mut IncidentMemory,
        activities: &[Activity],
        batch: Option<u64>,
        now: u64,
        origin: &Origin,
        region: Option<&str>,
    ) -> Vec<Alert> {
        let mut activities: Vec<&Activity> = activities.iter().collect();
        known_first(memory, &mut activities);
        let mut alerts: Vec<Alert> = Vec::new();
        let mut made = Alerts {
            thresholds: memory.policy().thresholds,
            origin,
            region,
            each: |_| true,
        };
        for activity in activities {
            claimed(memory, activity, batch, now, &mut made, &mut alerts);
        }
        order(&mut alerts);
        alerts
    }

    const T: Thresholds = Thresholds {
        port_scan: 10,
        host_sweep: 10,
    };

    /// 10.0.3.7 probing 25 ports of 10.0.1.5, rejected at the target's interface.
    pub(crate) fn sample() -> Alert {
        let mut a = Activity::new("10.0.3.7".parse().unwrap());
        for port in 1..=25 {
            let mut f = finding("10.0.3.7", "10.0.1.5", port + 20);
            f.account = Some("210987654321");
            f.interface_id = Some("eni-0a1b2c3d4e5f60718");
            f.instance_id = Some("i-0123456789abcdef0");
            f.start = Some(1_764_195_240);
            f.end = Some(1_764_195_600);
            a.add(&f, None);
        }
        a.log_streams.insert("eni-0a1b2c3d4e5f60718-all".into());
        let mut incident = Incident::open(&a, 1_764_195_660);
        assert!(incident.try_claim(Claim::Level(Severity::High), 1, 1_764_195_660, 0));
        let origin = Origin {
            log_group: Some("/vpc/flow-logs".into()),
            log_stream: None,
        };
        let mut alert = Alert::new(&incident, Claim::Level(Severity::High), T, &origin);
        alert.region = Some("us-east-1".into());
        alert
    }

    /// Slices of `n` sources: source `i` probes `i % 13` ports on `i % 4 + 1` hosts, or (every
    /// seventh) only sends replies.
    fn slices(n: u8, shift: u16) -> Vec<Activity> {
        let mut agg = crate::detect::activity::Aggregator::default();
        for i in 0..n {
            let src = format!("10.0.0.{i}");
            for p in 0..(u16::from(i) % 13 + 1) {
                for h in 0..(i % 4 + 1) {
                    let mut f = finding(&src, &format!("10.0.1.{h}"), p + shift);
                    if i % 7 == 0 {
                        f.srcport = Some(443);
                        f.dstport = Some(50000);
                    }
                    agg.add(&f, None);
                }
            }
        }
        agg.finish(None)
    }

    #[test]
    fn alerts_handed_out_one_at_a_time_are_those_collected_in_the_same_order() {
        let policy = crate::config::IncidentPolicy {
            thresholds: T,
            window: 3600,
            cooldown: 0,
        };
        let (mut held, mut streamed) = (IncidentMemory::new(policy), IncidentMemory::new(policy));
        let origin = Origin::default();
        // Three deliveries: new incidents, the same sources escalating and reminding, and a
        // retry of the second delivery.
        for (n, (batch, shift)) in [(1u64, 0u16), (2, 9), (2, 9)].into_iter().enumerate() {
            let now = 1_764_195_300 + n as u64 * 60;
            let slices = slices(40, shift);
            let collected = alerts_from_memory(&mut held, &slices, Some(batch), now, &origin, None);
            let mut one_by_one = Vec::new();
            for_each_alert(
                &mut streamed,
                slices,
                (Some(batch), now),
                &origin,
                None,
                |a| {
                    one_by_one.push(a);
                    true
                },
            );
            assert!(collected.len() >= 30, "{n}: {}", collected.len());
            assert_eq!(one_by_one, collected, "delivery {n}");
        }
    }

    #[test]
    fn a_delivery_with_more_sources_than_the_memory_holds_alerts_for_every_one() {
        let policy = crate::config::IncidentPolicy {
            thresholds: T,
            window: 3600,
            cooldown: 3600,
        };
        let n = IncidentMemory::MAX_INCIDENTS as u32 + 500;
        // Highest address first: each new incident is the one a full memory would drop first.
        let slices: Vec<Activity> = (0..n)
            .rev()
            .map(|i| {
                let src = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
                let mut a = Activity::new(src.parse().unwrap());
                a.add(&finding(&src, "10.0.1.1", 22), None);
                a
            })
            .collect();
        let mut memory = IncidentMemory::new(policy);
        let alerts = alerts_from_memory(&mut memory, &slices, None, 100, &Origin::default(), None);
        assert_eq!(alerts.len(), n as usize);
        assert!(memory.size().0 <= IncidentMemory::MAX_INCIDENTS);
    }

    #[test]
    fn a_full_memory_does_not_drop_an_incident_that_this_delivery_goes_on_with() {
        let policy = crate::config::IncidentPolicy {
            thresholds: T,
            window: 3600,
            cooldown: 3600,
        };
        let origin = Origin::default();
        let slice = |src: &str, ports: u16| {
            let mut a = Activity::new(src.parse().unwrap());
            for p in 0..ports {
                a.add(&finding(src, "10.0.1.1", p), None);
            }
            a
        };
        // The memory is full; 10.0.0.1, a port scan, is the first incident it would drop.
        let mut first: Vec<Activity> = (0..IncidentMemory::MAX_INCIDENTS as u32 - 1)
            .map(|n| slice(&std::net::Ipv4Addr::from(0x0a01_0000 + n).to_string(), 1))
            .collect();
        first.push(slice("10.0.0.1", 20));
        let (mut held, mut streamed) = (IncidentMemory::new(policy), IncidentMemory::new(policy));
        let now = 1_764_195_300;
        alerts_from_memory(&mut held, &first, Some(1), now, &origin, None);
        for_each_alert(&mut streamed, first, (Some(1), now), &origin, None, |_| {
            true
        });
        // Then it probes one more port, while 2,000 new sources (busier ones, lower addresses)
        // push older incidents out.
        let mut second: Vec<Activity> = (0..2000u32)
            .map(|n| slice(&std::net::Ipv4Addr::from(0x0900_0000 + n).to_string(), 30))
            .collect();
        second.push(slice("10.0.0.1", 1));
        let collected = alerts_from_memory(&mut held, &second, Some(2), now + 60, &origin, None);
        let mut one_by_one = Vec::new();
        for_each_alert(
            &mut streamed,
            second,
            (Some(2), now + 60),
            &origin,
            None,
            |a| {
                one_by_one.push(a);
                true
            },
        );
        assert_eq!(collected.len(), 2000, "no second opening for 10.0.0.1");
        assert_eq!(one_by_one, collected);
    }

    fn incident(ports: u16, hosts: u8) -> Incident {
        let mut a = Activity::new("10.0.0.1".parse().unwrap());
        for p in 0..ports {
            for h in 0..hosts {
                let mut f = finding("10.0.0.1", &format!("10.0.1.{h}"), p);
                f.interface_id = Some("eni-0aaa");
                f.instance_id = Some("i-0bbb");
                a.add(&f, None);
            }
        }
        Incident::open(&a, 1_764_195_300)
    }

    #[test]
    fn ten_ports_make_a_port_scan_and_ten_hosts_a_host_sweep() {
        let kind = |i: &Incident| {
            let level = i.severity(T);
            Alert::new(i, Claim::Level(level), T, &Origin::default()).kind
        };
        assert_eq!(kind(&incident(10, 1)), Kind::PortScan);
        assert_eq!(kind(&incident(1, 10)), Kind::HostSweep);
        assert_eq!(kind(&incident(9, 9)), Kind::Probe);
    }

    #[test]
    fn ids_are_stable_for_an_incident_and_level() {
        let mut i = incident(1, 1);
        assert!(i.try_claim(Claim::Level(Severity::Medium), 1, 0, 0));
        let a = Alert::new(&i, Claim::Level(Severity::Medium), T, &Origin::default());
        assert_eq!(a.incident, "10.0.0.1@1764195300");
        assert_eq!(a.id, "10.0.0.1@1764195300/medium");
        assert_eq!(a.reason, Reason::Opened);
        assert!(i.try_claim(Claim::Reminder, 1, 10, 0));
        let r = Alert::new(&i, Claim::Reminder, T, &Origin::default());
        assert_eq!(r.id, "10.0.0.1@1764195300/reminder-1");
        assert_eq!((r.reason, r.severity), (Reason::Reminder, Severity::Medium));
    }

    #[test]
    fn capture_ids_are_sorted_by_kind_under_rejected_at() {
        let i = incident(1, 1);
        let a = Alert::new(&i, Claim::Level(Severity::Medium), T, &Origin::default());
        assert_eq!(a.rejected_at.interfaces, ["eni-0aaa"]);
        assert_eq!(a.rejected_at.instances, ["i-0bbb"]);
        assert_eq!(a.sender, Places::default());
    }

    #[test]
    fn samples_are_bounded_and_lowest_first() {
        let i = incident(1000, 1);
        let a = Alert::new(&i, Claim::Level(Severity::High), T, &Origin::default());
        assert_eq!(
            a.ports,
            Count {
                count: 1000,
                exact: true
            }
        );
        assert_eq!(a.sample_ports, (0..10).collect::<Vec<u16>>());
    }
}
