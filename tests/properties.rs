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
