//! Rendering: the words a person reads about an alert.
//!
//! Every alert becomes a subject line (printable ASCII, at most 99 characters), a text message
//! (one SMS segment: at most 160 GSM-7 characters), an email report and a JSON object. The
//! command line prints the same texts the Lambda publishes.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::detect::activity::seconds;

use crate::detect::alert::{Alert, Count, Kind, Places, Severity};
use crate::detect::incident::Reason;

/// The longest subject SNS accepts is 99 characters (under 100).
pub const SUBJECT_MAX: usize = 99;
/// One SMS segment of GSM-7 characters.
pub const SMS_MAX: usize = 160;
/// The alert topic's display name. SNS puts it, upper-cased, and `> ` in front of every text
/// it sends from the topic; the template's `DisplayName` is this value (a test compares them).
pub const TOPIC_DISPLAY_NAME: &str = "VPC Alert";
/// What is left of one segment for the text once SNS has put its prefix in front.
pub const SMS_TEXT_MAX: usize = SMS_MAX - TOPIC_DISPLAY_NAME.len() - "> ".len();

/// The prefix SNS puts in front of every text sent from the topic: `VPC ALERT> `.
pub fn sms_prefix() -> String {
    format!("{}> ", TOPIC_DISPLAY_NAME.to_ascii_uppercase())
}

/// `[HIGH] Port scan from web-7 (10.0.3.7): 25 ports on 1 host - 210987654321 us-east-1`: what,
/// who, where. An escalation says `[HIGH, escalated]`, a reminder `[HIGH, ongoing]`.
pub fn subject(alert: &Alert) -> String {
    let text = format!(
        "[{}] {} from {}: {} - {}",
        level_tag(alert),
        kind_title(alert.kind),
        who(alert),
        what(alert),
        whereabouts(alert)
    );
    subject_line(&text)
}

fn level_tag(alert: &Alert) -> String {
    let level = alert.severity.as_str().to_ascii_uppercase();
    match alert.reason {
        Reason::Opened => level,
        Reason::Escalated => format!("{level}, escalated"),
        Reason::Reminder => format!("{level}, ongoing"),
    }
}

/// `Port scan`, `Host sweep`, `Probe`, `Blocked responses`.
pub fn kind_title(kind: Kind) -> &'static str {
    match kind {
        Kind::PortScan => "Port scan",
        Kind::HostSweep => "Host sweep",
        Kind::Probe => "Probe",
        Kind::BlockedResponses => "Blocked responses",
    }
}

/// The sender as a responder knows it: `web-7 (10.0.3.7)`, `i-0abc (10.0.3.7)`, `NAT gateway
/// (10.0.3.7)`, or the address alone.
pub fn who(alert: &Alert) -> String {
    let owner = alert.owner.as_ref().filter(|o| o.found);
    let label = owner.and_then(|o| {
        o.name
            .clone()
            .or_else(|| o.instance_id.clone())
            .or_else(|| o.interface_type.as_deref().map(interface_type_name))
    });
    match label {
        Some(label) => format!("{label} ({})", alert.source),
        None => alert.source.to_string(),
    }
}

/// A readable name for an EC2 interface type.
fn interface_type_name(kind: &str) -> String {
    match kind {
        "natGateway" | "nat_gateway" => "NAT gateway".into(),
        "lambda" => "Lambda function".into(),
        "network_load_balancer" | "gateway_load_balancer" | "load_balancer" => {
            "load balancer".into()
        }
        "vpc_endpoint" | "gateway_load_balancer_endpoint" => "VPC endpoint".into(),
        "interface" => "network interface".into(),
        other => other.replace('_', " "),
    }
}

