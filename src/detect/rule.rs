//! The rule: which flow records are findings.
//!
//! A record is a finding when its `log-status` (if the format has one) is `OK`, its `action` is
//! `REJECT`, and its source (`pkt-srcaddr` when present, else `srcaddr`) lies inside one of the
//! VPC CIDRs and none of the ignored ones. Internet traffic rejected at the edge is noise; a
//! reject whose source is one of our own hosts is the alert worth waking someone for.
//!
//! A finding is also told apart as a probe or a *response*: a server's reply dropped by a
//! stateless network ACL that has no rule for return traffic is recorded with the server as
//! the source. `tcp-flags` with SYN-ACK says so; without flags, a source port below 1024 to a
//! destination port of 1024 or above (a service answering a client's ephemeral port) does.

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use crate::config::Config;
use crate::flow::record::FlowRecord;

/// What one record turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// A field the rule needs cannot be read (a bad address, a port above 65535, ...).
    Malformed,
    /// Accepted traffic, a NODATA record, or anything else that is not a reject.
    Pass,
    /// A SKIPDATA record: the flow log lost records during the interval (a monitoring gap).
    SkippedData,
    /// A reject whose source is outside the VPC or ignored.
    ExternalReject,
    /// A reject sent by one of the VPC's own addresses.
    Finding(Finding<'a>),
}

/// An internal reject, with the fields an alert reports. Strings borrow from the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding<'a> {
    /// The record's `account-id`, when the format has one and it is not `-`.
    pub account: Option<&'a str>,
    pub source: IpAddr,
    pub destination: Option<IpAddr>,
    pub srcport: Option<u16>,
    pub dstport: Option<u16>,
    pub protocol: Option<u8>,
    pub packets: u64,
    pub bytes: u64,
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub interface_id: Option<&'a str>,
    pub vpc_id: Option<&'a str>,
    pub subnet_id: Option<&'a str>,
    pub instance_id: Option<&'a str>,
    /// OR of the TCP flags over the interval, when the format has `tcp-flags` and it is not `-`.
    pub tcp_flags: Option<u16>,
    /// `flow-direction`: which side's interface recorded the reject.
    pub direction: Option<Direction>,
}

/// Which way the traffic went at the interface that recorded it (`flow-direction`, version 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Arriving at the interface: the interface is the receiver's.
    Ingress,
    /// Leaving the interface: the interface is the sender's own.
    Egress,
}

/// A finding apart from the text it was read from: its strings kept as where they lie in that
/// text, so that it can go to another thread with the text and be joined to it there.
#[derive(Debug, Clone)]
pub struct Detached {
    /// The finding with its strings left out.
    bare: Finding<'static>,
    /// Where the account, interface, VPC, subnet and instance ids lie in the text.
    spans: [Option<(u32, u32)>; 5],
}

impl Finding<'_> {
    /// This finding apart from `text`, the text its strings borrow from; `None` when one of
    /// them lies elsewhere, or past 4 GiB.
    pub fn detach(&self, text: &[u8]) -> Option<Detached> {
        let span = |s: Option<&str>| -> Option<Option<(u32, u32)>> {
            let Some(s) = s else { return Some(None) };
            let start = (s.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
            let end = start + s.len();
            (end <= text.len()).then_some(())?;
            Some(Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?)))
        };
        Some(Detached {
            spans: [
                span(self.account)?,
                span(self.interface_id)?,
                span(self.vpc_id)?,
                span(self.subnet_id)?,
                span(self.instance_id)?,
            ],
            bare: Finding {
                account: None,
                interface_id: None,
                vpc_id: None,
                subnet_id: None,
                instance_id: None,
                ..*self
            },
        })
    }
}

impl Detached {
    /// The finding again, its strings borrowed from the text it was detached from: `text`
    /// gives the string at a span of it. `None` when it gives none (the text is not that text).
    pub fn attach<'a>(
        &self,
        text: impl Fn(usize, usize) -> Option<&'a str>,
    ) -> Option<Finding<'a>> {
        let mut strings = [None; 5];
        for (string, span) in strings.iter_mut().zip(self.spans) {
            if let Some((start, end)) = span {
                *string = Some(text(start as usize, end as usize)?);
            }
        }
        let [account, interface_id, vpc_id, subnet_id, instance_id] = strings;
        Some(Finding {
            account,
            interface_id,
            vpc_id,
            subnet_id,
            instance_id,
            ..self.bare
        })
    }
}

