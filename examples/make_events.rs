//! Regenerates the sample Lambda events in `events/` from the readable records beside them
//! (`events/records/*.log`): `make events`, or `cargo run --example make_events`.
//!
//! Each event is what CloudWatch Logs sends a subscribed function,
//! `{"awslogs":{"data": base64(gzip(json))}}`, with padded base64. Every event written is read
//! back with `aws_lambda_events`' own `LogsEvent` to prove that Lambda tooling accepts it.

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
        let event = event_for(&text);
        let checked: LogsEvent = serde_json::from_str(&event)?;
        let name = source
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("bad file name")?;
        let target = dir.join(format!("{name}.json"));
        fs::write(&target, format!("{event}\n"))?;
        println!(
            "{}: {} log events",
            target.strip_prefix(env!("CARGO_MANIFEST_DIR"))?.display(),
            checked.aws_logs.data.log_events.len()
        );
    }
    Ok(())
}

/// Builds the event for a records file: `# key: value` lines set the envelope, other lines
/// that are not comments are the log events' messages.
fn event_for(text: &str) -> String {
    let header = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("# {key}:")))
            .map(str::trim)
            .unwrap_or("")
    };
    let message_type = match header("message-type") {
        "" => "DATA_MESSAGE",
        other => other,
    };
    let base_ms: u64 = 1_764_195_360_000;
    let events: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .enumerate()
        .map(|(i, message)| {
            let id = format!("{base_ms}{:040}", 38_551_234_400_000_000u64 + i as u64);
            json!({"id": id, "timestamp": base_ms + i as u64, "message": message})
        })
        .collect();
    let document = json!({
        "messageType": message_type,
        "owner": header("owner"),
        "logGroup": header("log-group"),
        "logStream": header("log-stream"),
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
