//! Alerts: the findings of one input grouped per (account, source).
//!
//! One alert tells a responder which of their hosts is sending traffic the network rejects, how
//! much, to how many hosts and ports, and when. Everything in it is bounded in size, so a
//! host sweeping a /16 yields an alert of the same size as one probing a single port.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::detect::rule::Finding;

/// How many destination addresses and ports an alert quotes as a sample.
pub const SAMPLE_SIZE: usize = 10;
/// How many distinct VPC, subnet and instance ids an alert lists.
const ID_LIMIT: usize = 10;
/// How many interface ids an alert lists. A source address sits behind very few interfaces;
/// the cap only keeps hostile input from growing the alert without bound.
const INTERFACE_LIMIT: usize = 1000;

/// `high` for port scans and host sweeps, `medium` for any other internal reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
        }
    }
}

/// Where the findings of an input came from, as far as the input says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
}

/// One source that sent rejected traffic, with what a responder needs to act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub severity: Severity,
    pub account: String,
    pub source: IpAddr,
    /// Finding records.
    pub records: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Distinct destination addresses.
    pub destinations: usize,
    /// Distinct destination ports.
    pub ports: usize,
    pub interfaces: Vec<String>,
    pub first_seen: Option<u64>,
    pub last_seen: Option<u64>,
    pub vpc_ids: Vec<String>,
    pub subnet_ids: Vec<String>,
    pub instance_ids: Vec<String>,
    /// IANA protocol numbers seen (6 TCP, 17 UDP, 1 ICMP, ...).
    pub protocols: Vec<u8>,
    /// The lowest destination addresses, at most [`SAMPLE_SIZE`].
    pub sample_destinations: Vec<IpAddr>,
    /// The lowest destination ports, at most [`SAMPLE_SIZE`].
    pub sample_ports: Vec<u16>,
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
    /// Alerts for this source held back by the cooldown since the last one sent.
    pub suppressed: u64,
}

/// Severity thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub port_scan: usize,
    pub host_sweep: usize,
}

/// Collects findings and turns them into ordered alerts.
#[derive(Debug, Default)]
pub struct Aggregator {
    // Keyed by source first so that adding a finding allocates nothing once the group exists;
    // a source nearly always belongs to one account.
    groups: HashMap<IpAddr, Vec<Group>>,
}

#[derive(Debug)]
struct Group {
    account: String,
    records: u64,
    packets: u64,
    bytes: u64,
    destinations: HashSet<IpAddr>,
    ports: HashSet<u16>,
    protocols: BTreeSet<u8>,
    interfaces: BTreeSet<String>,
    vpc_ids: BTreeSet<String>,
    subnet_ids: BTreeSet<String>,
    instance_ids: BTreeSet<String>,
    first_seen: Option<u64>,
    last_seen: Option<u64>,
}

impl Aggregator {
    /// Adds a finding; `owner` is the account to use when the record names none.
    pub fn add(&mut self, finding: &Finding<'_>, owner: Option<&str>) {
        let account = finding.account.or(owner).unwrap_or("-");
        let groups = self.groups.entry(finding.source).or_default();
        let group = match groups.iter().position(|g| g.account == account) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(Group::new(account));
                groups.last_mut().expect("just pushed")
            }
        };
        group.add(finding);
    }

    /// The alerts, `high` first, then more records first, then by source address.
    pub fn finish(self, thresholds: Thresholds, origin: &Origin) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = self
            .groups
            .into_iter()
            .flat_map(|(source, groups)| {
                groups
                    .into_iter()
                    .map(move |g| g.into_alert(source, thresholds, origin))
            })
            .collect();
        alerts.sort_by(|a, b| {
            a.severity
                .cmp(&b.severity)
                .then(b.records.cmp(&a.records))
                .then(a.source.cmp(&b.source))
                .then_with(|| a.account.cmp(&b.account))
        });
        alerts
    }
}