/// What it did: `25 ports on 1 host`, `1 port on 12 hosts`, `port 443 to 12 clients`.
pub fn what(alert: &Alert) -> String {
    if alert.probes == 0 {
        let ports = match alert.sample_service_ports.as_slice() {
            [one] if alert.service_ports.count == 1 => format!("port {}", port_name(*one)),
            _ => format!("{} ports", at_least(alert.service_ports)),
        };
        let n = alert.peers.count;
        return format!(
            "{ports} to {} client{}",
            at_least(alert.peers),
            plural(n as u64)
        );
    }
    let hosts = alert.destinations.count;
    let hosts = format!(
        "{} host{}",
        at_least(alert.destinations),
        plural(hosts as u64)
    );
    match alert.ports.count {
        0 => format!("traffic to {hosts}"),
        1 => match alert.sample_ports.first() {
            Some(p) => format!("port {} on {hosts}", port_name(*p)),
            None => format!("1 port on {hosts}"),
        },
        n => format!(
            "{} port{} on {hosts}",
            at_least(alert.ports),
            plural(n as u64)
        ),
    }
}

/// `210987654321 us-east-1`, `210987654321 +2 us-east-1`: the accounts where the records were
/// captured, and the region.
fn whereabouts(alert: &Alert) -> String {
    let accounts = match alert.accounts.len() {
        0 | 1 => alert.account().to_string(),
        n => format!("{} +{}", alert.account(), n - 1),
    };
    match &alert.region {
        Some(region) => format!("{accounts} {region}"),
        None => accounts,
    }
}

/// Makes any text a valid SNS subject: printable ASCII, at most [`SUBJECT_MAX`] characters.
pub fn subject_line(text: &str) -> String {
    clip(&printable_ascii(text), SUBJECT_MAX)
}

/// The text about one alert, at most [`SMS_TEXT_MAX`] GSM-7 characters: with SNS's prefix, one
/// segment as delivered. What, who, where and since when, then details while they fit.
pub fn sms(alert: &Alert) -> String {
    sms_with(alert, "")
}

/// [`sms`] with `suffix` (`, +2 more`) kept at the end whatever is cut.
pub fn sms_with(alert: &Alert, suffix: &str) -> String {
    let budget = SMS_TEXT_MAX.saturating_sub(suffix.len());
    let mut text = gsm_safe(&format!(
        "{}: {} from {}: {}",
        level_tag(alert),
        kind_title(alert.kind),
        who(alert),
        what(alert)
    ));
    let since = alert.first_seen.map(|t| {
        let at = utc(t);
        format!("since {} {}Z", &at[5..10], &at[11..16])
    });
    let extras = [
        since,
        Some(whereabouts(alert)),
        example_target(alert),
        Some(format!("{} reject{}", alert.records, plural(alert.records))),
    ];
    for extra in extras.into_iter().flatten() {
        let extra = gsm_safe(&extra);
        if text.len() + 2 + extra.len() <= budget {
            text.push_str(", ");
            text.push_str(&extra);
        }
    }
    let mut text = clip(&text, budget);
    text.push_str(&gsm_safe(suffix));
    text
}

