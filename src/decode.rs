//! Decoding: from the bytes of an input to the flow log records in it.
//!
//! Three kinds of input are recognised from their content, not their name:
//! - a CloudWatch Logs subscription event as Lambda receives it,
//!   `{"awslogs":{"data": base64(gzip(json))}}`;
//! - the decoded CloudWatch Logs document (`messageType`, `owner`, `logEvents`, ...);
//! - raw flow log records, plain or gzip-compressed, as flow logs are delivered to S3, with an
//!   optional header line naming the fields.
//!
//! JSON inputs are decoded into one buffer whose size is capped (`MAX_DECODED_BYTES`), and
//! records are borrowed from it. Raw records are streamed line by line, so memory stays
//! bounded whatever the size of the file.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{self, BufRead, BufReader, Read};

use base64::Engine as _;
use flate2::bufread::MultiGzDecoder;
use serde::Deserialize;

use crate::alert::Origin;
use crate::config::Config;
use crate::format::FlowFormat;
use crate::scan::{Report, Scanner};

/// The longest raw record read as a record; longer lines are counted malformed and skipped.
/// Real records are a few hundred bytes even with every field of every version.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why an input cannot be decoded. Every variant says what is wrong with the input.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid JSON: {0}")]
    Json(serde_json::Error),
    #[error("JSON that is neither a CloudWatch Logs subscription event (`awslogs`) nor a CloudWatch Logs document (`messageType`, `logEvents`)")]
    NotAnEvent,
    #[error("`awslogs.data` is not valid base64: {0}")]
    Base64(base64::DecodeError),
    #[error("`awslogs.data` is not gzip data (it should be base64 of gzip)")]
    NotGzip,
    #[error("bad or truncated gzip data: {0}")]
    Gzip(io::Error),
    #[error("decoded data is larger than the limit of {limit} bytes (set MAX_DECODED_BYTES or --max-decoded-bytes to raise it)")]
    TooLarge { limit: usize },
    #[error("invalid CloudWatch Logs document: {0}")]
    Document(String),
    #[error("the header line does not describe a usable format: {0}")]
    Header(crate::format::FormatError),
    #[error("{0}")]
    Io(io::Error),
}

/// The CloudWatch Logs document, and the subscription event around it: every key is optional
/// here so that one parse recognises either; [`LogsDocument::check`] enforces what is required.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogsDocument<'a> {
    #[serde(borrow)]
    awslogs: Option<AwsLogs<'a>>,
    #[serde(borrow)]
    message_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    owner: Option<Cow<'a, str>>,
    #[serde(borrow)]
    log_group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    log_stream: Option<Cow<'a, str>>,
    #[serde(borrow)]
    log_events: Option<Vec<LogEvent<'a>>>,
}

#[derive(Debug, Deserialize)]
struct AwsLogs<'a> {
    #[serde(borrow)]
    data: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct LogEvent<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

impl LogsDocument<'_> {
    fn is_document(&self) -> bool {
        self.message_type.is_some() || self.log_events.is_some()
    }

    fn check(&self) -> Result<(), DecodeError> {
        let missing = |key: &str| DecodeError::Document(format!("missing key `{key}`"));
        let kind = self
            .message_type
            .as_deref()
            .ok_or_else(|| missing("messageType"))?;
        match kind {
            "CONTROL_MESSAGE" => Ok(()),
            "DATA_MESSAGE" => self
                .log_events
                .as_ref()
                .map(|_| ())
                .ok_or_else(|| missing("logEvents")),
            other => Err(DecodeError::Document(format!(
                "unknown messageType `{other}` (expected DATA_MESSAGE or CONTROL_MESSAGE)"
            ))),
        }
    }

    fn scan(&self, config: &Config) -> Report {
        let mut scanner = Scanner::new(config);
        let owner = self.owner.as_deref();
        let mut ids = DefaultHasher::new();
        let mut with_ids = false;
        if self.message_type.as_deref() == Some("DATA_MESSAGE") {
            for event in self.log_events.iter().flatten() {
                scanner.record(&event.message, owner);
                if let Some(id) = &event.id {
                    id.hash(&mut ids);
                    with_ids = true;
                }
            }
        }
        let origin = Origin {
            owner: self.owner.as_deref().map(str::to_owned),
            log_group: self.log_group.as_deref().map(str::to_owned),
            log_stream: self.log_stream.as_deref().map(str::to_owned),
        };
        let mut report = scanner.finish(&origin);
        report.fingerprint = with_ids.then(|| ids.finish());
        report
    }
}

