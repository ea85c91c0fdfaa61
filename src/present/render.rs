//! Rendering: the words a person reads about an alert.
//!
//! Every alert becomes a subject line (printable ASCII, at most 99 characters), a text message
//! (one SMS segment: at most 160 GSM-7 characters), an email report and a JSON object. The
//! command line prints the same texts the Lambda publishes.

use std::fmt::Write as _;

use crate::detect::alert::{Alert, Severity};

/// The longest subject SNS accepts is 99 characters (under 100).
pub const SUBJECT_MAX: usize = 99;
/// One SMS segment of GSM-7 characters.
pub const SMS_MAX: usize = 160;

/// `[HIGH] 10.0.3.7 probed 25 ports on 1 host (210987654321)`
pub fn subject(alert: &Alert) -> String {
    let text = format!(
        "[{}] {} {} ({})",
        alert.severity.as_str().to_ascii_uppercase(),
        alert.source,
        activity(alert),
        alert.account
    );
    subject_line(&text)
}

/// Makes any text a valid SNS subject: printable ASCII, at most [`SUBJECT_MAX`] characters.
pub fn subject_line(text: &str) -> String {
    clip(&printable_ascii(text), SUBJECT_MAX)
}

/// A one-segment text message: severity, source, what it probed, account.
pub fn sms(alert: &Alert) -> String {
    let mut text = format!(
        "VPC {}: {} {}",
        alert.severity.as_str().to_ascii_uppercase(),
        alert.source,
        activity(alert)
    );
    // Optional details, most useful first; each is added only if the whole still fits.
    let mut extras = vec![example_target(alert)];
    extras.push(Some(format!("{} rejects", alert.records)));
    extras.push(window(alert).map(|(from, to)| format!("{}-{}Z", &from[11..16], &to[11..16])));
    extras.push(Some(format!("acct {}", alert.account)));
    extras.push(alert.interfaces.first().cloned());
    extras.push(alert.instance_ids.first().cloned());
    for extra in extras.into_iter().flatten() {
        let extra = gsm_safe(&extra);
        if text.len() + 2 + extra.len() <= SMS_MAX {
            text.push_str(", ");
            text.push_str(&extra);
        }
    }
    clip(&gsm_safe(&text), SMS_MAX)
}

