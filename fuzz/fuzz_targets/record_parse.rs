//! Any lines as records of a version-5 format: counted, and never more findings than records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpc_flow_alert::detect::alert::Origin;
use vpc_flow_alert::config::{RawConfig, RawSetting};
use vpc_flow_alert::input::scan::Scanner;

const FORMAT: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} \
${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${pkt-srcaddr} \
${pkt-dstaddr} ${vpc-id} ${subnet-id} ${instance-id}";

fuzz_target!(|text: &str| {
    let config = RawConfig {
        vpc_cidrs: Some(RawSetting::new("VPC_CIDRS", "10.0.0.0/8,2600:1f18::/32")),
        format: Some(RawSetting::new("FLOW_LOG_FORMAT", FORMAT)),
        ..Default::default()
    }
    .validate()
    .expect("valid configuration");
    let mut scanner = Scanner::new(&config);
    for line in text.lines() {
        scanner.record(line, Some("123456789012"));
    }
    let report = scanner.finish(Origin::default());
    let c = report.counts;
    assert!(c.findings <= c.rejects && c.rejects + c.malformed <= c.records);
    assert!(report.activities.len() as u64 <= c.findings);
});