/// Scans a JSON input: a subscription event or a decoded document.
pub fn scan_json(input: &[u8], config: &Config) -> Result<Report, DecodeError> {
    let outer: LogsDocument<'_> = serde_json::from_slice(input).map_err(DecodeError::Json)?;
    if let Some(awslogs) = &outer.awslogs {
        let decoded = decode_data(&awslogs.data, config.max_decoded_bytes)?;
        let document: LogsDocument<'_> =
            serde_json::from_slice(&decoded).map_err(|e| DecodeError::Document(e.to_string()))?;
        if !document.is_document() {
            return Err(DecodeError::Document(
                "`awslogs.data` does not hold a CloudWatch Logs document".into(),
            ));
        }
        document.check()?;
        return Ok(document.scan(config));
    }
    if !outer.is_document() {
        return Err(DecodeError::NotAnEvent);
    }
    outer.check()?;
    Ok(outer.scan(config))
}

/// base64, then gzip, into a buffer of at most `limit` bytes.
pub fn decode_data(data: &str, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(DecodeError::Base64)?;
    if !compressed.starts_with(&GZIP_MAGIC) {
        return Err(DecodeError::NotGzip);
    }
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(8).min(limit));
    MultiGzDecoder::new(&compressed[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(DecodeError::Gzip)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

/// Scans any input, recognised from its content: gzip is inflated as it is read, JSON is
/// decoded as an event or document, anything else is streamed as raw records.
pub fn scan_reader(reader: impl Read, config: &Config) -> Result<Report, DecodeError> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let head = reader.fill_buf().map_err(DecodeError::Io)?;
    if head.starts_with(&GZIP_MAGIC) {
        let inflated = BufReader::with_capacity(64 * 1024, MultiGzDecoder::new(reader));
        return scan_plain(inflated, config, true);
    }
    scan_plain(reader, config, false)
}

fn scan_plain(
    mut reader: impl BufRead,
    config: &Config,
    gzip: bool,
) -> Result<Report, DecodeError> {
    let io_error = |e: io::Error| {
        if gzip {
            DecodeError::Gzip(e)
        } else {
            DecodeError::Io(e)
        }
    };
    let head = reader.fill_buf().map_err(io_error)?;
    let first = head
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(head)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        let limit = config.max_decoded_bytes;
        let mut json = Vec::new();
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut json)
            .map_err(io_error)?;
        if json.len() > limit {
            return Err(DecodeError::TooLarge { limit });
        }
        return scan_json(&json, config);
    }
    scan_lines(reader, config).map_err(|e| match e {
        DecodeError::Io(e) => io_error(e),
        other => other,
    })
}

/// Streams raw flow log records; the first line may be a header naming the fields.
pub fn scan_lines(mut reader: impl BufRead, config: &Config) -> Result<Report, DecodeError> {
    let mut scanner = Scanner::new(config);
    let mut line = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        line.clear();
        let (read, complete) = read_line_capped(&mut reader, &mut line)?;
        if read == 0 {
            break;
        }
        if !complete {
            scanner.unreadable_record();
            continue;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            scanner.unreadable_record();
            continue;
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if first && !text.trim_ascii().is_empty() {
            first = false;
            if FlowFormat::looks_like_header(text) {
                scanner.use_format(FlowFormat::parse(text).map_err(DecodeError::Header)?);
                continue;
            }
        }
        scanner.record(text, None);
    }
    Ok(scanner.finish(&Origin::default()))
}