/// SYN-ACK: the flags of a reply to a connection request.
const SYN_ACK: u16 = 18;

impl Finding<'_> {
    /// Whether this is a reply (a server answering a client) rather than a probe: SYN-ACK in
    /// the flags, or, when there are no flags, a well-known source port answering an ephemeral
    /// destination port.
    pub fn is_response(&self) -> bool {
        match self.tcp_flags {
            Some(flags) => flags & SYN_ACK == SYN_ACK,
            None => matches!(
                (self.srcport, self.dstport),
                (Some(src), Some(dst)) if src < 1024 && dst >= 1024
            ),
        }
    }
}

/// Applies the rule to one record.
pub fn classify<'a>(record: &FlowRecord<'_, 'a>, config: &Config) -> Verdict<'a> {
    let format = &config.format;
    if let Some(status) = format.log_status {
        match record.raw(status) {
            "OK" => {}
            "SKIPDATA" => return Verdict::SkippedData,
            _ => return Verdict::Pass,
        }
    }
    if record.raw(format.action) != "REJECT" {
        return Verdict::Pass;
    }
    let Ok(source) = preferred_address(record, format.pkt_srcaddr, format.srcaddr) else {
        return Verdict::Malformed;
    };
    let Some(source) = source else {
        return Verdict::ExternalReject; // no source address at all: nothing to attribute
    };
    if !config.is_internal_source(source) {
        return Verdict::ExternalReject;
    }
    match read_finding(record, config, source) {
        Some(finding) => Verdict::Finding(finding),
        None => Verdict::Malformed,
    }
}

fn read_finding<'a>(
    record: &FlowRecord<'_, 'a>,
    config: &Config,
    source: IpAddr,
) -> Option<Finding<'a>> {
    let f = &config.format;
    Some(Finding {
        account: record.get(f.account_id),
        source,
        destination: preferred_address(record, f.pkt_dstaddr, f.dstaddr).ok()?,
        srcport: number(record, f.srcport)?,
        dstport: number(record, f.dstport)?,
        protocol: number(record, f.protocol)?,
        packets: number(record, f.packets)?.unwrap_or(0),
        bytes: number(record, f.bytes)?.unwrap_or(0),
        start: number(record, f.start)?,
        end: number(record, f.end)?,
        interface_id: record.get(f.interface_id),
        vpc_id: record.get(f.vpc_id),
        subnet_id: record.get(f.subnet_id),
        instance_id: record.get(f.instance_id),
        tcp_flags: number(record, f.tcp_flags)?,
        direction: match record.get(f.flow_direction) {
            Some("ingress") => Some(Direction::Ingress),
            Some("egress") => Some(Direction::Egress),
            _ => None,
        },
    })
}

/// The packet-level address when the format has it and it is not `-`, else the interface-level
/// one. `Err` when the chosen field is not an address.
fn preferred_address(
    record: &FlowRecord<'_, '_>,
    packet: Option<usize>,
    interface: Option<usize>,
) -> Result<Option<IpAddr>, ()> {
    match record.get(packet).or_else(|| record.get(interface)) {
        None => Ok(None),
        Some(text) => parse_address(text).map(Some).ok_or(()),
    }
}

/// Parses an address and folds IPv4-mapped IPv6 (`::ffff:10.0.0.1`) into IPv4, so that the
/// same host is matched and reported the same way whichever form the record uses.
pub fn parse_address(text: &str) -> Option<IpAddr> {
    match parse_ipv4(text.as_bytes()) {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => IpAddr::from_str(text).ok().map(|a| a.to_canonical()),
    }
}

