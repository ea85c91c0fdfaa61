//! Throughput of the pipeline against the decoders' own speed: `cargo bench --bench pipeline`
//! (or `make bench`). Each workload is measured beside the floors that apply to it, in the
//! same run: an event beside the fastest whole-buffer decoders (`base64-simd` + libdeflate) and
//! the common ones (the `base64` crate + zlib-rs, streaming), a Kinesis batch beside the
//! fastest, an S3 file (streamed) beside streaming inflate + a line count.
//!
//! - `records`: split + classify + group over 10,000 decoded records, in records per second.
//! - `cloudwatch/*`: one Lambda event of 10,000 records, as the template's filters deliver it
//!   (REJECT records only), read into alerts. `extracted_20_sources` carries `extractedFields`
//!   on every log event (a space-delimited filter pattern) and 20 internal sources;
//!   `plain_500_sources` is the plain-term pattern's shape (the stack's default) with 500
//!   internal sources, so 500 alerts.
//! - `s3_file/*`: one gzip flow log file of 2,000,000 records as S3 delivers it (header line,
//!   400 interfaces, 40% internal rejects, 20% internet rejects, 40% accepted), streamed into
//!   alerts, with 10 and with 83,000 distinct internal sources, beside streaming inflate + a
//!   line count; `project` inflates on a second core when the machine has one (as `check`
//!   does with one file), `project_one_core` on the scanning thread; `check_json` is what
//!   `check --output json` does with it (alerts written as JSON lines as they come); with
//!   83,000 sources, `claims` and `alerts_json` are the steps after reading, apart.
//! - `kinesis/*`: a Kinesis batch as a CloudWatch Logs destination fills it: 100 records, each
//!   a gzip document of 4,500 REJECT records (about 1 MB of JSON) from one of two accounts,
//!   handled by a dry-run function (decode, incidents, messages; no SNS), beside base64-simd +
//!   libdeflate over the same records.
//!
//! With `PIPELINE_PAIRED=ROUNDS` (`make bench-ratios`), the ratios instead: each
//! workload and its floor run back to back, round after round, and the ratio of each round's
//! pair reported (see [`paired`]).

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use flate2::read::MultiGzDecoder;
use vpc_flow_alert::aws::publish::{RetryPolicy, SnsSink};
use vpc_flow_alert::detect::activity::Activity;
use vpc_flow_alert::detect::alert::{for_each_alert, for_each_claim, Origin};
use vpc_flow_alert::detect::claims::{Brief, Claims, Gathered, Gathering};
use vpc_flow_alert::detect::incident::IncidentMemory;
use vpc_flow_alert::flow::format::FlowFormat;
use vpc_flow_alert::function::{Function, FunctionConfig, DEFAULT_MAX_ALERTS};
use vpc_flow_alert::input::decode::{inflate_whole, scan_json, scan_reader};
use vpc_flow_alert::input::scan::{Report, Scanner};
use vpc_flow_alert::present::message::DIGEST_LISTED;
use vpc_flow_alert::present::render;
use vpc_flow_alert::Config;

const RECORDS: usize = 10_000;
const FILE_RECORDS: usize = 2_000_000;

fn config() -> Config {
    Config::with_vpc_cidrs("10.0.0.0/8").unwrap()
}

fn address(n: usize) -> String {
    format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255)
}

fn line(i: usize, src: &str, action: &str) -> String {
    format!(
        "2 123456789012 eni-{:017x} {src} 10.1.{}.{} {} {} 6 {} {} 1764195240 1764195300 {action} OK",
        i % 400,
        i % 7,
        i % 250,
        30000 + i % 30000,
        (i * 7) % 1024,
        i % 20 + 1,
        (i % 20 + 1) * 60
    )
}