/// The email report: what was rejected, why it matters, the evidence, and what to do next.
pub fn email(alert: &Alert) -> String {
    let mut m = String::with_capacity(3072);
    let _ = writeln!(
        m,
        "VPC Flow Alert: {} severity ({})\n",
        alert.severity.as_str().to_ascii_uppercase(),
        alert.kind.as_str()
    );
    let _ = writeln!(m, "{}\n", headline(alert));
    let _ = writeln!(m, "{}\n", meaning(alert));

    let _ = writeln!(m, "SENDER");
    line(&mut m, "Address", &alert.source.to_string());
    match &alert.owner {
        Some(o) if o.found => {
            let instance = match (&o.instance_id, &o.name) {
                (Some(id), Some(name)) => Some(format!("{id} ({name})")),
                (Some(id), None) => Some(id.clone()),
                _ => None,
            };
            for (label, value) in [
                ("Instance", instance),
                ("Interface", o.interface_id.clone()),
                ("Type", o.interface_type.as_deref().map(interface_type_name)),
                ("Description", o.description.clone().filter(|d| !d.is_empty())),
                ("Groups", (!o.security_groups.is_empty()).then(|| o.security_groups.join(", "))),
                ("Subnet", o.subnet_id.clone()),
                ("VPC", o.vpc_id.clone()),
                ("Zone", o.availability_zone.clone()),
            ] {
                if let Some(value) = value {
                    line(&mut m, label, &value);
                }
            }
        }
        Some(_) => line(
            &mut m,
            "Owner",
            "no network interface visible to this account has this address (another account's, or released since)",
        ),
        None => {}
    }
    line(&mut m, "Find it", &find_sender_command(alert));
    let sender = places(&alert.sender);
    if !sender.is_empty() {
        line(
            &mut m,
            "Seen leaving",
            "its own interface (flow-direction egress):",
        );
    }
    for (label, value) in sender {
        line(&mut m, label, &value);
    }

    let _ = writeln!(m, "\nREJECTED AT (where the records were captured: the receivers' side for inbound rejects, not the sender)");
    let at = places(&alert.rejected_at);
    if at.is_empty() {
        let none = if alert.sender.interfaces.is_empty() {
            "not in the flow log records"
        } else {
            "only the sender's own interface (above)"
        };
        line(&mut m, "Interfaces", none);
    }
    for (label, value) in at {
        line(&mut m, label, &value);
    }
    line(&mut m, "Accounts", &list_or(&alert.accounts, "-"));
    line(
        &mut m,
        "Log group",
        alert.log_group.as_deref().unwrap_or("-"),
    );
    line(&mut m, "Log streams", &list_or(&alert.log_streams, "-"));

    let _ = writeln!(m, "\nREJECTED TRAFFIC (the whole incident so far)");
    line(
        &mut m,
        "Records",
        &format!(
            "{} ({} probe{}, {} repl{})",
            alert.records,
            alert.probes,
            plural(alert.probes),
            alert.responses,
            if alert.responses == 1 { "y" } else { "ies" }
        ),
    );
    line(&mut m, "Packets", &alert.packets.to_string());
    line(&mut m, "Bytes", &readable_bytes(alert.bytes));
    let protocols: Vec<String> = alert.protocols.iter().map(|&p| protocol_name(p)).collect();
    line(&mut m, "Protocols", &list_or(&protocols, "-"));
    if alert.probes > 0 {
        line(
            &mut m,
            "Hosts",
            &counted(alert.destinations, &strings(&alert.sample_destinations)),
        );
        line(
            &mut m,
            "Ports",
            &counted(
                alert.ports,
                &alert
                    .sample_ports
                    .iter()
                    .map(|p| port_name(*p))
                    .collect::<Vec<_>>(),
            ),
        );
    }
    if alert.responses > 0 {
        line(
            &mut m,
            "Reply ports",
            &counted(alert.service_ports, &strings(&alert.sample_service_ports)),
        );
        line(
            &mut m,
            "Clients",
            &counted(alert.peers, &strings(&alert.sample_peers)),
        );
    }
    match window(alert) {
        Some((from, to)) => line(&mut m, "Window", &format!("{from} to {to} UTC")),
        None => line(&mut m, "Window", "unknown (no start/end in the records)"),
    }
    line(
        &mut m,
        "Incident",
        &format!("{} (opened {} UTC)", alert.incident, utc(alert.opened_at)),
    );

    let _ = writeln!(m, "\nWHAT TO DO NEXT");
    for (i, step) in next_steps(alert).iter().enumerate() {
        let _ = writeln!(m, "  {}. {step}", i + 1);
    }
    let _ = writeln!(
        m,
        "\nOne incident per source address: it stays open while findings arrive less than INCIDENT_WINDOW_SECONDS apart, across every delivery and log stream. You get one message when it opens, one when its severity rises, and at most one reminder per ALERT_COOLDOWN_SECONDS while it goes on. Severity is high when a source probes many ports (PORT_SCAN_THRESHOLD) or many hosts (HOST_SWEEP_THRESHOLD); rejected replies never count toward either."
    );
    m
}

/// The first sentence: who did what.
fn headline(alert: &Alert) -> String {
    let who = who(alert);
    let what = what(alert);
    let records = format!("{} flow log record{}", alert.records, plural(alert.records));
    let title = kind_title(alert.kind).to_ascii_lowercase();
    match alert.reason {
        Reason::Opened if alert.kind == Kind::BlockedResponses => format!("{who}, inside your VPC, had its replies rejected: {what}, in {records}."),
        Reason::Opened => format!("{who}, inside your VPC, sent traffic that the network rejected ({title}): {what}, in {records}."),
        Reason::Escalated => format!("The incident of {who} is now {} ({title}): {what}, in {records} so far.", alert.severity.as_str().to_ascii_uppercase()),
        Reason::Reminder => format!("{who} is still sending traffic that the network rejects ({title}): {what}, in {records} since the incident opened."),
    }
}