/// The email report: what was rejected, why it matters, the evidence, and what to do next.
pub fn email(alert: &Alert) -> String {
    let mut m = String::with_capacity(2048);
    let level = alert.severity.as_str().to_ascii_uppercase();
    let _ = writeln!(m, "VPC Flow Alert: {level} severity\n");
    let _ = writeln!(
        m,
        "{source}, an address inside your VPC, sent traffic that the network rejected: it {what}, in {records} flow log record{s}.",
        source = alert.source,
        what = activity(alert),
        records = alert.records,
        s = plural(alert.records),
    );
    let _ = writeln!(
        m,
        "{}\n",
        match alert.severity {
            Severity::High => "That many ports or hosts is the pattern of a port scan or a host sweep: a compromised or misconfigured instance probing its neighbours. Treat it as urgent.",
            Severity::Medium => "Rejected traffic from your own address space usually means a misconfigured application or security group, and sometimes the first step of an intruder probing its neighbours.",
        }
    );

    let _ = writeln!(m, "SOURCE");
    line(&mut m, "Address", &alert.source.to_string());
    line(&mut m, "Account", &alert.account);
    line(
        &mut m,
        "Interfaces",
        &list_or(&alert.interfaces, "not in the flow log records"),
    );
    line(
        &mut m,
        "Instances",
        &list_or(
            &alert.instance_ids,
            "not in the flow log format (add ${instance-id})",
        ),
    );
    line(
        &mut m,
        "Subnets",
        &list_or(
            &alert.subnet_ids,
            "not in the flow log format (add ${subnet-id})",
        ),
    );
    line(
        &mut m,
        "VPCs",
        &list_or(&alert.vpc_ids, "not in the flow log format (add ${vpc-id})"),
    );

    let _ = writeln!(m, "\nREJECTED TRAFFIC");
    line(&mut m, "Records", &alert.records.to_string());
    line(&mut m, "Packets", &alert.packets.to_string());
    line(&mut m, "Bytes", &alert.bytes.to_string());
    let protocols: Vec<String> = alert.protocols.iter().map(|&p| protocol_name(p)).collect();
    line(&mut m, "Protocols", &list_or(&protocols, "-"));
    let hosts: Vec<String> = alert
        .sample_destinations
        .iter()
        .map(ToString::to_string)
        .collect();
    line(&mut m, "Hosts", &counted(alert.destinations, &hosts));
    let ports: Vec<String> = alert.sample_ports.iter().map(ToString::to_string).collect();
    line(&mut m, "Ports", &counted(alert.ports, &ports));
    match window(alert) {
        Some((from, to)) => line(&mut m, "Window", &format!("{from} to {to} UTC")),
        None => line(&mut m, "Window", "unknown (no start/end in the records)"),
    }
    if alert.suppressed > 0 {
        line(
            &mut m,
            "Held back",
            &format!(
                "{} earlier alert{} for this source (cooldown)",
                alert.suppressed,
                plural(alert.suppressed)
            ),
        );
    }

    let _ = writeln!(m, "\nWHERE TO LOOK");
    line(
        &mut m,
        "Log group",
        alert.log_group.as_deref().unwrap_or("-"),
    );
    line(
        &mut m,
        "Log stream",
        alert.log_stream.as_deref().unwrap_or("-"),
    );

    let _ = writeln!(m, "\nWHAT TO DO NEXT");
    let eni = alert.interfaces.first().map_or("<eni-id>", String::as_str);
    let steps = [
        format!("Identify the host: aws ec2 describe-network-interfaces --network-interface-ids {eni} (or search the console for {}).", alert.source),
        "Ask whether it should talk to these hosts and ports at all. Look for unexpected processes, new cron jobs or users, and recent deployments.".to_string(),
        "If it may be compromised, isolate it (move it to a security group without rules) and snapshot its volumes before you investigate.".to_string(),
        "If the traffic is expected but blocked, fix the security group or network ACL that rejects it.".to_string(),
        format!("If the source is a known scanner or monitoring host, silence it: add {} to IGNORE_SOURCE_CIDRS.", alert.source),
    ];
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(m, "  {}. {step}", i + 1);
    }
    let _ = writeln!(
        m,
        "\nSeverity is high when a source probes many ports (PORT_SCAN_THRESHOLD) or many hosts (HOST_SWEEP_THRESHOLD) within one batch of flow logs."
    );
    m
}

/// The alert as one line of JSON: the object `check --output json` prints and the `default`
/// message SNS delivers to machines.
pub fn json(alert: &Alert) -> String {
    serde_json::to_string(alert).expect("an alert always serializes")
}

/// What the source did: `probed 25 ports on 1 host`.
pub fn activity(alert: &Alert) -> String {
    let hosts = match alert.destinations {
        0 => String::new(),
        n => format!(" on {n} host{}", plural(n as u64)),
    };
    match alert.ports {
        0 => format!("sent rejected traffic{}", hosts.replace(" on ", " to ")),
        n => format!("probed {n} port{}{hosts}", plural(n as u64)),
    }
}

/// `10.0.1.5:22` when the alert has one host and one port; the first sample otherwise.
fn example_target(alert: &Alert) -> Option<String> {
    let host = alert.sample_destinations.first()?;
    Some(match alert.sample_ports.first() {
        Some(port) => format!("e.g. {host} port {port}"),
        None => format!("e.g. {host}"),
    })
}