/// REJECT records only (what the template's filters let through): one in five from inside,
/// spread over `sources` addresses, the rest from the internet.
fn rejects(sources: usize) -> Vec<String> {
    (0..RECORDS)
        .map(|i| match i % 5 {
            0 => line(i, &address(1 + i / 5 % sources), "REJECT"),
            _ => line(i, &format!("198.51.100.{}", i % 250), "REJECT"),
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// The Lambda event carrying `document`.
fn event(document: &[u8]) -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(gzip(document));
    serde_json::json!({"awslogs": {"data": data}})
        .to_string()
        .into_bytes()
}

/// A CloudWatch Logs document of `records` from the account `owner`, ids from `first_id`.
fn document(records: &[String], extracted: bool, owner: &str, first_id: usize) -> Vec<u8> {
    let events: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut e = serde_json::json!({"id": format!("{:056}", first_id + i), "timestamp": 1764195360000u64, "message": m});
            if extracted {
                // The names the default format's space-delimited filter pattern gives the fields.
                let fields: serde_json::Map<String, serde_json::Value> = FlowFormat::default_v2()
                    .pattern_names()
                    .zip(m.split(' '))
                    .map(|(k, v)| (k, v.into()))
                    .collect();
                e["extractedFields"] = fields.into();
            }
            e
        })
        .collect();
    serde_json::json!({"messageType": "DATA_MESSAGE", "owner": owner,
        "logGroup": "/vpc/flow-logs", "logStream": "eni-0a1b2c3d4e5f60718-all",
        "subscriptionFilters": ["rejects"], "logEvents": events})
    .to_string()
    .into_bytes()
}

/// Documents in a Kinesis batch, and REJECT records in each (about 1 MB of JSON).
const KINESIS_DOCUMENTS: usize = 100;
const DOCUMENT_RECORDS: usize = 4_500;

/// A Kinesis batch as Lambda delivers it from a CloudWatch Logs destination: 100 records, each
/// a gzip document of 4,500 REJECT records from one of two accounts (the members' default
/// term filter, so no `extractedFields`), 20 internal sources in all. Also the records' data.
fn kinesis_batch() -> (Vec<u8>, Vec<String>) {
    let records = rejects(20);
    let data: Vec<String> = (0..KINESIS_DOCUMENTS)
        .map(|d| {
            let owner = if d % 2 == 0 {
                "111111111111"
            } else {
                "222222222222"
            };
            let slice: Vec<String> = (0..DOCUMENT_RECORDS)
                .map(|i| records[(d * DOCUMENT_RECORDS + i) % RECORDS].clone())
                .collect();
            let doc = document(&slice, false, owner, d * DOCUMENT_RECORDS);
            base64::engine::general_purpose::STANDARD.encode(gzip(&doc))
        })
        .collect();
    let event = serde_json::json!({"Records": data.iter().enumerate().map(|(i, d)| serde_json::json!({
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": format!("shardId-000000000000:{i}"),
        "eventName": "aws:kinesis:record", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:999999999999:stream/flows",
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "p", "sequenceNumber": format!("{:056}", i),
            "data": d, "approximateArrivalTimestamp": 1764195360.5}})).collect::<Vec<_>>()});
    (event.to_string().into_bytes(), data)
}

/// A gzip S3 flow log file with `sources` distinct internal sources.
fn s3_file(sources: usize) -> Vec<u8> {
    let mut text = String::from("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n");
    for i in 0..FILE_RECORDS {
        let (src, action) = match i % 10 {
            k @ 0..4 => (address(1 + (i / 10 * 4 + k) % sources), "REJECT"),
            4 | 5 => (format!("198.51.100.{}", i % 250), "REJECT"),
            _ => (format!("10.0.3.{}", i % 250), "ACCEPT"),
        };
        text.push_str(&line(i, &src, action));
        text.push('\n');
    }
    gzip(text.as_bytes())
}

/// What the function does with a delivery: its report, then the claims it gathers (the first
/// `MAX_ALERTS_PER_INVOCATION` + 50 whole, the others briefly for the digest). The report's
/// slices are handed to their incidents, as the function does without a state table.
fn alerts(config: &Config, mut report: Report) -> Gathered {
    let mut memory = IncidentMemory::new(config.incidents);
    let mut claims = Claims::new(DEFAULT_MAX_ALERTS + DIGEST_LISTED, false);
    claims.reserve(report.activities.len());
    let mut gathering = Gathering {
        claims: &mut claims,
        part: report.fingerprint,
        thresholds: config.incidents.thresholds,
        origin: &report.origin,
        region: Some("us-east-1"),
        goes_out: |_: &Brief| true,
    };
    for_each_claim(
        &mut memory,
        std::mem::take(&mut report.activities),
        (report.fingerprint, 1_764_195_360),
        &mut gathering,
    );
    claims.finish()
}