/// Why it matters, by kind.
fn meaning(alert: &Alert) -> &'static str {
    match alert.kind {
        Kind::PortScan | Kind::HostSweep => "That many ports or hosts is the pattern of a port scan or a host sweep: a compromised or misconfigured instance probing its neighbours. Treat it as urgent.",
        Kind::Probe => "Rejected traffic from your own address space usually means a misconfigured application or security group, and sometimes the first step of an intruder probing its neighbours.",
        Kind::BlockedResponses => "This looks like a network ACL without a rule for return traffic: these are replies from the source's service ports to its clients' ephemeral ports (1024-65535), and network ACLs are stateless, so the replies need a rule of their own. It is a misconfiguration that breaks those connections, not a probe.",
    }
}

fn next_steps(alert: &Alert) -> Vec<String> {
    let ignore = |why: &str| {
        format!("{why}, silence it: add {} to the stack's IgnoreSourceCidrs parameter (IGNORE_SOURCE_CIDRS).", alert.source)
    };
    if alert.kind == Kind::BlockedResponses {
        return vec![
            format!("Find the subnet of the sender: {}", find_sender_command(alert)),
            "Check the network ACLs of the sender's subnet and of its clients' subnets: each needs an outbound and an inbound rule allowing TCP (and UDP, if used) on ports 1024-65535 for return traffic.".to_string(),
            "Security groups are stateful and never drop replies; only a network ACL does this.".to_string(),
            ignore("If these replies are meant to be dropped"),
        ];
    }
    vec![
        format!("Identify the sender by its address (not by the interfaces under REJECTED AT, which are where the traffic was rejected): {}", find_sender_command(alert)),
        format!("See everything it did around the window, in the flow log group (accepted traffic too, when the flow log records ALL): {}", logs_command(alert)),
        "Ask whether it should talk to these hosts and ports at all. Look for unexpected processes, new cron jobs or users, and recent deployments.".to_string(),
        "If it may be compromised, isolate it (move it to a security group without rules) and snapshot its volumes before you investigate.".to_string(),
        "If the traffic is expected but blocked, fix the security group or network ACL that rejects it.".to_string(),
        ignore("If the source is a known scanner or monitoring host"),
    ]
}

/// The command that lists the flow log records of the sender's address in the hour around the
/// incident's window.
pub fn logs_command(alert: &Alert) -> String {
    let region = alert
        .region
        .as_deref()
        .map(|r| format!(" --region {r}"))
        .unwrap_or_default();
    let group = alert.log_group.as_deref().unwrap_or("<flow log group>");
    let (from, to) = match (alert.first_seen, alert.last_seen) {
        (Some(from), Some(to)) => (from, to),
        _ => (alert.opened_at, alert.opened_at),
    };
    let start = from.saturating_sub(1800) * 1000;
    let end = (to + 1800) * 1000;
    format!(
        "aws logs filter-log-events{region} --log-group-name {group} --start-time {start} --end-time {end} --filter-pattern '\"{}\"'",
        alert.source
    )
}

/// The command that finds the interface (and instance) that owns the sender's address.
pub fn find_sender_command(alert: &Alert) -> String {
    let filter = match alert.source {
        std::net::IpAddr::V4(_) => "addresses.private-ip-address",
        std::net::IpAddr::V6(_) => "ipv6-addresses.ipv6-address",
    };
    let region = alert
        .region
        .as_deref()
        .map(|r| format!(" --region {r}"))
        .unwrap_or_default();
    format!(
        "aws ec2 describe-network-interfaces{region} --filters Name={filter},Values={}",
        alert.source
    )
}

/// (`Interfaces`, `eni-1, eni-2`), (`Instances`, ...), for the kinds that have ids.
fn places(p: &Places) -> Vec<(&'static str, String)> {
    [
        ("Interfaces", &p.interfaces),
        ("Instances", &p.instances),
        ("Subnets", &p.subnets),
        ("VPCs", &p.vpcs),
    ]
    .into_iter()
    .filter(|(_, ids)| !ids.is_empty())
    .map(|(label, ids)| (label, ids.join(", ")))
    .collect()
}

