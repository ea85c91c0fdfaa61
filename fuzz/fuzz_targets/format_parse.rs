//! Any text as a flow log format: refused with a reason, or a format that prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpc_flow_alert::FlowFormat;

fuzz_target!(|text: &str| {
    if let Ok(format) = FlowFormat::parse(text) {
        assert_eq!(FlowFormat::parse(&format.to_string()), Ok(format.clone()));
        assert!(format.filter_pattern().contains("action=REJECT"));
        let _ = FlowFormat::looks_like_header(text);
    }
});
