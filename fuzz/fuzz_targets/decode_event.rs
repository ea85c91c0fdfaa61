//! Any bytes as an input of `check` or as a Lambda event: an error or a report, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut config =
        vpc_flow_alert::Config::with_vpc_cidrs("10.0.0.0/8,2600:1f18::/32").expect("valid");
    config.max_decoded_bytes = 1 << 20;
    let _ = vpc_flow_alert::scan_json(data, &config);
    let _ = vpc_flow_alert::scan_reader(data, &config);
});
