//! Throughput of the pipeline: `cargo bench --bench pipeline` (or `make bench`).
//!
//! - `records`: split + classify + aggregate over decoded records (10,000 of them: accepted
//!   traffic, internet rejects and internal rejects), in records per second.
//! - `event`: a whole Lambda event (base64, gunzip, JSON, parse, detect, group) beside
//!   `event_decode_only` (base64 and gunzip alone), for the 2x target; the events carry no
//!   `extractedFields` (the plain-term filter pattern's shape, the stack's default).
//! - `event_extracted`: the same records with `extractedFields` on every log event (what a
//!   space-delimited filter pattern delivers), beside `event_extracted_decode_only`.

use std::hint::black_box;
use std::io::Write;

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vpc_flow_alert::detect::alert::Origin;
use vpc_flow_alert::input::decode::{decode_data, scan_json};
use vpc_flow_alert::input::scan::Scanner;
use vpc_flow_alert::Config;

const RECORDS: usize = 10_000;

fn config() -> Config {
    Config::with_vpc_cidrs("10.0.0.0/16").unwrap()
}

/// 70% accepted, 20% rejected from the internet, 10% rejected from inside (50 sources).
fn records() -> Vec<String> {
    (0..RECORDS)
        .map(|i| {
            let (src, action) = match i % 10 {
                0 => (format!("10.0.{}.{}", i % 5, i % 10 + 10), "REJECT"),
                1 | 2 => (format!("198.51.100.{}", i % 250), "REJECT"),
                _ => (format!("10.0.3.{}", i % 250), "ACCEPT"),
            };
            format!(
                "2 123456789012 eni-0a1b2c3d4e5f60718 {src} 10.0.{}.{} {} {} 6 {} {} 1764195240 1764195300 {action} OK",
                i % 7, i % 250, 30000 + i % 30000, i % 1024, i % 20 + 1, (i % 20 + 1) * 60
            )
        })
        .collect()
}

/// The names the default space-delimited filter pattern gives the fields.
const FIELDS: [&str; 14] = [
    "version",
    "account_id",
    "interface_id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log_status",
];

fn event(records: &[String], extracted: bool) -> Vec<u8> {
    let events: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut e = serde_json::json!({"id": format!("{:056}", i), "timestamp": 1764195360000u64, "message": m});
            if extracted {
                let fields: serde_json::Map<String, serde_json::Value> = FIELDS
                    .iter()
                    .zip(m.split(' '))
                    .map(|(k, v)| (k.to_string(), v.into()))
                    .collect();
                e["extractedFields"] = fields.into();
            }
            e
        })
        .collect();
    let doc = serde_json::json!({"messageType": "DATA_MESSAGE", "owner": "123456789012",
        "logGroup": "/vpc/flow-logs", "logStream": "eni-0a1b2c3d4e5f60718-all",
        "subscriptionFilters": ["rejects"], "logEvents": events});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(doc.to_string().as_bytes()).unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    serde_json::json!({"awslogs": {"data": data}})
        .to_string()
        .into_bytes()
}

fn bench(c: &mut Criterion) {
    let config = config();
    let records = records();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("records", |b| {
        b.iter(|| {
            let mut scanner = Scanner::new(&config);
            for line in &records {
                scanner.record(black_box(line), None);
            }
            black_box(scanner.finish(Origin::default()))
        })
    });
    for (name, extracted) in [("event", false), ("event_extracted", true)] {
        let event = event(&records, extracted);
        let data = serde_json::from_slice::<serde_json::Value>(&event).unwrap()["awslogs"]["data"]
            .as_str()
            .unwrap()
            .to_string();
        group.bench_function(name, |b| {
            b.iter(|| black_box(scan_json(black_box(&event), &config).unwrap()))
        });
        group.bench_function(format!("{name}_decode_only"), |b| {
            b.iter(|| black_box(decode_data(black_box(&data), config.max_decoded_bytes).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