/// Dotted-quad IPv4 as flow logs write it, read in one pass: four decimal octets of one to
/// three digits, at most 255, without a leading zero (the standard library's rules). `None`
/// for anything else, which the standard library then reads (IPv6) or refuses.
fn parse_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    if !(7..=15).contains(&text.len()) {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (k, octet) in octets.iter_mut().enumerate() {
        if k > 0 {
            if text.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let (mut digits, mut value) = (0, 0u32);
        while let Some(d) = text
            .get(at + digits)
            .filter(|d| d.is_ascii_digit() && digits < 4)
        {
            value = value * 10 + u32::from(d - b'0');
            digits += 1;
        }
        if digits == 0 || digits > 3 || value > 255 || (digits > 1 && text[at] == b'0') {
            return None;
        }
        *octet = value as u8;
        at += digits;
    }
    (at == text.len()).then_some(Ipv4Addr::from(octets))
}

/// `Some(None)` for an absent field, `Some(Some(n))` for a number, `None` when the field is
/// present but not a number of type `T` (malformed).
fn number<T: FromStr>(record: &FlowRecord<'_, '_>, index: Option<usize>) -> Option<Option<T>> {
    match record.get(index) {
        None => Some(None),
        Some(text) => text.parse().ok().map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::record::RecordSplitter;

    fn config(vpc: &str, format: Option<&str>) -> Config {
        let mut config = Config::with_vpc_cidrs(vpc).unwrap();
        if let Some(f) = format {
            config.format = crate::flow::format::FlowFormat::parse(f).unwrap();
        }
        config
    }

    fn verdict<'a>(line: &'a str, config: &Config) -> Verdict<'a> {
        let mut splitter = RecordSplitter::default();
        match splitter.split(line, &config.format) {
            Some(record) => classify(&record, config),
            None => Verdict::Malformed,
        }
    }

    // The AWS documentation's sample records.
    const ACCEPT: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
    const REJECT: &str = "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK";
    const NODATA: &str =
        "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA";
    const SKIPDATA: &str =
        "2 123456789010 eni-11111111aaaaaaaaa - - - - - - - 1431280876 1431280934 - SKIPDATA";

    #[test]
    fn addresses_read_as_the_standard_library_reads_them() {
        for text in [
            "10.0.1.5",
            "255.255.255.255",
            "0.0.0.0",
            "256.1.1.1",
            "10.0.01.5",
            "10.0.0",
            "10.0.0.1.",
            "1.2.3.4.5",
            "10..0.1",
            "1000.0.0.1",
            " 10.0.0.1",
            "10.0.0.1a",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "0010.0.0.1",
            "10.0.0.00",
        ] {
            let std = IpAddr::from_str(text).ok().map(|a| a.to_canonical());
            assert_eq!(parse_address(text), std, "{text}");
        }
    }

    #[test]
    fn a_reject_from_inside_the_vpc_is_a_finding_with_its_fields() {
        let c = config("172.31.0.0/16", None);
        let Verdict::Finding(f) = verdict(REJECT, &c) else {
            panic!("not a finding")
        };
        assert_eq!(f.account, Some("123456789010"));
        assert_eq!(f.source, "172.31.9.69".parse::<IpAddr>().unwrap());
        assert_eq!(f.destination, Some("172.31.9.12".parse().unwrap()));
        assert_eq!(f.dstport, Some(3389));
        assert_eq!((f.packets, f.bytes), (20, 4249));
        assert_eq!((f.start, f.end), (Some(1418530010), Some(1418530070)));
        assert_eq!(f.interface_id, Some("eni-1235b8ca123456789"));
    }

    #[test]
    fn a_reject_from_outside_the_vpc_is_not_a_finding() {
        let c = config("10.0.0.0/16", None);
        assert_eq!(verdict(REJECT, &c), Verdict::ExternalReject);
    }

    #[test]
    fn accepted_nodata_and_skipdata_records_pass() {
        let c = config("172.31.0.0/16", None);
        for line in [ACCEPT, NODATA] {
            assert_eq!(verdict(line, &c), Verdict::Pass, "{line}");
        }
        assert_eq!(verdict(SKIPDATA, &c), Verdict::SkippedData);
    }

    #[test]
    fn a_reject_with_a_log_status_other_than_ok_is_not_a_finding() {
        let c = config("172.31.0.0/16", None);
        assert_eq!(
            verdict(&REJECT.replace(" OK", " SKIPDATA"), &c),
            Verdict::SkippedData
        );
        assert_eq!(
            verdict(&REJECT.replace(" OK", " NODATA"), &c),
            Verdict::Pass
        );
    }

    #[test]
    fn pkt_srcaddr_wins_over_srcaddr_unless_it_is_a_dash() {
        let format = "${srcaddr} ${pkt-srcaddr} ${dstaddr} ${pkt-dstaddr} ${action}";
        let c = config("10.0.0.0/16", Some(format));
        // Behind a NAT gateway the interface sees the gateway; the packet names the host.
        let Verdict::Finding(f) = verdict("203.0.113.5 10.0.1.9 10.0.2.2 10.0.3.3 REJECT", &c)
        else {
            panic!("not a finding")
        };
        assert_eq!(f.source, "10.0.1.9".parse::<IpAddr>().unwrap());
        assert_eq!(f.destination, Some("10.0.3.3".parse().unwrap()));
        assert_eq!(
            verdict("10.0.1.9 203.0.113.5 10.0.2.2 - REJECT", &c),
            Verdict::ExternalReject
        );
        let Verdict::Finding(f) = verdict("10.0.1.9 - 10.0.2.2 - REJECT", &c) else {
            panic!("not a finding")
        };
        assert_eq!(f.source, "10.0.1.9".parse::<IpAddr>().unwrap());
        assert_eq!(f.destination, Some("10.0.2.2".parse().unwrap()));
    }

    #[test]
    fn ipv6_addresses_compare_as_addresses_not_strings() {
        let c = config(
            "2600:1f18:0:0::/56",
            Some("${srcaddr} ${dstaddr} ${action}"),
        );
        let Verdict::Finding(f) = verdict("2600:1f18::5 2600:1f18:0:0::6 REJECT", &c) else {
            panic!("not a finding")
        };
        assert_eq!(f.source.to_string(), "2600:1f18::5");
    }

    #[test]
    fn ipv4_mapped_ipv6_sources_match_ipv4_cidrs() {
        let c = config("10.0.0.0/8", Some("${srcaddr} ${action}"));
        let Verdict::Finding(f) = verdict("::ffff:10.1.2.3 REJECT", &c) else {
            panic!("not a finding")
        };
        assert_eq!(f.source.to_string(), "10.1.2.3");
    }

    #[test]
    fn unreadable_fields_of_a_finding_make_it_malformed() {
        let c = config("172.31.0.0/16", None);
        assert_eq!(
            verdict(&REJECT.replace("172.31.9.69", "172.31.9"), &c),
            Verdict::Malformed
        );
        assert_eq!(
            verdict(&REJECT.replace(" 3389 ", " 70000 "), &c),
            Verdict::Malformed
        );
        assert_eq!(
            verdict(&REJECT.replace(" 4249 ", " 99999999999999999999999 "), &c),
            Verdict::Malformed
        );
        assert_eq!(
            verdict(&REJECT.replace(" 3389 ", " http "), &c),
            Verdict::Malformed
        );
    }

    #[test]
    fn syn_ack_in_the_flags_makes_a_response_and_syn_alone_a_probe() {
        let c = config(
            "10.0.0.0/16",
            Some("${srcaddr} ${dstaddr} ${srcport} ${dstport} ${tcp-flags} ${flow-direction} ${action}"),
        );
        let finding = |line| match verdict(line, &c) {
            Verdict::Finding(f) => f,
            other => panic!("{other:?}"),
        };
        let reply = finding("10.0.1.5 10.0.2.9 443 50123 18 egress REJECT");
        assert!(reply.is_response());
        assert_eq!(reply.direction, Some(Direction::Egress));
        // A probe of a high port from a low port: the flags say SYN, so it is a probe.
        assert!(!finding("10.0.1.5 10.0.2.9 80 8080 2 ingress REJECT").is_response());
        // Invalid flags (`-`): the ports decide.
        assert!(finding("10.0.1.5 10.0.2.9 443 50123 - - REJECT").is_response());
    }

    #[test]
    fn without_flags_a_low_source_port_to_an_ephemeral_port_is_a_response() {
        let c = config("172.31.0.0/16", None);
        let is_response = |line: &str| match verdict(line, &c) {
            Verdict::Finding(f) => f.is_response(),
            other => panic!("{other:?}"),
        };
        assert!(is_response(&REJECT.replace(" 49761 3389 ", " 443 49761 ")));
        assert!(!is_response(REJECT), "49761 -> 3389 is a probe");
        assert!(!is_response(&REJECT.replace(" 49761 3389 ", " 123 123 ")));
    }

    #[test]
    fn dashes_in_numeric_fields_of_a_finding_count_as_zero_or_absent() {
        let c = config("172.31.0.0/16", None);
        let line = "2 123456789010 eni-1 172.31.9.69 - - - - - - - - REJECT OK";
        let Verdict::Finding(f) = verdict(line, &c) else {
            panic!("not a finding")
        };
        assert_eq!((f.packets, f.bytes, f.dstport, f.start), (0, 0, None, None));
        assert_eq!(f.destination, None);
    }
}