/// The base64 text an event carries (`awslogs.data`).
fn event_data(event: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(event).unwrap()["awslogs"]["data"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A CloudWatch event read into gathered claims, as the function reads one.
fn event_alerts(config: &Config, event: &[u8]) -> Gathered {
    alerts(config, scan_json(event, config).unwrap())
}

/// The fastest whole-buffer decoders on an event's data: base64-simd, then libdeflate.
fn floor_simd_libdeflate(data: &str) -> Vec<u8> {
    let compressed = base64_simd::STANDARD.decode_to_vec(data).unwrap();
    inflate_whole(&compressed, usize::MAX).unwrap()
}

/// An S3 file streamed into gathered claims: how many are gathered.
fn file_alerts(config: &Config, file: &[u8]) -> usize {
    let report = scan_reader(file, config).unwrap();
    alerts(config, report).briefs.len()
}

/// Streaming inflate (zlib-rs) and a count of the lines: the S3 file's floor.
fn floor_inflate_lines(file: &[u8]) -> usize {
    let mut lines = 0usize;
    let mut reader = BufReader::with_capacity(64 * 1024, MultiGzDecoder::new(file));
    loop {
        let buf = reader.fill_buf().unwrap();
        if buf.is_empty() {
            break;
        }
        lines += memchr::memchr_iter(b'\n', buf).count();
        let n = buf.len();
        reader.consume(n);
    }
    lines
}

/// What `check --output json` does with a report's slices: every alert made and written as a
/// JSON line as it comes.
fn write_alerts_json(config: &Config, report: &Report, activities: Vec<Activity>) {
    let mut memory = IncidentMemory::new(config.incidents);
    let mut out = std::io::BufWriter::new(std::io::sink());
    for_each_alert(
        &mut memory,
        activities,
        (report.fingerprint, 1_764_195_360),
        &report.origin,
        Some("us-east-1"),
        |alert| render::write_json(&mut out, &alert).is_ok() && writeln!(out).is_ok(),
    );
    out.flush().unwrap();
}

fn records(c: &mut Criterion) {
    let config = config();
    let records = rejects(50);
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
    group.finish();
}

fn cloudwatch(c: &mut Criterion) {
    let config = config();
    let mut group = c.benchmark_group("cloudwatch");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (name, extracted, sources) in [
        ("extracted_20_sources", true, 20),
        ("plain_500_sources", false, 500),
    ] {
        let document = document(&rejects(sources), extracted, "123456789012", 0);
        // `make measure-json` has general JSON parsers read the same documents.
        if let Some(dir) = std::env::var_os("PIPELINE_DOCUMENTS") {
            std::fs::write(
                std::path::Path::new(&dir).join(format!("{name}.json")),
                &document,
            )
            .unwrap();
        }
        let event = event(&document);
        let data = event_data(&event);
        let report = scan_json(&event, &config).unwrap();
        assert_eq!(alerts(&config, report).briefs.len(), sources, "{name}");
        group.bench_function(format!("{name}/project"), |b| {
            b.iter(|| black_box(event_alerts(&config, black_box(&event))))
        });
        // The decoded document alone, to compare with general JSON parsers (`make measure-json`).
        group.bench_function(format!("{name}/project_document"), |b| {
            b.iter(|| {
                let report = scan_json(black_box(&document), &config).unwrap();
                black_box(alerts(&config, report))
            })
        });
        group.bench_function(format!("{name}/floor_simd_libdeflate"), |b| {
            b.iter(|| black_box(floor_simd_libdeflate(black_box(&data))))
        });
        group.bench_function(format!("{name}/floor_base64_zlib_rs"), |b| {
            b.iter(|| {
                let compressed = base64::engine::general_purpose::STANDARD
                    .decode(black_box(&data))
                    .unwrap();
                let mut out = Vec::with_capacity(compressed.len() * 8);
                MultiGzDecoder::new(&compressed[..])
                    .read_to_end(&mut out)
                    .unwrap();
                black_box(out)
            })
        });
    }
    group.finish();
}

fn s3(c: &mut Criterion) {
    let config = config();
    let one_core = Config {
        inflate_apart: false,
        ..config.clone()
    };
    let mut group = c.benchmark_group("s3_file");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(FILE_RECORDS as u64));
    for sources in [10, 83_000] {
        let file = s3_file(sources);
        let report = scan_reader(&file[..], &config).unwrap();
        assert_eq!(report.activities.len(), sources);
        group.bench_function(format!("{sources}_sources/project"), |b| {
            b.iter(|| black_box(file_alerts(&config, black_box(&file))))
        });
        // The same on one core (`check --jobs 1`): inflated on the scanning thread.
        group.bench_function(format!("{sources}_sources/project_one_core"), |b| {
            b.iter(|| black_box(file_alerts(&one_core, black_box(&file))))
        });
        // What `check --output json` does: the alerts written as they come, as JSON lines.
        group.bench_function(format!("{sources}_sources/check_json"), |b| {
            b.iter(|| {
                let mut report = scan_reader(black_box(&file[..]), &config).unwrap();
                let activities = std::mem::take(&mut report.activities);
                write_alerts_json(&config, &report, activities)
            })
        });
        // The steps after reading, apart: the slices through their incidents into gathered
        // claims (`claims`), and every alert made and written as a JSON line (`alerts_json`).
        if sources > 10 {
            group.bench_function(format!("{sources}_sources/claims"), |b| {
                b.iter_batched(
                    || Report {
                        activities: report.activities.clone(),
                        fingerprint: report.fingerprint,
                        ..Report::default()
                    },
                    |report| black_box(alerts(&config, report).briefs.len()),
                    BatchSize::PerIteration,
                )
            });
            group.bench_function(format!("{sources}_sources/alerts_json"), |b| {
                b.iter_batched(
                    || report.activities.clone(),
                    |activities| write_alerts_json(&config, &report, activities),
                    BatchSize::PerIteration,
                )
            });
        }
        group.bench_function(format!("{sources}_sources/floor_inflate_lines"), |b| {
            b.iter(|| black_box(floor_inflate_lines(black_box(&file))))
        });
    }
    group.finish();
}

fn kinesis(c: &mut Criterion) {
    let (event, data) = kinesis_batch();
    let compressed: usize = data.iter().map(|d| d.len() * 3 / 4).sum();
    eprintln!(
        "kinesis batch: {} records of {} log events; event {} bytes, gzip data {} bytes",
        KINESIS_DOCUMENTS,
        DOCUMENT_RECORDS,
        event.len(),
        compressed
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A dry-run function without a table: what one instance does with the batch, bar SNS.
    let function = || {
        let env = |k: &str| match k {
            "VPC_CIDRS" => Some("10.0.0.0/8".to_string()),
            "DRY_RUN" => Some("true".to_string()),
            _ => None,
        };
        Function::<SnsSink>::new(
            FunctionConfig::from_env(env).unwrap(),
            None,
            RetryPolicy::default(),
        )
    };
    let deadline = || Instant::now() + Duration::from_secs(60);
    let outcome = runtime
        .block_on(function().invoke(&event, deadline()))
        .unwrap();
    assert_eq!(outcome.summary.alerts, 20);
    assert_eq!(outcome.batch.unwrap().failed(), Vec::<&str>::new());
    let mut group = c.benchmark_group("kinesis");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        (KINESIS_DOCUMENTS * DOCUMENT_RECORDS) as u64,
    ));
    group.bench_function("batch_100_documents/project", |b| {
        b.iter_batched(
            function,
            |f| {
                black_box(
                    runtime
                        .block_on(f.invoke(black_box(&event), deadline()))
                        .is_ok(),
                )
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("batch_100_documents/floor_simd_libdeflate", |b| {
        b.iter(|| {
            for d in &data {
                let compressed = base64_simd::STANDARD.decode_to_vec(black_box(d)).unwrap();
                black_box(inflate_whole(&compressed, usize::MAX).unwrap());
            }
        })
    });
    group.finish();
}

/// `PIPELINE_PAIRED=ROUNDS` (`make bench-ratios`): each target's ratio measured in pairs. Both
/// sides of a ratio are run back to back in every round (which goes first alternates), and the
/// round's ratio is the one reported: the median and the range over the rounds. So the two are
/// measured seconds apart, where criterion's rows are minutes apart; on a shared host whose
/// speed swings within seconds, the range shows how far.
fn paired(rounds: usize) {
    let config = config();
    let one_core = Config {
        inflate_apart: false,
        ..config.clone()
    };
    println!("ratio: median (range) over {rounds} rounds; each side's median time");
    for (name, extracted, sources, repeat) in [
        ("extracted_20_sources", true, 20, 40),
        ("plain_500_sources", false, 500, 60),
    ] {
        let event = event(&document(&rejects(sources), extracted, "123456789012", 0));
        let data = event_data(&event);
        pair(
            &format!("cloudwatch/{name}/project : floor_simd_libdeflate"),
            (rounds, repeat),
            || event_alerts(&config, black_box(&event)),
            || floor_simd_libdeflate(black_box(&data)),
        );
    }
    let files = [10, 83_000].map(|sources| (sources, s3_file(sources)));
    let [(_, few), (_, many)] = &files;
    for (row, config) in [("project", &config), ("project_one_core", &one_core)] {
        for (sources, file) in &files {
            pair(
                &format!("s3_file/{sources}_sources/{row} : floor_inflate_lines"),
                (rounds, 1),
                || file_alerts(config, black_box(file)),
                || floor_inflate_lines(black_box(file)),
            );
        }
        pair(
            &format!("s3_file/83000_sources/{row} : 10_sources/{row}"),
            (rounds, 1),
            || file_alerts(config, black_box(many)),
            || file_alerts(config, black_box(few)),
        );
    }
}

/// Runs `a` and `b` (each `repeat` times a sample) in `rounds` pairs after one of each to warm
/// up, and prints the ratio a : b.
fn pair<A, B>(
    name: &str,
    (rounds, repeat): (usize, usize),
    mut a: impl FnMut() -> A,
    mut b: impl FnMut() -> B,
) {
    fn time<T>(repeat: usize, f: &mut impl FnMut() -> T) -> f64 {
        let start = Instant::now();
        for _ in 0..repeat {
            black_box(f());
        }
        start.elapsed().as_secs_f64() / repeat as f64
    }
    time(repeat, &mut a);
    time(repeat, &mut b);
    let samples: Vec<(f64, f64)> = (0..rounds.max(1))
        .map(|round| match round % 2 {
            0 => (time(repeat, &mut a), time(repeat, &mut b)),
            _ => {
                let second = time(repeat, &mut b);
                (time(repeat, &mut a), second)
            }
        })
        .collect();
    let sorted = |values: Vec<f64>| {
        let mut values = values;
        values.sort_by(f64::total_cmp);
        values
    };
    let median = |values: &[f64]| values[values.len() / 2];
    let ratios = sorted(samples.iter().map(|(a, b)| a / b).collect());
    let a_times = sorted(samples.iter().map(|s| s.0).collect());
    let b_times = sorted(samples.iter().map(|s| s.1).collect());
    println!(
        "{name}: {:.2}x ({:.2}-{:.2}x); {:.3} ms : {:.3} ms",
        median(&ratios),
        ratios[0],
        ratios[ratios.len() - 1],
        median(&a_times) * 1e3,
        median(&b_times) * 1e3
    );
}

criterion_group!(benches, records, cloudwatch, s3, kinesis);

fn main() {
    if let Ok(rounds) = std::env::var("PIPELINE_PAIRED") {
        let rounds = rounds
            .parse()
            .expect("PIPELINE_PAIRED is a number of rounds");
        paired(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