fn strings<T: ToString>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

/// The version of the JSON bodies' contract (`schema/message.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// The alert as one line of JSON: the object `check --output json` prints and the `default`
/// message SNS delivers to machines. Times are ISO 8601 UTC, unknown values `null`. Keys come
/// in alphabetical order at every level (the fields below are declared so), serialized
/// straight from the alert: no tree of values is built, which made this most of the cost of an
/// input with thousands of alerts.
pub fn json(alert: &Alert) -> String {
    let mut line = Vec::with_capacity(1024);
    write_json(&mut line, alert).expect("an alert always serializes");
    String::from_utf8(line).expect("JSON is UTF-8")
}

/// [`json`], written to `out` as it is made: an input with tens of thousands of alerts writes
/// each without first making it a string of its own.
pub fn write_json(out: &mut impl std::io::Write, alert: &Alert) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Role<'a> {
        id: &'a str,
        role: &'static str,
    }
    /// The sender's interfaces, then those the traffic was rejected at, each with its role.
    struct Interfaces<'a>(&'a Alert);
    impl<'a> Serialize for Interfaces<'a> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let role = |role| move |id: &'a String| Role { id, role };
            let Interfaces(alert) = self;
            serializer.collect_seq(
                alert
                    .sender
                    .interfaces
                    .iter()
                    .map(role("sender"))
                    .chain(alert.rejected_at.interfaces.iter().map(role("rejected_at"))),
            )
        }
    }
    #[derive(Serialize)]
    struct Body<'a> {
        accounts: &'a [String],
        bytes: u64,
        destinations: Count,
        detected_at: Utc,
        first_seen: Option<Utc>,
        id: &'a str,
        incident: &'a str,
        interfaces: Interfaces<'a>,
        kind: Kind,
        last_seen: Option<Utc>,
        log_group: Option<&'a str>,
        log_streams: &'a [String],
        opened_at: Utc,
        /// Through a map, so that its keys are sorted too.
        owner: Option<serde_json::Value>,
        packets: u64,
        peers: Count,
        ports: Count,
        probes: u64,
        protocols: &'a [u8],
        reason: Reason,
        records: u64,
        region: Option<&'a str>,
        rejected_at: &'a Places,
        responses: u64,
        sample_destinations: &'a [std::net::IpAddr],
        sample_peers: &'a [std::net::IpAddr],
        sample_ports: &'a [u16],
        sample_service_ports: &'a [u16],
        schema_version: u32,
        sender: &'a Places,
        service_ports: Count,
        severity: Severity,
        source: std::net::IpAddr,
        #[serde(rename = "type")]
        kind_of_body: &'static str,
    }
    let body = Body {
        accounts: &alert.accounts,
        bytes: alert.bytes,
        destinations: alert.destinations,
        detected_at: Utc::iso(alert.detected_at),
        first_seen: alert.first_seen.map(Utc::iso),
        id: &alert.id,
        incident: &alert.incident,
        interfaces: Interfaces(alert),
        kind: alert.kind,
        last_seen: alert.last_seen.map(Utc::iso),
        log_group: alert.log_group.as_deref(),
        log_streams: &alert.log_streams,
        opened_at: Utc::iso(alert.opened_at),
        owner: alert.owner.as_ref().map(|o| serde_json::json!(o)),
        packets: alert.packets,
        peers: alert.peers,
        ports: alert.ports,
        probes: alert.probes,
        protocols: &alert.protocols,
        reason: alert.reason,
        records: alert.records,
        region: alert.region.as_deref(),
        rejected_at: &alert.rejected_at,
        responses: alert.responses,
        sample_destinations: &alert.sample_destinations,
        sample_peers: &alert.sample_peers,
        sample_ports: &alert.sample_ports,
        sample_service_ports: &alert.sample_service_ports,
        schema_version: SCHEMA_VERSION,
        sender: &alert.sender,
        service_ports: alert.service_ports,
        severity: alert.severity,
        source: alert.source,
        kind_of_body: "alert",
    };
    serde_json::to_writer(out, &body).map_err(std::io::Error::from)
}