impl Group {
    fn new(account: &str) -> Group {
        Group {
            account: account.to_owned(),
            records: 0,
            packets: 0,
            bytes: 0,
            destinations: HashSet::new(),
            ports: HashSet::new(),
            protocols: BTreeSet::new(),
            interfaces: BTreeSet::new(),
            vpc_ids: BTreeSet::new(),
            subnet_ids: BTreeSet::new(),
            instance_ids: BTreeSet::new(),
            first_seen: None,
            last_seen: None,
        }
    }

    fn add(&mut self, f: &Finding<'_>) {
        self.records += 1;
        self.packets = self.packets.saturating_add(f.packets);
        self.bytes = self.bytes.saturating_add(f.bytes);
        if let Some(d) = f.destination {
            self.destinations.insert(d);
        }
        if let Some(p) = f.dstport {
            self.ports.insert(p);
        }
        if let Some(p) = f.protocol {
            self.protocols.insert(p);
        }
        insert_bounded(&mut self.interfaces, f.interface_id, INTERFACE_LIMIT);
        insert_bounded(&mut self.vpc_ids, f.vpc_id, ID_LIMIT);
        insert_bounded(&mut self.subnet_ids, f.subnet_id, ID_LIMIT);
        insert_bounded(&mut self.instance_ids, f.instance_id, ID_LIMIT);
        if let Some(start) = f.start {
            self.first_seen = Some(self.first_seen.map_or(start, |s| s.min(start)));
        }
        if let Some(end) = f.end {
            self.last_seen = Some(self.last_seen.map_or(end, |e| e.max(end)));
        }
    }

    fn into_alert(self, source: IpAddr, t: Thresholds, origin: &Origin) -> Alert {
        let severity = if self.ports.len() >= t.port_scan || self.destinations.len() >= t.host_sweep
        {
            Severity::High
        } else {
            Severity::Medium
        };
        Alert {
            severity,
            account: self.account,
            source,
            records: self.records,
            packets: self.packets,
            bytes: self.bytes,
            destinations: self.destinations.len(),
            ports: self.ports.len(),
            interfaces: self.interfaces.into_iter().collect(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            vpc_ids: self.vpc_ids.into_iter().collect(),
            subnet_ids: self.subnet_ids.into_iter().collect(),
            instance_ids: self.instance_ids.into_iter().collect(),
            protocols: self.protocols.into_iter().collect(),
            sample_destinations: lowest(self.destinations),
            sample_ports: lowest(self.ports),
            log_group: origin.log_group.clone(),
            log_stream: origin.log_stream.clone(),
            suppressed: 0,
        }
    }
}

fn insert_bounded(set: &mut BTreeSet<String>, value: Option<&str>, limit: usize) {
    if let Some(v) = value {
        if set.len() < limit && !set.contains(v) {
            set.insert(v.to_owned());
        }
    }
}

fn lowest<T: Ord>(values: HashSet<T>) -> Vec<T> {
    let mut v: Vec<T> = values.into_iter().collect();
    v.sort_unstable();
    v.truncate(SAMPLE_SIZE);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        port_scan: 10,
        host_sweep: 10,
    };

