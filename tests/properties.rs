//! Property tests: the parser and the CIDR matching never panic and agree with simple models.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use vpc_flow_alert::detect::rule::{classify, Verdict};
use vpc_flow_alert::flow::record::RecordSplitter;
use vpc_flow_alert::input::scan::Scanner;
use vpc_flow_alert::{detect::alert::Origin, scan_reader, Config, FlowFormat};

fn config(vpc: &str) -> Config {
    Config::with_vpc_cidrs(vpc).unwrap()
}

/// A field: usually plausible, sometimes hostile.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-".to_string()),
        Just("REJECT".to_string()),
        Just("ACCEPT".to_string()),
        Just("OK".to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| Ipv4Addr::from(n).to_string()),
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("10.0.{a}.{b}")),
        any::<u128>().prop_map(|n| std::net::Ipv6Addr::from(n).to_string()),
        "[^ \t\r\n]{1,12}",
    ]
}

proptest! {
    /// The one-pass IPv4 reader and the standard library agree on every text.
    #[test]
    fn addresses_parse_as_the_standard_library_parses_them(
        text in prop_oneof![
            "[0-9.:a-f]{0,17}",
            "[0-9]{1,4}(\\.[0-9]{1,4}){0,4}\\.?",
            "[0-2]?[0-9]{1,2}\\.[0-2]?[0-9]{1,2}\\.[0-2]?[0-9]{1,2}\\.[0-2]?[0-9]{1,2}",
        ]
    ) {
        let std = text.parse::<IpAddr>().ok().map(|a| a.to_canonical());
        prop_assert_eq!(vpc_flow_alert::detect::rule::parse_address(&text), std);
    }
}