/// Reads one line into `line` unless it is longer than [`MAX_LINE_BYTES`], in which case the
/// rest of it is skipped without being kept. Returns the bytes consumed and whether the line
/// was kept whole.
fn read_line_capped(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
) -> Result<(usize, bool), DecodeError> {
    let mut consumed = 0;
    let mut complete = true;
    loop {
        let buf = reader.fill_buf().map_err(DecodeError::Io)?;
        if buf.is_empty() {
            return Ok((consumed, complete));
        }
        let (chunk, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        if complete && line.len() + chunk.len() <= MAX_LINE_BYTES + 1 {
            line.extend_from_slice(chunk);
        } else {
            complete = false;
            line.clear();
        }
        let n = chunk.len();
        reader.consume(n);
        consumed += n;
        if done {
            return Ok((consumed, complete));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RawConfig, RawSetting};
    use flate2::write::GzEncoder;
    use std::io::Write;

    const REJECT: &str = "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK";

    fn config() -> Config {
        RawConfig {
            vpc_cidrs: Some(RawSetting::new("VPC_CIDRS", "172.31.0.0/16")),
            ..Default::default()
        }
        .validate()
        .unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn document(messages: &[&str]) -> String {
        let events: Vec<_> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| serde_json::json!({"id": i.to_string(), "timestamp": 0, "message": m}))
            .collect();
        serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789010",
            "logGroup": "vpc-flow-logs", "logStream": "eni-1235b8ca123456789-all",
            "subscriptionFilters": ["rejects"], "logEvents": events,
        })
        .to_string()
    }

    fn event(document: &str) -> String {
        let data = base64::engine::general_purpose::STANDARD.encode(gzip(document.as_bytes()));
        serde_json::json!({"awslogs": {"data": data}}).to_string()
    }

    #[test]
    fn a_subscription_event_and_its_document_give_the_same_report() {
        let doc = document(&[REJECT]);
        let from_event = scan_reader(event(&doc).as_bytes(), &config()).unwrap();
        let from_doc = scan_reader(doc.as_bytes(), &config()).unwrap();
        assert_eq!(from_event.counts, from_doc.counts);
        assert_eq!(from_event.alerts, from_doc.alerts);
        assert_eq!(
            from_event.alerts[0].log_stream.as_deref(),
            Some("eni-1235b8ca123456789-all")
        );
        assert!(from_event.fingerprint.is_some());
    }

    #[test]
    fn a_control_message_yields_no_records_and_no_error() {
        let doc = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Lambda."}]}"#;
        let report = scan_reader(event(doc).as_bytes(), &config()).unwrap();
        assert_eq!(report.counts.records, 0);
        assert!(report.alerts.is_empty());
    }

    #[test]
    fn broken_envelopes_say_what_is_wrong() {
        let cases = [
            (
                r#"{"awslogs":{"data":"%%%"}}"#.to_string(),
                "not valid base64",
            ),
            (r#"{"awslogs":{"data":"aGVsbG8="}}"#.to_string(), "not gzip"),
            (r#"{"awslogs":{"data":12}}"#.to_string(), "invalid JSON"),
            (r#"{"awslogs":{}}"#.to_string(), "missing field `data`"),
            (
                r#"{"hello":"world"}"#.to_string(),
                "neither a CloudWatch Logs",
            ),
            (r#"{"awslogs":"#.to_string(), "invalid JSON"),
            (
                r#"{"logEvents":[]}"#.to_string(),
                "missing key `messageType`",
            ),
            (
                r#"{"messageType":"DATA_MESSAGE"}"#.to_string(),
                "missing key `logEvents`",
            ),
            (
                event(r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1"}]}"#),
                "missing field `message`",
            ),
        ];
        for (input, expected) in cases {
            let err = scan_reader(input.as_bytes(), &config())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn truncated_gzip_is_an_error_not_a_short_read() {
        let compressed = gzip(document(&[REJECT; 50]).as_bytes());
        let cut = &compressed[..compressed.len() / 2];
        let data = base64::engine::general_purpose::STANDARD.encode(cut);
        let input = serde_json::json!({"awslogs": {"data": data}}).to_string();
        let err = scan_reader(input.as_bytes(), &config()).unwrap_err();
        assert!(matches!(err, DecodeError::Gzip(_)), "{err}");
        let err = scan_reader(cut, &config()).unwrap_err();
        assert!(matches!(err, DecodeError::Gzip(_)), "{err}");
    }

    #[test]
    fn a_compression_bomb_stops_at_the_limit() {
        let mut config = config();
        config.max_decoded_bytes = 1024 * 1024;
        let bomb = gzip(&vec![b' '; 8 * 1024 * 1024]);
        let data = base64::engine::general_purpose::STANDARD.encode(bomb);
        let input = serde_json::json!({"awslogs": {"data": data}}).to_string();
        let err = scan_reader(input.as_bytes(), &config).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooLarge { limit: 1048576 }),
            "{err}"
        );
    }

    #[test]
    fn raw_records_plain_or_gzip_with_a_header_use_the_headers_format() {
        let file = format!(
            "action srcaddr dstaddr dstport log-status\nREJECT 172.31.1.1 172.31.1.2 22 OK\n\nACCEPT 172.31.1.1 172.31.1.2 22 OK\n{REJECT}\n"
        );
        for input in [file.clone().into_bytes(), gzip(file.as_bytes())] {
            let report = scan_reader(&input[..], &config()).unwrap();
            assert_eq!(report.counts.records, 3);
            assert_eq!(
                report.counts.malformed, 1,
                "the default-format record does not fit the header"
            );
            assert_eq!(report.counts.findings, 1);
            assert_eq!(report.alerts[0].source.to_string(), "172.31.1.1");
        }
    }

    #[test]
    fn overlong_and_non_utf8_lines_are_malformed_and_the_rest_is_read() {
        let mut file = vec![b'x'; MAX_LINE_BYTES * 3];
        file.extend_from_slice(b"\n\xff\xfe bad\n");
        file.extend_from_slice(REJECT.as_bytes());
        let report = scan_reader(&file[..], &config()).unwrap();
        assert_eq!(report.counts.records, 3);
        assert_eq!(report.counts.malformed, 2);
        assert_eq!(report.counts.findings, 1);
    }
}