/// `25`, or `at least 1000` when the count stopped being exact.
fn at_least(c: Count) -> String {
    if c.exact {
        c.count.to_string()
    } else {
        format!("at least {}", c.count)
    }
}

/// `e.g. 10.0.1.5 port 22 (ssh)`: the first host and port probed.
fn example_target(alert: &Alert) -> Option<String> {
    let host = alert.sample_destinations.first()?;
    Some(match alert.sample_ports.first() {
        Some(port) => format!("e.g. {host} port {}", port_name(*port)),
        None => format!("e.g. {host}"),
    })
}

/// `22 (ssh)` for the well-known ports a responder recognises, else the number.
pub fn port_name(port: u16) -> String {
    let name = match port {
        21 => "ftp",
        22 => "ssh",
        23 => "telnet",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop3",
        111 => "rpcbind",
        135 => "msrpc",
        139 => "netbios",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        445 => "smb",
        636 => "ldaps",
        993 => "imaps",
        995 => "pop3s",
        1433 => "mssql",
        1521 => "oracle",
        2049 => "nfs",
        2375 | 2376 => "docker",
        3306 => "mysql",
        3389 => "rdp",
        5432 => "postgres",
        5900 => "vnc",
        5985 | 5986 => "winrm",
        6379 => "redis",
        8080 => "http-alt",
        9200 => "elasticsearch",
        11211 => "memcached",
        27017 => "mongodb",
        _ => return port.to_string(),
    };
    format!("{port} ({name})")
}

/// `14.8 GB`: a byte count as a person reads it (SI units, three significant digits).
pub fn readable_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    if value < 10.0 {
        format!("{value:.2} {unit}")
    } else if value < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// Unix seconds (or milliseconds) as ISO 8601 UTC: `2025-11-26T22:14:00Z`.
pub fn iso(timestamp: u64) -> String {
    Utc::iso(timestamp).to_string()
}

/// The first and last time of the incident's records as `YYYY-MM-DD HH:MM:SS`.
pub fn window(alert: &Alert) -> Option<(String, String)> {
    Some((
        utc(alert.first_seen?),
        utc(alert.last_seen.or(alert.first_seen)?),
    ))
}

/// Formats Unix seconds (or milliseconds, which some records carry) as UTC.
pub fn utc(timestamp: u64) -> String {
    Utc {
        timestamp,
        iso: false,
    }
    .to_string()
}

/// A time written as [`utc`] writes it, or as [`iso`] does, without a string of its own (a JSON
/// line writes four of them).
#[derive(Debug, Clone, Copy)]
struct Utc {
    timestamp: u64,
    iso: bool,
}