proptest! {
    #[test]
    fn splitting_agrees_with_split_ascii_whitespace(line in "[ a-z0-9\t.:-]{0,200}") {
        let format = FlowFormat::default_v2();
        let mut splitter = RecordSplitter::default();
        let model: Vec<&str> = line.split_ascii_whitespace().collect();
        match splitter.split(&line, &format) {
            Some(record) => {
                prop_assert_eq!(model.len(), 14);
                for (i, m) in model.iter().enumerate() {
                    prop_assert_eq!(record.raw(i), *m);
                }
            }
            None => prop_assert_ne!(model.len(), 14),
        }
    }

    #[test]
    fn any_record_of_plausible_fields_is_classified_without_panic(
        fields in proptest::collection::vec(field(), 10..18)
    ) {
        let config = config("10.0.0.0/16,2600:1f18::/32");
        let line = fields.join(" ");
        let mut scanner = Scanner::new(&config);
        scanner.record(&line, Some("111122223333"));
        let report = scanner.finish(Origin::default());
        prop_assert_eq!(report.counts.records, 1);
        prop_assert!(report.activities.len() <= 1);
        let c = report.counts;
        prop_assert!(c.findings <= c.rejects && c.rejects + c.malformed <= c.records);
    }

    #[test]
    fn a_finding_is_exactly_what_the_rule_says(
        src in any::<u32>(), action in prop_oneof![Just("REJECT"), Just("ACCEPT"), Just("-")],
        status in prop_oneof![Just("OK"), Just("NODATA"), Just("SKIPDATA")],
        prefix in 0u8..=32, net in any::<u32>(),
    ) {
        let cidr = format!("{}/{prefix}", Ipv4Addr::from(net));
        let config = config(&cidr);
        let line = format!(
            "2 111122223333 eni-1 {} 10.9.9.9 1000 22 6 1 40 1700000000 1700000060 {action} {status}",
            Ipv4Addr::from(src)
        );
        let mut splitter = RecordSplitter::default();
        let record = splitter.split(&line, &config.format).unwrap();
        let verdict = classify(&record, &config);
        // The model: mask arithmetic on integers.
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        let inside = src & mask == net & mask;
        let expected = action == "REJECT" && status == "OK" && inside;
        prop_assert_eq!(matches!(verdict, Verdict::Finding(_)), expected);
        if let Verdict::Finding(f) = verdict {
            prop_assert_eq!(f.source, IpAddr::V4(Ipv4Addr::from(src)));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let config = config("10.0.0.0/8");
        let _ = scan_reader(&bytes[..], &config);
    }

    #[test]
    fn arbitrary_format_strings_never_panic(text in "[ a-z_${}-]{0,80}") {
        if let Ok(format) = FlowFormat::parse(&text) {
            prop_assert!(format.len() >= 2);
            prop_assert_eq!(FlowFormat::parse(&format.to_string()), Ok(format));
        }
    }
}

fn gzip_event(document: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(document.to_string().as_bytes()).unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    serde_json::json!({"awslogs": {"data": data}})
        .to_string()
        .into_bytes()
}

proptest! {
    /// The shortcut reader of CloudWatch's documents and serde read the same records: a key the
    /// shortcut does not know sends the same document through serde.
    #[test]
    fn the_document_shortcut_and_serde_agree(
        lines in proptest::collection::vec(proptest::collection::vec(field(), 12..16), 0..40),
        owner in "[0-9]{12}",
    ) {
        let config = config("10.0.0.0/16,2600:1f18::/32");
        let events: Vec<_> = lines.iter().enumerate().map(|(i, f)| serde_json::json!(
            {"id": i.to_string(), "timestamp": 1_700_000_000_000u64 + i as u64, "message": f.join(" ")})).collect();
        let compact = serde_json::json!({"messageType": "DATA_MESSAGE", "owner": owner,
            "logGroup": "g", "logStream": "s", "subscriptionFilters": ["f"], "logEvents": events});
        let mut unusual = compact.clone();
        unusual["someNewKey"] = serde_json::json!({"nested": [1, 2]});
        let fast = vpc_flow_alert::scan_json(&gzip_event(&compact), &config).unwrap();
        let slow = vpc_flow_alert::scan_json(&gzip_event(&unusual), &config).unwrap();
        prop_assert_eq!(fast.counts, slow.counts);
        prop_assert_eq!(fast.activities, slow.activities);
        prop_assert_eq!(fast.fingerprint, slow.fingerprint);
    }
}

mod incidents {
    use super::*;
    use std::collections::HashMap;
    use vpc_flow_alert::config::{IncidentPolicy, Thresholds};
    use vpc_flow_alert::detect::activity::{Activity, SET_CAP};
    use vpc_flow_alert::detect::incident::{Claim, IncidentMemory, Severity};
    use vpc_flow_alert::detect::rule::Finding;

    const POLICY: IncidentPolicy = IncidentPolicy {
        thresholds: Thresholds {
            port_scan: 10,
            host_sweep: 10,
        },
        window: 3600,
        cooldown: 3600,
    };

    /// One delivery: a source, the hosts and ports it reached, replies or probes.
    type Delivery = (u8, Vec<(u8, u16)>, bool);

    fn delivery() -> impl Strategy<Value = Delivery> {
        (
            0u8..3,
            proptest::collection::vec((0u8..16, 1u16..20), 1..6),
            any::<bool>(),
        )
    }

    fn slice((source, flows, replies): &Delivery) -> Activity {
        let source: IpAddr = Ipv4Addr::new(10, 0, 0, *source).into();
        let mut a = Activity::new(source);
        for &(host, port) in flows {
            let (srcport, dstport) = if *replies {
                (443, 40000 + port)
            } else {
                (40000, port)
            };
            a.add(
                &Finding {
                    account: Some("111122223333"),
                    source,
                    destination: Some(Ipv4Addr::new(10, 0, 1, host).into()),
                    srcport: Some(srcport),
                    dstport: Some(dstport),
                    protocol: Some(6),
                    packets: 1,
                    bytes: 40,
                    start: Some(1),
                    end: Some(2),
                    interface_id: None,
                    vpc_id: None,
                    subnet_id: None,
                    instance_id: None,
                    tcp_flags: None,
                    direction: None,
                },
                None,
            );
        }
        a
    }

    /// Runs the deliveries in order; the final severity of each source and the messages sent.
    fn run(deliveries: &[Delivery]) -> (HashMap<IpAddr, Severity>, Vec<(IpAddr, Claim)>) {
        let mut memory = IncidentMemory::new(POLICY);
        let mut sent = Vec::new();
        for (n, d) in deliveries.iter().enumerate() {
            let a = slice(d);
            for (incident, claim) in memory.observe(&a, Some(n as u64), 100 + n as u64) {
                sent.push((incident.source(), claim));
            }
        }
        let finals = deliveries
            .iter()
            .map(|d| slice(d).source)
            .map(|s| (s, memory.get(&s).unwrap().severity(POLICY.thresholds)))
            .collect();
        (finals, sent)
    }

    proptest! {
        #[test]
        fn the_order_of_deliveries_does_not_change_the_final_severity(
            (deliveries, shuffled) in proptest::collection::vec(delivery(), 1..30)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            let (a, sent_a) = run(&deliveries);
            let (b, sent_b) = run(&shuffled);
            prop_assert_eq!(&a, &b);
            // The final severity was messaged, whatever the order: escalations are never held back.
            for (sent, finals) in [(sent_a, &a), (sent_b, &b)] {
                for (source, severity) in finals {
                    prop_assert!(sent.contains(&(*source, Claim::Level(*severity))));
                    let levels = sent.iter().filter(|(s, c)| s == source && matches!(c, Claim::Level(_))).count();
                    prop_assert!(levels <= 3, "at most one message per level");
                }
            }
        }

        #[test]
        fn distinct_counts_are_exact_up_to_the_cap_then_at_least(extra in 0usize..50) {
            let mut memory = IncidentMemory::new(POLICY);
            let source: IpAddr = "10.0.0.1".parse().unwrap();
            let total = SET_CAP - 25 + extra;
            for chunk in (0..total).collect::<Vec<_>>().chunks(100) {
                let mut a = Activity::new(source);
                for &n in chunk {
                    let mut f = Finding {
                        account: None, source, destination: Some(Ipv4Addr::from(0x0a01_0000 + n as u32).into()),
                        srcport: Some(40000), dstport: Some(22), protocol: Some(6), packets: 1, bytes: 40,
                        start: None, end: None, interface_id: None, vpc_id: None, subnet_id: None,
                        instance_id: None, tcp_flags: None, direction: None,
                    };
                    f.dstport = Some((n % 60000) as u16 + 1);
                    a.add(&f, None);
                }
                memory.observe(&a, None, 100);
            }
            let seen = &memory.get(&source).unwrap().seen;
            prop_assert!(seen.destinations.len() <= SET_CAP);
            prop_assert_eq!(seen.destinations.len(), total.min(SET_CAP));
            prop_assert_eq!(seen.destinations.is_exact(), total <= SET_CAP);
            prop_assert_eq!(seen.ports.is_exact(), total <= SET_CAP);
        }
    }
}