    fn finding(source: &str, dst: &str, port: u16) -> Finding<'static> {
        Finding {
            account: Some("111122223333"),
            source: source.parse().unwrap(),
            destination: Some(dst.parse().unwrap()),
            dstport: Some(port),
            protocol: Some(6),
            packets: 2,
            bytes: 120,
            start: Some(100),
            end: Some(160),
            interface_id: Some("eni-b"),
            vpc_id: None,
            subnet_id: None,
            instance_id: None,
        }
    }

    #[test]
    fn findings_of_one_source_make_one_alert_with_sums_and_distinct_counts() {
        let mut agg = Aggregator::default();
        agg.add(&finding("10.0.0.5", "10.0.1.1", 22), None);
        agg.add(&finding("10.0.0.5", "10.0.1.1", 22), None);
        let mut other = finding("10.0.0.5", "10.0.1.2", 23);
        other.interface_id = Some("eni-a");
        other.start = Some(90);
        other.end = Some(200);
        other.packets = 0;
        agg.add(&other, None);
        let alerts = agg.finish(T, &Origin::default());
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!((a.records, a.packets, a.bytes), (3, 4, 360));
        assert_eq!((a.destinations, a.ports), (2, 2));
        assert_eq!(a.interfaces, ["eni-a", "eni-b"]);
        assert_eq!((a.first_seen, a.last_seen), (Some(90), Some(200)));
        assert_eq!(a.severity, Severity::Medium);
    }

    #[test]
    fn ten_ports_make_a_port_scan_and_ten_hosts_a_host_sweep() {
        let mut agg = Aggregator::default();
        for port in 0..10 {
            agg.add(&finding("10.0.0.1", "10.0.1.1", port), None);
        }
        for host in 0..10 {
            agg.add(&finding("10.0.0.2", &format!("10.0.2.{host}"), 443), None);
        }
        for port in 0..9 {
            agg.add(&finding("10.0.0.3", &format!("10.0.3.{port}"), port), None);
        }
        let alerts = agg.finish(T, &Origin::default());
        let severity: Vec<_> = alerts
            .iter()
            .map(|a| (a.source.to_string(), a.severity))
            .collect();
        assert_eq!(
            severity,
            [
                ("10.0.0.1".to_string(), Severity::High),
                ("10.0.0.2".to_string(), Severity::High),
                ("10.0.0.3".to_string(), Severity::Medium),
            ]
        );
    }

    #[test]
    fn samples_are_bounded_and_lowest_first() {
        let mut agg = Aggregator::default();
        for port in (0..1000).rev() {
            agg.add(
                &finding(
                    "10.0.0.1",
                    &format!("10.0.{}.{}", port / 256, port % 256),
                    port,
                ),
                None,
            );
        }
        let a = &agg.finish(T, &Origin::default())[0];
        assert_eq!(a.ports, 1000);
        assert_eq!(a.sample_ports, (0..10).collect::<Vec<u16>>());
        assert_eq!(a.sample_destinations.len(), SAMPLE_SIZE);
        assert_eq!(a.sample_destinations[0].to_string(), "10.0.0.0");
    }

    #[test]
    fn the_account_falls_back_to_the_owner_then_to_a_dash() {
        let mut agg = Aggregator::default();
        let mut f = finding("10.0.0.1", "10.0.1.1", 22);
        f.account = None;
        agg.add(&f, Some("999988887777"));
        agg.add(&finding("10.0.0.1", "10.0.1.1", 22), Some("999988887777"));
        let mut g = finding("10.0.0.2", "10.0.1.1", 22);
        g.account = None;
        agg.add(&g, None);
        let alerts = agg.finish(T, &Origin::default());
        let accounts: Vec<_> = alerts.iter().map(|a| a.account.as_str()).collect();
        assert_eq!(accounts, ["111122223333", "999988887777", "-"]);
    }

    #[test]
    fn order_is_high_first_then_more_records_then_source_address() {
        let mut agg = Aggregator::default();
        agg.add(&finding("10.0.0.10", "10.0.1.1", 22), None);
        agg.add(&finding("10.0.0.9", "10.0.1.1", 22), None);
        agg.add(&finding("10.0.0.200", "10.0.1.1", 22), None);
        agg.add(&finding("10.0.0.200", "10.0.1.1", 22), None);
        for port in 0..10 {
            agg.add(&finding("10.0.0.250", "10.0.1.1", port), None);
        }
        let order: Vec<_> = agg
            .finish(T, &Origin::default())
            .iter()
            .map(|a| a.source.to_string())
            .collect();
        assert_eq!(order, ["10.0.0.250", "10.0.0.200", "10.0.0.9", "10.0.0.10"]);
    }
}
