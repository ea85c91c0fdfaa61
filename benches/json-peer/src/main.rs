//! General JSON parsers doing the part of an event's reading that JSON is: a decoded CloudWatch
//! Logs document (written by the pipeline benchmark, see `make measure-json`) read into its
//! keys and each log event's id, timestamp and message, borrowed where the text allows, every
//! other key (`extractedFields`) skipped. Prints, for each document and parser, the median of
//! 50 runs in milliseconds.
use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Document<'a> {
    #[serde(borrow)]
    message_type: Cow<'a, str>,
    #[serde(borrow)]
    owner: Cow<'a, str>,
    #[serde(borrow)]
    log_group: Cow<'a, str>,
    #[serde(borrow)]
    log_stream: Cow<'a, str>,
    #[serde(borrow)]
    log_events: Vec<LogEvent<'a>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct LogEvent<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    timestamp: u64,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

const RUNS: usize = 50;

/// The median time of `RUNS` runs of `parse`, in milliseconds; each run must see every event.
fn median_ms(events: usize, mut parse: impl FnMut() -> usize) -> f64 {
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let seen = parse();
            let elapsed = start.elapsed().as_secs_f64() * 1e3;
            assert_eq!(seen, events, "a parser missed events");
            elapsed
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[RUNS / 2]
}

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    assert!(!paths.is_empty(), "usage: json-peer DOCUMENT.json...");
    for path in paths {
        let bytes = std::fs::read(&path).expect("the document reads");
        let events = serde_json::from_slice::<Document>(&bytes)
            .expect("serde_json reads the document")
            .log_events
            .len();
        let serde = median_ms(events, || {
            serde_json::from_slice::<Document>(&bytes)
                .unwrap()
                .log_events
                .len()
        });
        let sonic = median_ms(events, || {
            sonic_rs::from_slice::<Document>(&bytes)
                .unwrap()
                .log_events
                .len()
        });
        // simd-json parses in place: each run reads its own copy, whose making is timed apart.
        let mut copy = bytes.clone();
        let copying = median_ms(events, || {
            copy.copy_from_slice(&bytes);
            std::hint::black_box(&copy);
            events
        });
        let simd = median_ms(events, || {
            copy.copy_from_slice(&bytes);
            simd_json::serde::from_slice::<Document>(&mut copy)
                .unwrap()
                .log_events
                .len()
        }) - copying;
        println!(
            "{path}: {} bytes, {events} events: serde_json {serde:.3} ms, sonic-rs {sonic:.3} ms, simd-json {simd:.3} ms (its copy taken out)",
            bytes.len()
        );
    }
}
