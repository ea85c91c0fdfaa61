//! Regenerates the sample Lambda events in `events/` from the readable records beside them
//! (`events/records/*.log`): `make events`, or `cargo run --example make_events`.
//!
//! Each event is what CloudWatch Logs sends a subscribed function,
//! `{"awslogs":{"data": base64(gzip(json))}}`, with padded base64, shaped as production sends
//! it: every log event carries the `extractedFields` that a space-delimited filter pattern
//! adds. A records file with `# delivery: <log-stream>` lines is several deliveries (one per
//! interface's log stream, as a flow log writes them), written as `<name>-01.json`, ..., and
//! once more as one Kinesis batch, `kinesis-<name>.json`, as a CloudWatch Logs destination
//! writes them into its stream (organization mode). Every
//! event written is read back with `aws_lambda_events`' own `LogsEvent` to prove that Lambda
//! tooling accepts it.

use std::fs;
use std::io::Write;
use std::path::Path;

use aws_lambda_events::event::cloudwatch_logs::LogsEvent;
use base64::Engine as _;
use flate2::{write::GzEncoder, Compression};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut sources: Vec<_> = fs::read_dir(dir.join("records"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    sources.sort();
    for source in sources
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
    {
        let text = fs::read_to_string(source)?;
        let name = source
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("bad file name")?;
        let deliveries = deliveries(&text);
        let first_id = &mut 0u64;
        let mut documents = Vec::new();
        for (n, (stream, lines)) in deliveries.iter().enumerate() {
            let event = event_for(&text, stream, lines, first_id);
            let checked: LogsEvent = serde_json::from_str(&event)?;
            let value: serde_json::Value = serde_json::from_str(&event)?;
            documents.push(value["awslogs"]["data"].clone());
            let target = match deliveries.len() {
                1 => dir.join(format!("{name}.json")),
                _ => dir.join(format!("{name}-{:02}.json", n + 1)),
            };
            fs::write(&target, format!("{event}\n"))?;
            println!(
                "{}: {} log events",
                target.strip_prefix(env!("CARGO_MANIFEST_DIR"))?.display(),
                checked.aws_logs.data.log_events.len()
            );
        }
        if deliveries.len() > 1 {
            // The same deliveries as a CloudWatch Logs destination puts them into its Kinesis
            // stream (organization mode): each record's data is the same base64 of gzip.
            let records: Vec<_> = documents
                .iter()
                .enumerate()
                .map(|(i, data)| {
                    let sequence = format!("4963{:052}", i + 1);
                    json!({"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": format!("{name}-{i}"),
                        "sequenceNumber": sequence, "data": data, "approximateArrivalTimestamp": 1764195420.5},
                        "eventSource": "aws:kinesis", "eventVersion": "1.0",
                        "eventID": format!("shardId-000000000000:{sequence}"), "eventName": "aws:kinesis:record",
                        "invokeIdentityArn": "arn:aws:iam::123456789012:role/vpc-flow-alert",
                        "awsRegion": "us-east-1",
                        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/vpc-flow-alert-FlowStream"})
                })
                .collect();
            let event = serde_json::to_string_pretty(&json!({"Records": records}))?;
            let checked: aws_lambda_events::event::kinesis::KinesisEvent =
                serde_json::from_str(&event)?;
            let target = dir.join(format!("kinesis-{name}.json"));
            fs::write(&target, format!("{event}\n"))?;
            println!(
                "{}: {} Kinesis records",
                target.strip_prefix(env!("CARGO_MANIFEST_DIR"))?.display(),
                checked.records.len()
            );
        }
    }
    Ok(())
}

/// The deliveries of a records file: its `# delivery: <log-stream>` sections, or the whole
/// file as one delivery on its `# log-stream:`.
fn deliveries(text: &str) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        if let Some(stream) = line.strip_prefix("# delivery:") {
            out.push((stream.trim().to_string(), Vec::new()));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            if out.is_empty() {
                out.push((header(text, "log-stream").to_string(), Vec::new()));
            }
            out.last_mut().expect("just pushed").1.push(line);
        }
    }
    if out.is_empty() {
        out.push((header(text, "log-stream").to_string(), Vec::new()));
    }
    out
}

fn header<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("# {key}:")))
        .map(str::trim)
        .unwrap_or("")
}

/// Builds the event of one delivery: `# key: value` lines of the records file set the
/// envelope; `lines` are the log events' messages, numbered from `first_id` on.
fn event_for(text: &str, stream: &str, lines: &[&str], first_id: &mut u64) -> String {
    let header = |key: &str| header(text, key);
    let message_type = match header("message-type") {
        "" => "DATA_MESSAGE",
        other => other,
    };
    // The names a space-delimited filter pattern gives the fields: the format's, with
    // underscores.
    let format = match header("format") {
        "" => vpc_flow_alert::flow::format::DEFAULT_FORMAT,
        f => f,
    };
    let names: Vec<String> = format
        .split_ascii_whitespace()
        .map(|t| {
            t.trim_start_matches("${")
                .trim_end_matches('}')
                .replace('-', "_")
        })
        .collect();
    let base_ms: u64 = 1_764_195_360_000;
    let events: Vec<_> = lines
        .iter()
        .map(|message| {
            let i = *first_id;
            *first_id += 1;
            let id = format!("{base_ms}{:040}", 38_551_234_400_000_000u64 + i);
            let fields: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .cloned()
                .zip(message.split_ascii_whitespace().map(|v| json!(v)))
                .collect();
            match message_type {
                "DATA_MESSAGE" => json!({"id": id, "timestamp": base_ms + i, "message": message, "extractedFields": fields}),
                _ => json!({"id": id, "timestamp": base_ms + i, "message": message}),
            }
        })
        .collect();
    let document = json!({
        "messageType": message_type,
        "owner": header("owner"),
        "logGroup": header("log-group"),
        "logStream": stream,
        "subscriptionFilters": if message_type == "DATA_MESSAGE" { json!(["vpc-flow-alert-rejects"]) } else { json!([]) },
        "logEvents": events,
    });
    // mtime 0 and a fixed level keep the output the same from one run to the next.
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(document.to_string().as_bytes())
        .expect("write to memory");
    let data =
        base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("write to memory"));
    json!({"awslogs": {"data": data}}).to_string()
}