impl Utc {
    fn iso(timestamp: u64) -> Utc {
        Utc {
            timestamp,
            iso: true,
        }
    }
}

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = seconds(self.timestamp);
        let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        let (t, z) = if self.iso { ('T', "Z") } else { (' ', "") };
        write!(
            f,
            "{y:04}-{mo:02}-{d:02}{t}{:02}:{:02}:{:02}{z}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

impl Serialize for Utc {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub fn protocol_name(number: u8) -> String {
    match number {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        n => format!("protocol {n}"),
    }
}

fn line(m: &mut String, label: &str, value: &str) {
    let _ = writeln!(m, "  {:<14}{value}", format!("{label}:"));
}

fn list_or(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(", ")
    }
}

fn counted(total: Count, sample: &[String]) -> String {
    match (total.count, sample.len()) {
        (0, _) => "-".into(),
        (t, s) if t == s => format!("{} ({})", at_least(total), sample.join(", ")),
        (_, _) => format!("{} (lowest: {}, ...)", at_least(total), sample.join(", ")),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Keeps printable ASCII; anything else (line breaks, control and non-ASCII characters) becomes
/// `?`, so text from an input cannot break a subject line.
fn printable_ascii(text: &str) -> String {
    text.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

/// Keeps characters of the GSM-7 basic set that every phone shows the same way and that count
/// as one character each (brackets, braces and `~` cost two and are replaced).
fn gsm_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .,:;()/+-=!?#%&'*<>_@\"".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Cuts ASCII text to at most `max` characters, marking the cut with `...`.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        text.to_string()
    } else {
        format!("{}...", &text[..max - 3])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Thresholds;
    use crate::detect::activity::{tests::finding, Activity};
    use crate::detect::alert::tests::sample as alert;
    use crate::detect::alert::Origin;
    use crate::detect::incident::{Claim, Incident};

    const T: Thresholds = Thresholds {
        port_scan: 10,
        host_sweep: 10,
    };

    #[test]
    fn the_json_body_has_its_keys_sorted_at_every_level_as_a_value_tree_would() {
        let mut a = alert();
        a.sender.interfaces.push("eni-0sender".into());
        a.owner = Some(crate::detect::alert::Owner {
            found: true,
            instance_id: Some("i-0123456789abcdef0".into()),
            name: Some("web-7".into()),
            security_groups: vec!["sg-1".into()],
            ..Default::default()
        });
        let text = json(&a);
        let tree: serde_json::Value = serde_json::from_str(&text).unwrap();
        // serde_json's map keeps keys sorted: the same bytes mean the same order everywhere.
        assert_eq!(tree.to_string(), text);
        assert_eq!(tree.as_object().unwrap().len(), 34);
        assert_eq!(tree["type"], "alert");
        assert_eq!(tree["owner"]["name"], "web-7");
        assert_eq!(
            tree["interfaces"],
            serde_json::json!([
                {"id": "eni-0sender", "role": "sender"},
                {"id": "eni-0a1b2c3d4e5f60718", "role": "rejected_at"}
            ])
        );
        assert_eq!(tree["first_seen"], "2025-11-26T22:14:00Z");
        // Unknown times are null, not left out nor written as the epoch.
        a.first_seen = None;
        a.last_seen = None;
        let tree: serde_json::Value = serde_json::from_str(&json(&a)).unwrap();
        assert!(tree["first_seen"].is_null() && tree["last_seen"].is_null());
        assert_eq!(tree.as_object().unwrap().len(), 34);
    }

    #[test]
    fn the_subject_says_what_who_and_where() {
        assert_eq!(
            subject(&alert()),
            "[HIGH] Port scan from 10.0.3.7: 25 ports on 1 host - 210987654321 us-east-1"
        );
        let mut escalated = alert();
        escalated.reason = Reason::Escalated;
        escalated.accounts.push("999988887777".into());
        escalated.owner = Some(crate::detect::alert::Owner {
            found: true,
            instance_id: Some("i-0abc".into()),
            name: Some("web-7".into()),
            ..Default::default()
        });
        assert_eq!(
            subject(&escalated),
            "[HIGH, escalated] Port scan from web-7 (10.0.3.7): 25 ports on 1 host - 210987654321 +1 us-east-1"
        );
    }

    #[test]
    fn ports_are_named_bytes_readable_and_times_iso() {
        assert_eq!(port_name(3389), "3389 (rdp)");
        assert_eq!(port_name(40000), "40000");
        assert_eq!(readable_bytes(14_814_814_680), "14.8 GB");
        assert_eq!(readable_bytes(999), "999 B");
        assert_eq!(readable_bytes(1_100), "1.10 kB");
        assert_eq!(iso(1_764_195_240_000), "2025-11-26T22:14:00Z");
    }

    #[test]
    fn a_subject_stays_printable_ascii_under_100_characters() {
        let mut a = alert();
        a.source = "2600:1f18:1234:5678:9abc:def0:1234:5678".parse().unwrap();
        a.accounts =
            vec!["acct\nwith\u{e9}a very long and hostile name that goes on and on and on".into()];
        let s = subject(&a);
        assert!(s.len() <= SUBJECT_MAX, "{}", s.len());
        assert!(s.chars().all(|c| (' '..='~').contains(&c)), "{s}");
    }

    #[test]
    fn the_sms_fits_one_segment_and_says_severity_source_activity_account() {
        let text = sms(&alert());
        let delivered = format!("{}{text}", sms_prefix());
        assert_eq!(&delivered[..11], "VPC ALERT> ");
        assert!(
            delivered.len() <= SMS_MAX,
            "{} chars as delivered: {delivered}",
            delivered.len()
        );
        assert!(
            text.starts_with("HIGH: Port scan from 10.0.3.7: 25 ports on 1 host, since 11-26 22:14Z, 210987654321 us-east-1"),
            "{text}"
        );
        assert!(
            !text.contains("eni-0a1b2c3d4e5f60718") && !text.contains("i-0123456789abcdef0"),
            "the target's interface and instance are not the sender's: {text}"
        );
        let mut long = alert();
        long.source = "2600:1f18:1234:5678:9abc:def0:1234:5678".parse().unwrap();
        long.sample_destinations = vec!["2600:1f18:1234:5678:9abc:def0:1234:5679".parse().unwrap()];
        assert!(sms_prefix().len() + sms(&long).len() <= SMS_MAX);
    }

    #[test]
    fn the_email_puts_the_capturing_interface_under_rejected_at_and_finds_the_sender_by_address() {
        let text = email(&alert());
        let (sender, rest) = text.split_once("REJECTED AT").unwrap();
        assert!(!sender.contains("eni-0a1b2c3d4e5f60718"), "{sender}");
        assert!(!sender.contains("i-0123456789abcdef0"), "{sender}");
        assert!(sender.contains(
            "aws ec2 describe-network-interfaces --region us-east-1 --filters Name=addresses.private-ip-address,Values=10.0.3.7"
        ), "{sender}");
        for needle in [
            "eni-0a1b2c3d4e5f60718",
            "i-0123456789abcdef0",
            "25 (lowest: 21 (ftp), 22 (ssh), 23 (telnet), 24, 25 (smtp), 26, 27, 28, 29, 30, ...)",
            "2025-11-26 22:14:00 to 2025-11-26 22:20:00 UTC",
            "/vpc/flow-logs",
            "IgnoreSourceCidrs",
        ] {
            assert!(rest.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn ipv6_senders_are_found_by_their_ipv6_address() {
        let mut a = alert();
        a.source = "2600:1f18::5".parse().unwrap();
        a.region = None;
        assert_eq!(
            find_sender_command(&a),
            "aws ec2 describe-network-interfaces --filters Name=ipv6-addresses.ipv6-address,Values=2600:1f18::5"
        );
    }

    #[test]
    fn blocked_replies_read_as_a_network_acl_problem_with_ports_and_peers() {
        let mut a = Activity::new("10.0.1.5".parse().unwrap());
        for client in 0..12 {
            let mut f = finding("10.0.1.5", &format!("198.51.100.{client}"), 50_000 + client);
            f.srcport = Some(443);
            a.add(&f, None);
        }
        let incident = Incident::open(&a, 0);
        let alert = Alert::new(
            &incident,
            Claim::Level(Severity::Low),
            T,
            &Origin::default(),
        );
        assert_eq!(alert.kind, Kind::BlockedResponses);
        assert_eq!(
            subject(&alert),
            "[LOW] Blocked responses from 10.0.1.5: port 443 (https) to 12 clients - 111122223333"
        );
        let text = email(&alert);
        assert!(
            text.contains("network ACL without a rule for return traffic"),
            "{text}"
        );
        assert!(text.contains("Reply ports:  1 (443)"), "{text}");
        assert!(text.contains("12 (lowest: 198.51.100.0"), "{text}");
    }

    #[test]
    fn counts_past_the_cap_read_at_least() {
        let mut a = alert();
        a.ports = Count {
            count: 1000,
            exact: false,
        };
        assert_eq!(what(&a), "at least 1000 ports on 1 host");
    }

    #[test]
    fn millisecond_timestamps_read_as_the_same_time() {
        assert_eq!(utc(1_418_530_010), "2014-12-14 04:06:50");
        assert_eq!(utc(1_418_530_010_000), "2014-12-14 04:06:50");
        assert_eq!(utc(0), "1970-01-01 00:00:00");
    }

    #[test]
    fn traffic_without_ports_is_described_without_ports() {
        let mut a = alert();
        a.ports = Count {
            count: 0,
            exact: true,
        };
        a.destinations = Count {
            count: 3,
            exact: true,
        };
        assert_eq!(what(&a), "traffic to 3 hosts");
    }
}
