//! Vector's Remap Language (VRL, the `vrl` crate Vector runs) doing vpc-flow-alert's filter on a
//! gzip S3 flow log file: each line parsed by `parse_aws_vpc_flow_log`, then kept when it is a
//! REJECT whose source is inside `10.0.0.0/8`. Streams the file as `check` does; prints the
//! lines read, the lines kept and the seconds it took.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::Instant;

use vrl::compiler::{compile, runtime::Runtime, TargetValue, TimeZone};
use vrl::value::{Secrets, Value};

const PROGRAM: &str = r#"
    . = parse_aws_vpc_flow_log!(.message)
    if .action != "REJECT" || !ip_cidr_contains!("10.0.0.0/8", .srcaddr) { abort }
"#;

fn main() {
    let path = std::env::args().nth(1).expect("usage: vrl-peer FILE.log.gz");
    let program = compile(PROGRAM, &vrl::stdlib::all())
        .expect("the program compiles")
        .program;
    let timezone = TimeZone::default();
    let mut runtime = Runtime::default();
    let start = Instant::now();
    let file = std::fs::File::open(&path).expect("the file opens");
    let reader = BufReader::with_capacity(1 << 16, flate2::read::MultiGzDecoder::new(file));
    let (mut lines, mut kept) = (0u64, 0u64);
    for line in reader.lines() {
        let line = line.expect("the file reads");
        lines += 1;
        if lines == 1 && line.starts_with("version ") {
            continue; // the S3 file's header
        }
        let mut target = TargetValue {
            value: Value::Object(BTreeMap::from([("message".into(), Value::from(line))])),
            metadata: Value::Object(BTreeMap::new()),
            secrets: Secrets::default(),
        };
        if runtime.resolve(&mut target, &program, &timezone).is_ok() {
            kept += 1;
        }
        runtime.clear();
    }
    println!("{lines} {kept} {:.3}", start.elapsed().as_secs_f64());
}