/// The first and last time of the alert as `YYYY-MM-DD HH:MM:SS`.
pub fn window(alert: &Alert) -> Option<(String, String)> {
    Some((
        utc(alert.first_seen?),
        utc(alert.last_seen.or(alert.first_seen)?),
    ))
}

/// Formats Unix seconds (or milliseconds, which some records carry) as UTC.
pub fn utc(timestamp: u64) -> String {
    // Seconds reach 10^11 only in the year 5138; anything larger is milliseconds.
    let secs = if timestamp >= 100_000_000_000 {
        timestamp / 1000
    } else {
        timestamp
    };
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
    let _ = writeln!(m, "  {:<12}{value}", format!("{label}:"));
}

fn list_or(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(", ")
    }
}

fn counted(total: usize, sample: &[String]) -> String {
    match (total, sample.len()) {
        (0, _) => "-".into(),
        (t, s) if t == s => format!("{t} ({})", sample.join(", ")),
        (t, _) => format!("{t} (lowest: {}, ...)", sample.join(", ")),
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
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            severity: Severity::High,
            account: "210987654321".into(),
            source: "10.0.3.7".parse().unwrap(),
            records: 340,
            packets: 680,
            bytes: 40800,
            destinations: 1,
            ports: 25,
            interfaces: vec!["eni-0a1b2c3d4e5f60718".into()],
            first_seen: Some(1_764_195_240),
            last_seen: Some(1_764_195_600),
            vpc_ids: vec![],
            subnet_ids: vec![],
            instance_ids: vec!["i-0123456789abcdef0".into()],
            protocols: vec![6],
            sample_destinations: vec!["10.0.1.5".parse().unwrap()],
            sample_ports: vec![21, 22, 23],
            log_group: Some("/vpc/flow-logs".into()),
            log_stream: Some("eni-0a1b2c3d4e5f60718-all".into()),
            suppressed: 0,
        }
    }

    #[test]
    fn the_subject_leads_with_severity_and_names_source_activity_and_account() {
        assert_eq!(
            subject(&alert()),
            "[HIGH] 10.0.3.7 probed 25 ports on 1 host (210987654321)"
        );
    }

    #[test]
    fn a_subject_stays_printable_ascii_under_100_characters() {
        let mut a = alert();
        a.source = "2600:1f18:1234:5678:9abc:def0:1234:5678".parse().unwrap();
        a.account =
            "acct\nwith\u{e9}a very long and hostile name that goes on and on and on".into();
        let s = subject(&a);
        assert!(s.len() <= SUBJECT_MAX, "{}", s.len());
        assert!(s.chars().all(|c| (' '..='~').contains(&c)), "{s}");
    }

    #[test]
    fn the_sms_fits_one_segment_and_says_severity_source_activity_account() {
        let text = sms(&alert());
        assert!(text.len() <= SMS_MAX, "{} chars: {text}", text.len());
        assert!(
            text.starts_with("VPC HIGH: 10.0.3.7 probed 25 ports on 1 host"),
            "{text}"
        );
        assert!(text.contains("acct 210987654321"), "{text}");
        let mut long = alert();
        long.source = "2600:1f18:1234:5678:9abc:def0:1234:5678".parse().unwrap();
        long.sample_destinations = vec!["2600:1f18:1234:5678:9abc:def0:1234:5679".parse().unwrap()];
        assert!(sms(&long).len() <= SMS_MAX);
    }

    #[test]
    fn the_email_has_the_evidence_and_the_next_steps() {
        let text = email(&alert());
        for needle in [
            "10.0.3.7",
            "eni-0a1b2c3d4e5f60718",
            "i-0123456789abcdef0",
            "25 (lowest: 21, 22, 23, ...)",
            "2025-11-26 22:14:00 to 2025-11-26 22:20:00 UTC",
            "/vpc/flow-logs",
            "IGNORE_SOURCE_CIDRS",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
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
        a.ports = 0;
        a.destinations = 3;
        assert_eq!(activity(&a), "sent rejected traffic to 3 hosts");
    }
}
