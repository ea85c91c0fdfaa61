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
use std::thread;

use base64::Engine as _;
use flate2::bufread::MultiGzDecoder;
use serde::Deserialize;

use crate::config::Config;
use crate::detect::activity::Pending;
use crate::detect::alert::Origin;
use crate::input::events::{recognise, Event};
use crate::input::pipe::{read_apart, read_lines_apart, Ahead, AheadWhen, LinesAhead, ReadApart};
use crate::input::scan::{ReadAhead, Report, Scanner};
use byteclass::string_stop;
use byteclass::swar::word;

pub use crate::input::scan::MAX_LINE_BYTES;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// What a Parquet file starts with (flow logs delivered to S3 may be Parquet).
const PARQUET_MAGIC: &[u8] = b"PAR1";

/// Why an input cannot be decoded. Every variant says what is wrong with the input.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid JSON: {0}")]
    Json(serde_json::Error),
    #[error("JSON that is neither a CloudWatch Logs subscription event (`awslogs`) nor a CloudWatch Logs document (`messageType`, `logEvents`)")]
    NotAnEvent,
    #[error("{0}")]
    Event(crate::input::events::EventError),
    /// One part of an event (a Kinesis record) cannot be read.
    #[error("{item}: {cause}")]
    Item {
        item: String,
        cause: Box<DecodeError>,
    },
    /// An S3 notification: the records are in the objects it names, which only a reader with
    /// S3 access can fetch.
    #[error("an S3 notification naming {} object(s); its objects are read from S3", .0.len())]
    Notification(Vec<crate::input::events::ObjectRef>),
    #[error("`awslogs.data` is not valid base64: {0}")]
    Base64(base64::DecodeError),
    #[error(
        "not gzip data (`awslogs.data` is base64 of gzip, and each Kinesis record's data is gzip)"
    )]
    NotGzip,
    #[error("bad or truncated gzip data: {0}")]
    Gzip(io::Error),
    #[error("decoded data is larger than the limit of {limit} bytes (set MAX_DECODED_BYTES or --max-decoded-bytes to raise it)")]
    TooLarge { limit: usize },
    #[error("invalid CloudWatch Logs document: {0}")]
    Document(String),
    #[error("{} does not describe a usable format: {why}", match after {
        0 => "the header line".to_string(),
        n => format!("a header line after {}", records(*n)),
    })]
    Header {
        after: u64,
        why: crate::flow::format::FormatError,
    },
    #[error("{0}")]
    Io(io::Error),
    #[error("a Parquet file: flow logs are read as plain text; set the flow log's file format to plain-text (DestinationOptions FileFormat=plain-text)")]
    Parquet,
    /// The input could not be read whole, and what could is in `read`: it broke off (a partly
    /// uploaded object, an interrupted pipe), a header line named no usable format (the records
    /// under it are counted malformed, the others read), or some of its objects (of a
    /// notification) could not be read, and the others were. `note` says how much was read.
    #[error("{cause} ({note})")]
    Cut {
        read: Box<Report>,
        cause: Box<DecodeError>,
        note: String,
    },
}

impl DecodeError {
    /// Whether the cause is a header line naming no usable format (in an object named or not).
    pub fn is_header(&self) -> bool {
        match self {
            DecodeError::Header { .. } => true,
            DecodeError::Item { cause, .. } => cause.is_header(),
            _ => false,
        }
    }
}

/// `n` records, in words.
fn records(n: u64) -> String {
    match n {
        1 => "1 record".into(),
        n => format!("{n} records"),
    }
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
    /// `None` when the event has no message: counted malformed, the others still read.
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

impl<'a> LogsDocument<'a> {
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

    /// Whether the document's log events are records to read (a control message's are not).
    fn has_records(&self) -> bool {
        self.message_type.as_deref() == Some("DATA_MESSAGE")
    }

    fn origin(&self) -> Origin {
        Origin {
            log_group: self.log_group.as_deref().map(str::to_owned),
            log_stream: self.log_stream.as_deref().map(str::to_owned),
        }
    }

    fn scan(&self, config: &Config) -> Report {
        let mut events = EventScan::new(config, self.owner.as_deref(), self.has_records());
        for event in self.log_events.iter().flatten() {
            events.add(event.id.as_deref(), event.message.as_deref());
        }
        events.finish(self.origin())
    }
}

/// A document's log events, fed to a scanner one at a time as they are read, and what
/// identifies their batch.
struct EventScan<'c, 'a> {
    scanner: Scanner<'c>,
    /// Whether the events hold records (a data message's do; a control message's do not).
    records: bool,
    owner: Option<&'a str>,
    /// The keys of the last `extractedFields` read.
    keys: FieldKeys<'a>,
    /// The ids of the first and the last event, once there is one.
    ends: Option<(Option<&'a str>, Option<&'a str>)>,
    count: usize,
}

impl<'c, 'a> EventScan<'c, 'a> {
    fn new(config: &'c Config, owner: Option<&'a str>, records: bool) -> EventScan<'c, 'a> {
        EventScan {
            scanner: Scanner::new(config),
            records,
            owner,
            keys: FieldKeys::default(),
            ends: None,
            count: 0,
        }
    }

    /// One log event; an event without a message is counted malformed.
    fn add(&mut self, id: Option<&'a str>, message: Option<&'a str>) {
        if !self.records {
            return;
        }
        match &mut self.ends {
            Some((_, last)) => *last = id,
            None => self.ends = Some((id, id)),
        }
        self.count += 1;
        match message {
            Some(message) => self.scanner.record(message, self.owner),
            None => self.scanner.unreadable_record(),
        }
    }

    /// The length of the compact `extractedFields` object at the start of `b` (see
    /// [`FieldKeys::skip`]); `just_read`: the record last read is this event's, so its fields'
    /// lengths are worth a guess at the values'.
    fn skip_fields(&mut self, b: &'a [u8], just_read: bool) -> Option<usize> {
        let guess = match just_read {
            true => self.scanner.last_edges(),
            false => &[],
        };
        self.keys.skip(b, guess)
    }

    /// The report, with the batch's fingerprint.
    ///
    /// CloudWatch Logs ids are unique and a batch is delivered whole, so the first and last
    /// ids and the count identify it; hashing every id would cost as much as parsing the
    /// records. `None` when there are no events or an end has no id.
    fn finish(self, origin: Origin) -> Report {
        let mut report = self.scanner.finish(origin);
        if let Some((Some(first), Some(last))) = self.ends {
            let mut hasher = DefaultHasher::new();
            (first, last, self.count).hash(&mut hasher);
            report.fingerprint = Some(hasher.finish());
        }
        report
    }
}

/// Scans a JSON input: a subscription event or a decoded document.
pub fn scan_json(input: &[u8], config: &Config) -> Result<Report, DecodeError> {
    if let Some(data) = event_data(input) {
        return scan_event_data(data, config);
    }
    // serde would read an array as a struct's fields in order, and say something confusing.
    if input.trim_ascii_start().starts_with(b"[") {
        return Err(DecodeError::NotAnEvent);
    }
    // A decoded document as CloudWatch Logs writes it (one saved from a subscription, given to
    // `check`) is read by the shortcut, as in an event; anything else by serde.
    if input.trim_ascii_start().starts_with(br#"{"messageType":"#) {
        if let Some((document, report)) = fast_scan(input, config) {
            if document.is_document() {
                document.check()?;
                return Ok(report);
            }
        }
    }
    let outer: LogsDocument<'_> = serde_json::from_slice(input).map_err(DecodeError::Json)?;
    if let Some(awslogs) = &outer.awslogs {
        return scan_event_data(&awslogs.data, config);
    }
    if !outer.is_document() {
        return scan_other_event(input, config);
    }
    outer.check()?;
    Ok(outer.scan(config))
}

/// The other events the function reads: a Kinesis batch is read here, record by record (the
/// first record that cannot be read fails the input); S3 notifications give their objects.
fn scan_other_event(input: &[u8], config: &Config) -> Result<Report, DecodeError> {
    match recognise(input).map_err(DecodeError::Event)? {
        Event::Logs => Err(DecodeError::NotAnEvent),
        Event::Kinesis(items) => items
            .iter()
            .map(|item| {
                scan_compressed_document(&item.data, config).map_err(|cause| DecodeError::Item {
                    item: format!("Kinesis record {}", item.sequence_number),
                    cause: Box::new(cause),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Report::combine),
        Event::Objects(objects) => objects
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map(DecodeError::Notification)
            .map_err(DecodeError::Event)
            .and_then(Err),
        Event::Queue(items) => items
            .into_iter()
            .map(|item| item.objects)
            .collect::<Result<Vec<_>, _>>()
            .map(|objects| DecodeError::Notification(objects.concat()))
            .map_err(DecodeError::Event)
            .and_then(Err),
    }
}

fn scan_event_data(data: &str, config: &Config) -> Result<Report, DecodeError> {
    let decoded = decode_data(data, config.max_decoded_bytes)?;
    scan_document(&decoded, "`awslogs.data`", config)
}

/// Scans a gzip CloudWatch Logs document, as a CloudWatch Logs destination writes each
/// record of its Kinesis stream.
pub fn scan_compressed_document(compressed: &[u8], config: &Config) -> Result<Report, DecodeError> {
    let decoded = inflate(compressed, config.max_decoded_bytes)?;
    scan_document(&decoded, "the record", config)
}

/// Scans the document in `decoded`, which came from `container` (named when it holds JSON of
/// another kind).
fn scan_document(decoded: &[u8], container: &str, config: &Config) -> Result<Report, DecodeError> {
    let (document, scanned) = match fast_scan(decoded, config) {
        Some((document, report)) => (document, Some(report)),
        None => (
            serde_json::from_slice(decoded).map_err(|e| DecodeError::Document(e.to_string()))?,
            None,
        ),
    };
    if !document.is_document() {
        return Err(DecodeError::Document(format!(
            "{container} does not hold a CloudWatch Logs document"
        )));
    }
    document.check()?;
    Ok(scanned.unwrap_or_else(|| document.scan(config)))
}

/// Reads the document CloudWatch Logs writes (compact JSON, known keys, the events last, no
/// escapes in the strings) by jumping from quote to quote, and scans each log event as it is
/// read: several times faster than a general JSON parser over 10,000 log events, and the
/// events are never collected. Anything it does not expect (an escape, an unknown or repeated
/// key, the events before the message type or the owner, a syntax error) returns `None`, and
/// serde reads the document instead, so the result and the errors are serde's whenever the
/// shortcut does not apply. The document it returns has its header, and an empty list of
/// events when it had some (their records are in the report).
fn fast_scan<'a>(bytes: &'a [u8], config: &Config) -> Option<(LogsDocument<'a>, Report)> {
    // One UTF-8 check for the whole buffer; strings are then cut at ASCII quotes.
    let mut c = Cursor {
        rest: std::str::from_utf8(bytes).ok()?,
    };
    let mut doc = LogsDocument::default();
    let mut owner = None;
    let mut scanned = None;
    c.expect(b'{')?;
    loop {
        let key = c.string()?;
        c.expect(b':')?;
        let once = |slot: &Option<Cow<'a, str>>, value: &'a str| {
            slot.is_none().then_some(Some(Cow::Borrowed(value)))
        };
        match key {
            "messageType" => doc.message_type = once(&doc.message_type, c.string()?)?,
            // The owner is the account of every record: it must come before them.
            "owner" if doc.log_events.is_none() => {
                let value = c.string()?;
                doc.owner = once(&doc.owner, value)?;
                owner = Some(value);
            }
            "logGroup" => doc.log_group = once(&doc.log_group, c.string()?)?,
            "logStream" => doc.log_stream = once(&doc.log_stream, c.string()?)?,
            "policyLevel" => {
                c.string()?;
            }
            "subscriptionFilters" => {
                c.expect(b'[')?;
                if !c.eat(b']') {
                    loop {
                        c.string()?;
                        if c.eat(b']') {
                            break;
                        }
                        c.expect(b',')?;
                    }
                }
            }
            // Whether the events hold records is known from the type, written before them.
            "logEvents" if doc.log_events.is_none() && doc.message_type.is_some() => {
                let mut events = EventScan::new(config, owner, doc.has_records());
                c.expect(b'[')?;
                if !c.eat(b']') {
                    loop {
                        c.log_event(&mut events)?;
                        if c.eat(b']') {
                            break;
                        }
                        c.expect(b',')?;
                    }
                }
                doc.log_events = Some(Vec::new());
                scanned = Some(events);
            }
            _ => return None,
        }
        if c.eat(b'}') {
            break;
        }
        c.expect(b',')?;
    }
    if !trim_json_start(c.rest.as_bytes()).is_empty() {
        return None;
    }
    let events = scanned.unwrap_or_else(|| EventScan::new(config, None, false));
    let report = events.finish(doc.origin());
    Some((doc, report))
}

/// The rest of the input, for [`fast_scan`].
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    /// Skips JSON's whitespace (only space, tab, line feed and carriage return).
    fn skip_space(&mut self) {
        let rest = self.rest.as_bytes();
        let skip = rest.len() - trim_json_start(rest).len();
        self.rest = &self.rest[skip..];
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        match self.rest.as_bytes().first() {
            Some(&b) if b == byte => {
                self.rest = &self.rest[1..];
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// A string without escapes (nor raw control characters, which serde refuses).
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let (text, rest) = plain_string(self.rest)?;
        self.rest = rest;
        Some(text)
    }

    /// Skips an object whose values are all strings without escapes (`extractedFields`).
    fn string_map(&mut self) -> Option<()> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            self.string()?;
            self.expect(b':')?;
            self.string()?;
            if self.eat(b'}') {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// A whole number as JSON writes it: an optional minus, then `0` or digits that do not
    /// start with `0`. (A fraction or an exponent leaves the cursor at a byte nothing expects,
    /// and serde reads the document.)
    fn number(&mut self) -> Option<()> {
        self.skip_space();
        let rest = self.rest.as_bytes();
        let sign = usize::from(rest.first() == Some(&b'-'));
        let len = integer_len(&rest[sign..])?;
        self.rest = &self.rest[sign + len..];
        Some(())
    }

    /// The start of an event exactly as CloudWatch Logs writes it,
    /// `{"id":"..","timestamp":..,"message":".."`, read with two searches: its id and message,
    /// the cursor after them. `None` leaves the cursor where it was.
    fn compact_event_start(&mut self) -> Option<(&'a str, &'a str)> {
        let rest = self.rest.strip_prefix("{\"id\":\"")?;
        let (id, rest) = plain_string(rest)?;
        let rest = rest.strip_prefix(",\"timestamp\":")?;
        let digits = integer_len(rest.as_bytes())?;
        let rest = rest[digits..].strip_prefix(",\"message\":\"")?;
        let (message, rest) = plain_string(rest)?;
        self.rest = rest;
        Some((id, message))
    }

    /// A log event, whose id and message go to `events`.
    ///
    /// An event that starts as CloudWatch Logs writes it has its record read at once, before
    /// the `extractedFields` that follow it (what a space-delimited filter pattern adds to
    /// every event: the fields by name, which the record already holds), so that their values
    /// are checked where the record's fields say they end. Any other event is read key by key.
    fn log_event(&mut self, events: &mut EventScan<'_, 'a>) -> Option<()> {
        let (mut id, mut message) = (None, None);
        let read_first = match self.compact_event_start() {
            Some((i, m)) => {
                (id, message) = (Some(i), Some(m));
                events.add(id, message);
                true
            }
            None => {
                self.expect(b'{')?;
                false
            }
        };
        // After the compact start, the cursor is after a value; else before the first key.
        let mut after_value = read_first;
        loop {
            if after_value {
                if self.eat(b'}') {
                    break;
                }
                self.expect(b',')?;
            }
            after_value = true;
            let key = self.string()?;
            self.expect(b':')?;
            match key {
                // serde refuses a repeated key of the ones it keeps.
                "id" if id.is_none() => id = Some(self.string()?),
                "message" if message.is_none() => message = Some(self.string()?),
                "timestamp" => self.number()?,
                "extractedFields" => match events.skip_fields(self.rest.as_bytes(), read_first) {
                    // The compact object ends at an ASCII `}`: a char boundary.
                    Some(len) => self.rest = &self.rest[len..],
                    None => self.string_map()?,
                },
                _ => return None,
            }
        }
        if !read_first {
            events.add(id, message);
        }
        Some(())
    }
}

/// `bytes` without the JSON whitespace it starts with: space, tab, line feed and carriage
/// return (not the form feed that `trim_ascii_start` also takes).
fn trim_json_start(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .unwrap_or(bytes.len());
    &bytes[skip..]
}

/// The text of a string whose opening quote is already read, and what follows its closing
/// quote; `None` when it holds an escape or a raw control character (which serde refuses), or
/// does not end.
fn plain_string(rest: &str) -> Option<(&str, &str)> {
    let end = closing_quote(rest.as_bytes(), 0)?;
    Some((&rest[..end], &rest[end + 1..]))
}

/// The index of the quote that closes a string without escapes whose text starts at `from`;
/// `None` when an escape or a raw control character comes first, or nothing ends it.
fn closing_quote(b: &[u8], from: usize) -> Option<usize> {
    let stop = string_stop(b, from)?;
    (b[stop] == b'"').then_some(stop)
}

/// Whether the string without escapes whose text starts at `from` ends at `end`: the first
/// quote, escape or control character from `from` on is a quote at `end`. A string shorter than
/// a block is checked in one block, without a loop.
#[inline(always)]
fn string_ends_at(b: &[u8], from: usize, end: usize) -> bool {
    let len = end.wrapping_sub(from);
    match b.get(from..from.wrapping_add(16)) {
        Some(block) if len < 16 => {
            let stops = u32::from(byteclass::string_stops(block.try_into().expect("sixteen")));
            (stops & ((2 << len) - 1)) == 1 << len && block[len] == b'"'
        }
        _ => closing_quote(b, from) == Some(end),
    }
}

/// The length of the JSON integer at the start of `bytes` without its sign: `0`, or digits
/// that do not start with `0`. `None` when there is none, or a `0` is followed by a digit.
fn integer_len(bytes: &[u8]) -> Option<usize> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    match (digits, bytes.first()) {
        (0, _) => None,
        (1, _) => Some(1),
        (_, Some(b'0')) => None,
        (n, _) => Some(n),
    }
}

/// The keys of the last `extractedFields` object read, for the next one: every event of a
/// document carries the same keys (they are the filter pattern's names), so the next object's
/// keys are compared with these, eight bytes at a time, and only its values are searched.
#[derive(Debug, Default)]
struct FieldKeys<'a> {
    /// Each key with what surrounds it up to its value's opening quote, as checked once:
    /// `{"version":"`, then `,"account_id":"`, and so on.
    segments: Vec<&'a [u8]>,
}

impl<'a> FieldKeys<'a> {
    /// The length of the compact object of strings without escapes at the start of `b`,
    /// `{"k":"v","k2":"v2"}` (what CloudWatch Logs writes for `extractedFields`); `None` for
    /// anything else (whitespace, escapes, control characters, other values), which the
    /// general reader takes. Exactly [`compact_string_map_len`], learning the keys as it goes.
    /// `guess`: the edges of the fields of the event's record, as a record holds them (start,
    /// end, in turn), or none; see [`FieldKeys::skip_guessed`].
    fn skip(&mut self, b: &'a [u8], guess: &[u32]) -> Option<usize> {
        if let Some(len) = self.skip_guessed(b, guess).or_else(|| self.skip_known(b)) {
            return Some(len);
        }
        self.segments.clear();
        let len = compact_string_map_len(b, |segment| self.segments.push(segment));
        if len.is_none() {
            self.segments.clear();
        }
        len
    }

    /// The object's length when its keys are the known ones, in their order, and its values
    /// are as long as the fields whose edges `guess` holds, in turn: a space-delimited filter
    /// pattern gives its names the record's fields in order. Each value is checked where it
    /// should end, apart from the others, so the processor checks them side by side instead of
    /// searching for each end from the one before ([`FieldKeys::skip_known`]). A wrong guess is
    /// only a `None`.
    fn skip_guessed(&self, b: &[u8], guess: &[u32]) -> Option<usize> {
        if self.segments.is_empty() || guess.len() != 2 * self.segments.len() {
            return None;
        }
        let mut i = 0;
        let mut all = true;
        for (segment, edges) in self.segments.iter().zip(guess.chunks_exact(2)) {
            let value = i + segment.len();
            let end = value + (edges[1] - edges[0]) as usize;
            // `&`, not `&&`: no branch between one value's check and the next.
            all &= b.get(i..).is_some_and(|rest| starts_with(rest, segment))
                & string_ends_at(b, value, end);
            i = end + 1;
        }
        (all && b.get(i) == Some(&b'}')).then_some(i + 1)
    }

    /// The object's length when its keys are the known ones, in their order.
    fn skip_known(&self, b: &[u8]) -> Option<usize> {
        if self.segments.is_empty() {
            return None;
        }
        let mut i = 0;
        for segment in &self.segments {
            if !starts_with(b.get(i..)?, segment) {
                return None;
            }
            // The value, which must end at its quote.
            i = closing_quote(b, i + segment.len())? + 1;
        }
        (b.get(i) == Some(&b'}')).then_some(i + 1)
    }
}

/// Whether `hay` starts with `needle`: a key segment of eight bytes or more (nearly all) is
/// compared a word at a time, the last word overlapping the one before, without a call to
/// `memcmp`.
fn starts_with(hay: &[u8], needle: &[u8]) -> bool {
    let n = needle.len();
    if n < 8 || hay.len() < n {
        return hay.starts_with(needle);
    }
    let at = |s: &[u8], k: usize| word(s[k..k + 8].try_into().expect("eight bytes"));
    let mut k = 0;
    while k + 8 < n {
        if at(hay, k) != at(needle, k) {
            return false;
        }
        k += 8;
    }
    at(hay, n - 8) == at(needle, n - 8)
}

/// The length of a compact object of strings without escapes, `{"k":"v","k2":"v2"}` (what
/// CloudWatch Logs writes for `extractedFields`), each string's end found eight bytes at a
/// time; `key` is given each key with what surrounds it, from the `{` or `,` before it to its
/// value's opening quote. `None` for anything else (whitespace, escapes, control characters,
/// other values), which the general reader takes.
fn compact_string_map_len<'a>(b: &'a [u8], mut key: impl FnMut(&'a [u8])) -> Option<usize> {
    // The index after the string that opens at `i`.
    let string_end = |i: usize| -> Option<usize> {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        closing_quote(b, i + 1).map(|quote| quote + 1)
    };
    if b.first() != Some(&b'{') {
        return None;
    }
    if b.get(1) == Some(&b'}') {
        return Some(2);
    }
    let mut i = 1;
    loop {
        let start = i - 1;
        i = string_end(i)?;
        if b.get(i) != Some(&b':') {
            return None;
        }
        if b.get(i + 1) == Some(&b'"') {
            key(&b[start..i + 2]);
        }
        i = string_end(i + 1)?;
        match b.get(i)? {
            b',' => i += 1,
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The base64 `data` of an event shaped exactly as Lambda delivers it,
/// `{"awslogs":{"data":"..."}}` (any whitespace between tokens), found without a JSON parser
/// walking 1.3 MB of string. Anything else returns `None` and goes through serde.
fn event_data(input: &[u8]) -> Option<&str> {
    let mut rest = input;
    for token in [
        &b"{"[..],
        b"\"awslogs\"",
        b":",
        b"{",
        b"\"data\"",
        b":",
        b"\"",
    ] {
        rest = trim_json_start(rest).strip_prefix(token)?;
    }
    // An escape means the string is not plain base64: let serde read it.
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    let (data, tail) = rest.split_at(end);
    let mut tail = tail.strip_prefix(b"\"")?;
    for token in [&b"}"[..], b"}"] {
        tail = trim_json_start(tail).strip_prefix(token)?;
    }
    // base64 is ASCII: the UTF-8 check only guards against garbage, which base64 refuses too.
    trim_json_start(tail)
        .is_empty()
        .then(|| std::str::from_utf8(data).ok())?
}

/// base64, then gzip, into a buffer of at most `limit` bytes.
///
/// A Lambda event is one buffer of a few MB, so both steps use whole-buffer decoders: SIMD
/// base64 and libdeflate, about twice as fast as the streaming ones. Anything libdeflate does
/// not take as is (a gzip trailer that claims more than `limit`, several members, trailing
/// bytes, damage) goes through the streaming inflater, whose errors name the cause.
pub fn decode_data(data: &str, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let compressed = match base64_simd::STANDARD.decode_to_vec(data.trim()) {
        Ok(bytes) => bytes,
        // What people paste from other tools: wrapped at 76 columns, or without its padding.
        Err(_) => lenient_base64(data).ok_or_else(|| {
            let strict = base64::engine::general_purpose::STANDARD.decode(data.trim());
            DecodeError::Base64(strict.err().unwrap_or(base64::DecodeError::InvalidPadding))
        })?,
    };
    inflate(&compressed, limit)
}

/// Gzip data in one buffer inflated into a buffer of at most `limit` bytes: libdeflate when it
/// takes the data as is, else the streaming inflater, whose errors name the cause.
fn inflate(compressed: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    if !compressed.starts_with(&GZIP_MAGIC) {
        return Err(DecodeError::NotGzip);
    }
    if let Some(whole) = inflate_whole(compressed, limit) {
        return Ok(whole);
    }
    let capacity = compressed.len().saturating_mul(8);
    read_capped(
        MultiGzDecoder::new(compressed),
        limit,
        capacity,
        DecodeError::Gzip,
    )
}

/// The input as one gzip member, inflated by libdeflate into a buffer of the size its trailer
/// states; `None` when that size is over `limit`, the header carries a CRC, or the input is not
/// exactly one member that inflates to that size (several members, bytes after it, damage).
pub fn inflate_whole(compressed: &[u8], limit: usize) -> Option<Vec<u8>> {
    use libdeflate_sys::{
        libdeflate_alloc_decompressor, libdeflate_free_decompressor, libdeflate_gzip_decompress_ex,
        libdeflate_result_LIBDEFLATE_SUCCESS,
    };
    let size = u32::from_le_bytes(*compressed.last_chunk::<4>()?) as usize;
    // libdeflate skips a header CRC (FHCRC) without checking it; the stream checks it.
    const FHCRC: u8 = 0x02;
    if size > limit || compressed.get(3).is_none_or(|flags| flags & FHCRC != 0) {
        return None;
    }
    // Not zeroed first (that cost about a tenth of the inflate): libdeflate writes into the
    // spare room, and the length is set only to what it reports written.
    let mut out = Vec::<u8>::with_capacity(size);
    let room = out.spare_capacity_mut();
    let (mut read, mut written) = (0usize, 0usize);
    // SAFETY: the decompressor is checked for null, used once and freed here; libdeflate reads
    // at most `compressed.len()` bytes and writes at most `room.len()` bytes into the spare
    // room (its copies may read bytes of the room it has not written yet, but only to write
    // past them; nothing of the room is read by Rust before `set_len`), and reports through
    // the two local counters.
    let result = unsafe {
        let decompressor = libdeflate_alloc_decompressor();
        if decompressor.is_null() {
            return None;
        }
        let result = libdeflate_gzip_decompress_ex(
            decompressor,
            compressed.as_ptr().cast(),
            compressed.len(),
            room.as_mut_ptr().cast(),
            room.len(),
            &mut read,
            &mut written,
        );
        libdeflate_free_decompressor(decompressor);
        result
    };
    if result != libdeflate_result_LIBDEFLATE_SUCCESS || read != compressed.len() || written != size
    {
        return None;
    }
    // SAFETY: libdeflate reported success and `written` bytes written from the start of the
    // spare room, which is within the capacity.
    unsafe { out.set_len(written) };
    Some(out)
}

/// Base64 with line breaks anywhere and the padding optional; `None` when it is not base64
/// even so.
fn lenient_base64(data: &str) -> Option<Vec<u8>> {
    use base64::engine::{
        general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig,
    };
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT.decode(compact).ok()
}

/// Reads everything `reader` gives, up to `limit` bytes; more is [`DecodeError::TooLarge`],
/// found after reading one byte past the limit, never the whole input.
fn read_capped(
    reader: impl Read,
    limit: usize,
    capacity: usize,
    io_error: impl Fn(io::Error) -> DecodeError,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(capacity.min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(io_error)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

/// Scans any input, recognised from its content: gzip is inflated as it is read, JSON is
/// decoded as an event or document, anything else is streamed as raw records.
pub fn scan_reader(reader: impl Read + Send, config: &Config) -> Result<Report, DecodeError> {
    scan_reader_from(reader, config, None)
}

/// [`scan_reader`], with `owner` the account the records are from when they do not say (a
/// flow log object's key names it).
/// Gzip is inflated on a thread of its own when `config.inflate_apart` says so.
pub fn scan_reader_from(
    reader: impl Read + Send,
    config: &Config,
    owner: Option<&str>,
) -> Result<Report, DecodeError> {
    // Enough bytes to recognise the input, however the source hands them out (a pipe may give
    // one byte at a time).
    let (head, reader) =
        peek(reader, |h| h.len() >= PARQUET_MAGIC.len()).map_err(DecodeError::Io)?;
    if head.starts_with(&GZIP_MAGIC) {
        let inflated = GzipMembers::new(BufReader::with_capacity(64 * 1024, reader));
        if config.inflate_apart {
            return scan_gzip_apart(inflated, config, owner, read_ahead_when_waited_on);
        }
        return scan_plain(
            BufReader::with_capacity(64 * 1024, inflated),
            config,
            true,
            owner,
        );
    }
    if head.starts_with(PARQUET_MAGIC) {
        return Err(DecodeError::Parquet);
    }
    scan_plain(
        BufReader::with_capacity(64 * 1024, reader),
        config,
        false,
        owner,
    )
}

/// Scans inflated gzip read on a thread of its own. When it holds lines (a flow log file, not
/// an event), that thread also reads lines ahead, when `when` says so (see
/// [`read_ahead_when_waited_on`]): the scan then only adds up what it read, in order, and
/// gives the same report.
fn scan_gzip_apart(
    inflated: impl Read + Send,
    config: &Config,
    owner: Option<&str>,
    when: AheadWhen,
) -> Result<Report, DecodeError> {
    let (head, inflated) =
        peek(inflated, |h| first_content(h).is_some()).map_err(DecodeError::Gzip)?;
    if matches!(first_content(&head), Some(b'{' | b'[')) {
        return thread::scope(|scope| scan_plain(read_apart(scope, inflated), config, true, owner));
    }
    thread::scope(|scope| {
        let ahead = Ahead {
            lines: Scanner::new(config),
            when,
        };
        scan_lines_with(
            read_lines_apart(scope, inflated, ahead),
            config,
            DecodeError::Gzip,
            owner,
            ReadApart::take_ahead,
        )
    })
}

impl LinesAhead for Scanner<'_> {
    type Read = ReadAhead;

    fn read(&mut self, lines: &[u8]) -> ReadAhead {
        self.read_ahead(lines)
    }

    fn skim(&mut self, lines: &[u8], line_start: bool) {
        self.follow_headers(lines, line_start);
    }
}

/// When the reading thread reads a chunk's lines ahead: when the scanner has chunks waiting
/// for it already, two or more (it is behind), rather than leave it with nothing to do. The
/// work then shares itself out: measured, reading ahead every chunk is slower than reading
/// none, and one waiting chunk as the mark is about the same as two (see the README).
fn read_ahead_when_waited_on(waiting: usize, _chunk: usize) -> bool {
    waiting > 1
}

/// The first bytes of `reader`, read until `enough` says so, the input ends, or [`PEEK_MAX`]
/// bytes; and a reader that starts again at the first byte.
fn peek<R: Read>(
    mut reader: R,
    enough: impl Fn(&[u8]) -> bool,
) -> io::Result<(Vec<u8>, Replayed<R>)> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 512];
    while !enough(&head) && head.len() < PEEK_MAX {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((head.clone(), io::Cursor::new(head).chain(reader)))
}

/// A reader whose first bytes were read ahead and are given again.
type Replayed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// The most bytes read to recognise an input.
const PEEK_MAX: usize = 64 * 1024;

/// The first byte that is not whitespace, after an optional byte order mark.
fn first_content(head: &[u8]) -> Option<u8> {
    head.strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(head)
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

fn scan_plain(
    reader: impl BufRead,
    config: &Config,
    gzip: bool,
    owner: Option<&str>,
) -> Result<Report, DecodeError> {
    let io_error = |e: io::Error| {
        if gzip {
            DecodeError::Gzip(e)
        } else {
            DecodeError::Io(e)
        }
    };
    let (head, reader) = peek(reader, |h| first_content(h).is_some()).map_err(io_error)?;
    let first = first_content(&head);
    // A record never starts with a bracket: this is JSON, an event or a document (or neither).
    if matches!(first, Some(b'{' | b'[')) {
        let json = read_capped(reader, config.max_decoded_bytes, 0, io_error)?;
        return scan_json(json.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&json), config);
    }
    scan_lines_with(reader, config, io_error, owner, |_| None)
}

/// Gzip members one after the other, as `gzip` and `zcat` read them, with the zero padding
/// some writers leave after the last member tolerated (as gzip tools do).
struct GzipMembers<R: BufRead> {
    member: Option<flate2::bufread::GzDecoder<R>>,
}

impl<R: BufRead> GzipMembers<R> {
    fn new(reader: R) -> GzipMembers<R> {
        GzipMembers {
            member: Some(flate2::bufread::GzDecoder::new(reader)),
        }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(member) = self.member.take() else {
                return Ok(0);
            };
            let mut rest = member.into_inner();
            let next = rest.fill_buf()?;
            if next.is_empty() {
                return Ok(0);
            }
            if next[0] == 0 {
                // Zero padding to the end is tolerated; anything after it is not gzip.
                loop {
                    let next = rest.fill_buf()?;
                    if next.is_empty() {
                        return Ok(0);
                    }
                    let zeros = next.iter().take_while(|&&b| b == 0).count();
                    if zeros < next.len() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "data after the zero padding that ends the gzip stream",
                        ));
                    }
                    rest.consume(zeros);
                }
            }
            self.member = Some(flate2::bufread::GzDecoder::new(rest));
        }
    }
}

/// Streams raw flow log records; a header line names the fields of the lines after it.
pub fn scan_lines(reader: impl BufRead, config: &Config) -> Result<Report, DecodeError> {
    scan_lines_with(reader, config, DecodeError::Io, None, |_| None)
}

/// [`scan_lines`], with `io_error` saying what a read error is (a gzip error, for gzip input).
/// A read error after some records gives them back with the cause ([`DecodeError::Cut`]), as
/// does a header line naming no usable format, once the rest is read. `take_ahead` gives what
/// was read ahead of the buffer's lines on another thread, if anything was.
fn scan_lines_with<R: BufRead>(
    mut reader: R,
    config: &Config,
    io_error: impl Fn(io::Error) -> DecodeError,
    owner: Option<&str>,
    take_ahead: impl Fn(&mut R) -> Option<ReadAhead>,
) -> Result<Report, DecodeError> {
    let mut scanner = Scanner::new(config);
    let mut line = Vec::with_capacity(1024);
    let cut = |mut scanner: Scanner, e: io::Error| {
        // A header refused before the cut is named too: its records were not read.
        let refused = scanner.refused_header();
        let read = scanner.finish(Origin::default());
        let mut note = format!("cut off after {}", records(read.counts.records));
        if let Some((after, why)) = refused {
            let header = DecodeError::Header { after, why };
            note += &format!("; before the cut, {header}, and the records under it are malformed");
        }
        DecodeError::Cut {
            read: Box::new(read),
            cause: Box::new(io_error(e)),
            note,
        }
    };
    loop {
        if let Err(e) = reader.fill_buf() {
            return Err(cut(scanner, e));
        }
        // A buffer of lines read ahead on another thread: taken as read, unless it must be
        // read here after all (read in another format, or its findings not all kept).
        if let Some(ahead) = take_ahead(&mut reader) {
            let buf = match reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) => return Err(cut(scanner, e)),
            };
            let len = buf.len();
            if scanner.take_ahead(ahead, buf, owner) {
                reader.consume(len);
                continue;
            }
        }
        // The whole lines the buffer holds are read where they are: one UTF-8 check for all of
        // them and no copy (a file's millions of lines would each be copied and checked alone).
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) => return Err(cut(scanner, e)),
        };
        if let Some(last) = memchr::memrchr(b'\n', buf) {
            scan_block(&mut scanner, &buf[..=last], owner);
            reader.consume(last + 1);
            continue;
        }
        // A line the buffer does not hold whole: gathered across reads, up to its cap.
        line.clear();
        let (read, complete) = match read_line_capped(&mut reader, &mut line) {
            Ok(read) => read,
            Err(DecodeError::Io(e)) => return Err(cut(scanner, e)),
            Err(other) => return Err(other),
        };
        if read == 0 {
            break;
        }
        if complete {
            scan_line(&mut scanner, &line, owner);
        } else {
            scanner.unreadable_record();
        }
    }
    let refused = scanner.refused_header();
    let read = scanner.finish(Origin::default());
    match refused {
        None => Ok(read),
        Some((after, why)) => Err(DecodeError::Cut {
            read: Box::new(read),
            cause: Box::new(DecodeError::Header { after, why }),
            note: "the records under it are counted malformed, the others are read".into(),
        }),
    }
}

/// Scans whole lines, each ending with its line break.
fn scan_block(scanner: &mut Scanner, block: &[u8], owner: Option<&str>) {
    let mut pending = Pending::default();
    scanner.block(block, |scanner, finding| {
        scanner.add_ahead(finding, owner, &mut pending)
    });
    scanner.catch_up(&mut pending);
}

/// Scans one line read whole, on its own (one that a buffer did not hold).
fn scan_line(scanner: &mut Scanner, line: &[u8], owner: Option<&str>) {
    match std::str::from_utf8(line) {
        Ok(text) => {
            if let Some(finding) = scanner.line(text) {
                scanner.add(&finding, owner);
            }
        }
        Err(_) => scanner.unreadable_record(),
    }
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
    use crate::flow::format::FlowFormat;
    use flate2::write::GzEncoder;
    use std::io::Write;

    const REJECT: &str = "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK";

    fn config() -> Config {
        Config::with_vpc_cidrs("172.31.0.0/16").unwrap()
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
    fn lines_read_in_place_give_what_reading_each_alone_gives() {
        let text = mixed_lines();
        // Each line alone, as lines were read before, and its finding added at once (read in
        // blocks, findings are added a few lines late: the same, in the same order).
        let config = config();
        let mut scanner = Scanner::new(&config);
        for line in text.split_inclusive(|&b| b == b'\n') {
            if line.len() > MAX_LINE_BYTES + 1 {
                scanner.unreadable_record();
            } else {
                scan_line(&mut scanner, line, None);
            }
        }
        let alone = scanner.finish(Origin::default());
        assert!(alone.counts.malformed > 60 && alone.counts.findings > 1000);
        assert!(alone.activities.len() > 2500, "{}", alone.activities.len());
        // Buffers that cut lines anywhere, or hold many whole.
        for capacity in [7, 100, 4096, 64 * 1024, 1 << 20] {
            let report =
                scan_lines(io::BufReader::with_capacity(capacity, &text[..]), &config).unwrap();
            assert_eq!(report.counts, alone.counts, "buffer {capacity}");
            assert_eq!(report.activities, alone.activities, "buffer {capacity}");
        }
    }

    /// Records from inside and outside, a header that changes the format midway, a byte order
    /// mark, CRLF, bytes that are not UTF-8, lines over the cap, blank lines, and a last line
    /// without its break; about 7 MB.
    fn mixed_lines() -> Vec<u8> {
        let mut text = Vec::new();
        for i in 0..9000u32 {
            let line = match i % 97 {
                13 => b"2 1 eni-1 172.31.1.5 172.31.2.9 1 22 6 1 40 \xff\xfe 9 REJECT OK".to_vec(),
                29 => vec![b'7'; MAX_LINE_BYTES + 3],
                41 => b"".to_vec(),
                50 => b"action srcaddr dstaddr dstport version".to_vec(),
                51 => "\u{feff}REJECT 172.31.9.9 172.31.9.10 445 2".into(),
                60 => b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status".to_vec(),
                // 3,000 sources, more than findings are added at once for; in the second
                // half, one busy source, whose interfaces are more than its set keeps (the
                // first ones seen stay, so the order counts).
                _ if i % 5 == 1 && i > 4500 => format!(
                    "2 123456789010 eni-{} 172.31.200.1 172.31.9.12 49761 22 6 20 4249 1418530010 1418530070 REJECT OK",
                    i * 37 % 301
                )
                .into_bytes(),
                _ => format!(
                    "2 123456789010 eni-{} 172.31.{}.{} 172.31.9.12 49761 {} 6 20 4249 1418530010 1418530070 {} OK",
                    i % 5,
                    i % 3001 / 250,
                    i % 3001 % 250,
                    i % 1000,
                    if i % 4 == 0 { "ACCEPT" } else { "REJECT" }
                )
                .into_bytes(),
            };
            text.extend_from_slice(&line);
            text.extend_from_slice(if i % 7 == 0 { b"\r\n" } else { b"\n" });
        }
        text.extend_from_slice(REJECT.as_bytes());
        text
    }

    #[test]
    fn lines_read_ahead_on_the_inflating_thread_give_what_one_thread_gives() {
        // The mixed lines; a header naming no usable format, and chunks of records under it;
        // a header naming another format, and chunks of records in it; a line longer than a
        // chunk (so that the chunks after it start within it); and the mixed lines again. The
        // report, or the error with what was read, must not depend on which chunks the
        // inflating thread read ahead, nor on whether it saw every header line.
        let mut text = mixed_lines();
        text.extend_from_slice(b"\nversion srcaddr\n");
        for i in 0..4000 {
            // Records of the format before the header: read, they would be findings.
            let line = REJECT.replace("172.31.9.69", &format!("172.31.0.{}", i % 200));
            text.extend_from_slice(format!("{line}\n").as_bytes());
        }
        text.extend_from_slice(b"srcaddr dstaddr dstport action\n");
        for i in 0..30000 {
            let line = format!("172.31.1.{} 172.31.9.9 {} REJECT\n", i % 200, i % 1000);
            text.extend_from_slice(line.as_bytes());
        }
        text.extend_from_slice(&vec![b'8'; 3 * 256 * 1024 + 11]);
        text.extend_from_slice(b"\n");
        text.extend_from_slice(&mixed_lines());
        let file = gzip(&text);
        let one_thread = Config {
            inflate_apart: false,
            ..config()
        };
        let Err(DecodeError::Cut { read, .. }) = scan_reader(&file[..], &one_thread) else {
            panic!("the refused header is reported");
        };
        assert!(read.counts.findings > 2000 && read.counts.malformed > 120);
        let taken = taken_ahead_giving_what_one_thread_gives(&file);
        assert!(taken[..3].iter().all(|&(_, n)| n > 5), "{taken:?}");
        // Cut off midway (a partly uploaded object): what was read before the cut.
        let cut = &file[..file.len() * 2 / 3];
        assert!(matches!(
            scan_reader(cut, &one_thread),
            Err(DecodeError::Cut { .. })
        ));
        taken_ahead_giving_what_one_thread_gives(cut);
        // A file whose header names another format than the configured one, in the first
        // chunk, which is not read ahead when odd chunks are: the reading thread must follow
        // it to read the others.
        let mut text = b"version vpc-id subnet-id instance-id interface-id account-id srcaddr \
            dstaddr srcport dstport protocol packets bytes start end action log-status\n"
            .to_vec();
        for i in 0..20_000 {
            let line = format!(
                "3 vpc-0abc1234 subnet-0abc1234 i-0123456789abcdef0 eni-0123456789abcdef0 \
                 123456789010 172.31.2.{} 172.31.9.9 40000 {} 6 1 40 1 2 REJECT OK\n",
                i % 250,
                i % 900
            );
            text.extend_from_slice(line.as_bytes());
        }
        let taken = taken_ahead_giving_what_one_thread_gives(&gzip(&text));
        assert!(taken[1].1 > 2, "{taken:?}");
    }

    /// Scans gzip `file` on two threads, under each way of choosing the chunks read ahead
    /// (every one, odd ones, even ones, none, and the function's), checks that each gives what
    /// one thread gives, and returns how many chunks each took as read ahead.
    fn taken_ahead_giving_what_one_thread_gives(file: &[u8]) -> Vec<(&'static str, usize)> {
        use crate::input::scan::TAKEN_AHEAD;
        let one_thread = Config {
            inflate_apart: false,
            ..config()
        };
        let expected = scan_reader(file, &one_thread);
        let policies: [(&str, AheadWhen); 5] = [
            ("every chunk", |_, _| true),
            ("odd chunks", |_, n| n % 2 == 1),
            ("even chunks", |_, n| n % 2 == 0),
            ("none", |_, _| false),
            ("when waited on", read_ahead_when_waited_on),
        ];
        let read = |result: &Result<Report, DecodeError>| match result {
            Ok(report) => Some(report.clone()),
            Err(DecodeError::Cut { read, .. }) => Some(read.as_ref().clone()),
            Err(_) => None,
        };
        let expected_read = read(&expected).expect("records are read");
        policies
            .into_iter()
            .map(|(name, when)| {
                TAKEN_AHEAD.with(|taken| taken.set(0));
                let apart = scan_gzip_apart(GzipMembers::new(file), &config(), None, when);
                assert_eq!(
                    apart.as_ref().err().map(ToString::to_string),
                    expected.as_ref().err().map(ToString::to_string),
                    "{name}"
                );
                let got = read(&apart).expect("records are read");
                assert_eq!(got.counts, expected_read.counts, "{name}");
                assert!(got.activities == expected_read.activities, "{name}");
                (name, TAKEN_AHEAD.with(std::cell::Cell::get))
            })
            .collect()
    }

    #[test]
    fn a_line_at_the_cap_is_read_and_one_byte_longer_is_not() {
        // A record padded with spaces (which a record may end with) to the cap, then past it.
        let padded = |len: usize| format!("{REJECT}{}\n", " ".repeat(len - REJECT.len()));
        let text = padded(MAX_LINE_BYTES) + &padded(MAX_LINE_BYTES + 1) + REJECT;
        for capacity in [100, 64 * 1024, 1 << 20] {
            let buffered = io::BufReader::with_capacity(capacity, text.as_bytes());
            let c = scan_lines(buffered, &config()).unwrap().counts;
            assert_eq!(
                (c.records, c.findings, c.malformed),
                (3, 2, 1),
                "buffer {capacity}"
            );
        }
    }

    #[test]
    fn a_subscription_event_and_its_document_give_the_same_report() {
        let doc = document(&[REJECT]);
        let from_event = scan_reader(event(&doc).as_bytes(), &config()).unwrap();
        let from_doc = scan_reader(doc.as_bytes(), &config()).unwrap();
        assert_eq!(from_event.counts, from_doc.counts);
        assert_eq!(from_event.activities, from_doc.activities);
        assert_eq!(
            from_event.activities[0].log_streams.lowest(1),
            ["eni-1235b8ca123456789-all"]
        );
        assert!(from_event.fingerprint.is_some());
        // As CloudWatch Logs writes it (the message type first, compact, extractedFields), read
        // by the shortcut; pretty-printed with its keys sorted, read by serde; records from
        // inside and outside.
        let inside = REJECT;
        let outside = REJECT.replace("172.31.9.69", "198.51.100.7");
        let events: Vec<String> = [inside, &outside, "not a record", inside]
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let fields = m.split(' ').take(4).enumerate();
                let fields: Vec<String> = fields.map(|(k, v)| format!(r#""f{k}":"{v}""#)).collect();
                format!(
                    r#"{{"id":"{i:056}","timestamp":1418530010000,"message":"{m}","extractedFields":{{{}}}}}"#,
                    fields.join(",")
                )
            })
            .collect();
        let compact = format!(
            r#"{{"messageType":"DATA_MESSAGE","owner":"123456789010","logGroup":"vpc-flow-logs","logStream":"eni-1235b8ca123456789-all","subscriptionFilters":["rejects"],"logEvents":[{}]}}"#,
            events.join(",")
        );
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&compact).unwrap(),
        )
        .unwrap();
        let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE"}]}"#;
        for doc in [&compact, &pretty, control] {
            let read = |input: &str| format!("{:?}", scan_json(input.as_bytes(), &config()));
            assert_eq!(read(doc), read(&event(doc)), "{doc}");
        }
        let report = scan_json(compact.as_bytes(), &config()).unwrap();
        assert_eq!((report.counts.findings, report.counts.malformed), (2, 1));
        let by_serde: LogsDocument = serde_json::from_str(&compact).unwrap();
        assert_eq!(
            format!("{report:?}"),
            format!("{:?}", by_serde.scan(&config()))
        );
    }

    #[test]
    fn the_event_shortcut_finds_the_data_only_in_the_exact_event_shape() {
        assert_eq!(
            event_data(br#" { "awslogs" : { "data" : "QUJD" } } "#),
            Some("QUJD")
        );
        assert_eq!(
            event_data(br#"{"awslogs":{"data":"QU\/JD"}}"#),
            None,
            "escapes go to serde"
        );
        assert_eq!(event_data(br#"{"awslogs":{"data":"QUJD","x":1}}"#), None);
        assert_eq!(event_data(br#"{"awslogs":{"data":"QUJD"}}, 1"#), None);
        assert_eq!(event_data(br#"{"messageType":"DATA_MESSAGE"}"#), None);
        assert_eq!(
            event_data(b"{\"awslogs\":{\"data\":\"QUJD\"}}\x0c"),
            None,
            "a form feed is not JSON whitespace"
        );
    }

    /// The report of the shortcut and serde's, when the shortcut reads `doc`.
    fn both_ways(doc: &str) -> Option<(Report, Report)> {
        let config = config();
        let (fast_doc, fast) = fast_scan(doc.as_bytes(), &config)?;
        let slow_doc: LogsDocument<'_> = serde_json::from_str(doc).unwrap();
        slow_doc.check().unwrap();
        assert_eq!(fast_doc.owner, slow_doc.owner);
        Some((fast, slow_doc.scan(&config)))
    }

    #[test]
    fn the_document_shortcut_agrees_with_serde_or_steps_aside() {
        let same = |doc: &str| {
            let (fast, slow) = both_ways(doc).expect("CloudWatch's shape");
            assert_eq!(fast.counts, slow.counts, "{doc}");
            assert_eq!(fast.activities, slow.activities, "{doc}");
            assert_eq!(fast.origin, slow.origin, "{doc}");
            assert_eq!(fast.fingerprint, slow.fingerprint, "{doc}");
            fast
        };
        let report = same(&document(&[REJECT, "2 x"]));
        assert_eq!((report.counts.records, report.counts.malformed), (2, 1));
        assert!(report.fingerprint.is_some());
        // Production's shape: every event carries extractedFields; the shortcut reads it too.
        let extracted = format!(
            r#"{{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{{"id":"1","timestamp":5,"message":"{REJECT}","extractedFields":{{"version":"2","srcaddr":"x"}}}},{{"id":"2","message":"3 y","timestamp":6,"extractedFields":{{}}}}]}}"#
        );
        let report = same(&extracted);
        assert_eq!((report.counts.records, report.counts.findings), (2, 1));
        // A control message's events are not records; an event without a message is malformed.
        same(
            r#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"id":"1","message":"CWL CONTROL MESSAGE"}]}"#,
        );
        let report =
            same(r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1"},{"message":"2 x"}]}"#);
        assert_eq!(report.counts.malformed, 2);
        assert_eq!(report.fingerprint, None, "the last event has no id");
        for odd in [
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"a\"b"}]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":5,"message":"ab","extractedFields":{"n":2}}]}"#,
            r#"{"messageType":"DATA_MESSAGE","extra":1,"logEvents":[]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"ab"}]"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[]} x"#,
            // Keys serde would refuse twice, and an order the events cannot be read in at once.
            r#"{"messageType":"DATA_MESSAGE","owner":"1","owner":"2","logEvents":[]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","id":"2","message":"ab"}]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[],"logEvents":[]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[],"owner":"1"}"#,
            r#"{"logEvents":[],"messageType":"DATA_MESSAGE"}"#,
        ] {
            assert!(fast_scan(odd.as_bytes(), &config()).is_none(), "{odd}");
        }
        for not_json in [
            // What JSON does not allow: a form feed between tokens, numbers with a leading
            // zero or no digits, raw control characters in strings.
            "{\"messageType\":\"CONTROL_MESSAGE\"}\x0c",
            "{\x0c\"messageType\":\"CONTROL_MESSAGE\"}",
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":01,"message":"m"}]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":-,"message":"m"}]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"timestamp":1-2,"id":"1","message":"m"}]}"#,
            "{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[{\"id\":\"1\",\"timestamp\":1,\"message\":\"a\tb\"}]}",
            "{\"messageType\":\"DATA_MESSAGE\",\"policyLevel\":\"a\nb\",\"logEvents\":[]}",
        ] {
            assert!(
                serde_json::from_str::<LogsDocument<'_>>(not_json).is_err(),
                "{not_json}"
            );
            assert!(
                fast_scan(not_json.as_bytes(), &config()).is_none(),
                "{not_json}"
            );
        }
    }

    #[test]
    fn a_json_file_saved_with_a_byte_order_mark_is_read() {
        let mut input = b"\xef\xbb\xbf".to_vec();
        input.extend_from_slice(document(&[REJECT]).as_bytes());
        assert_eq!(
            scan_reader(&input[..], &config()).unwrap().counts.findings,
            1
        );
    }

    #[test]
    fn a_control_message_yields_no_records_and_no_error() {
        let doc = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Lambda."}]}"#;
        let report = scan_reader(event(doc).as_bytes(), &config()).unwrap();
        assert_eq!(report.counts.records, 0);
        assert!(report.activities.is_empty());
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
        ];
        for (input, expected) in cases {
            let err = scan_reader(input.as_bytes(), &config())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }

    /// A pipe that hands out one byte per read.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            match buf.first_mut() {
                Some(slot) => *slot = first,
                None => return Ok(0),
            }
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn an_input_is_recognised_however_the_pipe_hands_out_its_bytes() {
        let raw = format!("{REJECT}\n{REJECT}\n");
        let gzipped = gzip(raw.as_bytes());
        let from_gzip = scan_reader(Trickle(&gzipped), &config()).unwrap();
        assert_eq!(from_gzip.counts.findings, 2);
        let event = format!("\n\n  {}", event(&document(&[REJECT])));
        let from_event = scan_reader(Trickle(event.as_bytes()), &config()).unwrap();
        assert_eq!(
            (from_event.counts.malformed, from_event.counts.findings),
            (0, 1)
        );
    }

    #[test]
    fn base64_wrapped_or_without_padding_is_read() {
        let data =
            base64::engine::general_purpose::STANDARD.encode(gzip(document(&[REJECT]).as_bytes()));
        let wrapped: Vec<String> = data
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        for data in [wrapped.join("\\n"), data.trim_end_matches('=').to_string()] {
            let input = format!(r#"{{"awslogs":{{"data":"{data}"}}}}"#);
            let report = scan_reader(input.as_bytes(), &config()).unwrap();
            assert_eq!(report.counts.findings, 1, "{data:.90}");
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
        // A raw file cut off: the records before the cut are reported, with the cause.
        let raw = format!("{REJECT}\n").repeat(2000);
        let compressed = gzip(raw.as_bytes());
        let cut = &compressed[..compressed.len() / 2];
        let Err(DecodeError::Cut { read, cause, note }) = scan_reader(cut, &config()) else {
            panic!("not a cut");
        };
        assert!(matches!(*cause, DecodeError::Gzip(_)), "{cause}");
        assert_eq!(
            note,
            format!("cut off after {}", records(read.counts.records))
        );
        assert!(read.counts.findings > 100, "{}", read.counts.findings);
        assert_eq!(read.activities.len(), 1);
    }

    #[test]
    fn zero_padding_after_the_last_gzip_member_is_tolerated() {
        let mut padded = gzip(format!("{REJECT}\n").as_bytes());
        padded.extend(gzip(format!("{REJECT}\n").as_bytes()));
        padded.extend([0u8; 300]);
        assert_eq!(
            scan_reader(&padded[..], &config()).unwrap().counts.findings,
            2
        );
        padded.extend(b"junk");
        assert!(matches!(
            scan_reader(&padded[..], &config()),
            Err(DecodeError::Cut { .. })
        ));
    }

    #[test]
    fn gzip_inflated_on_a_thread_of_its_own_reads_the_same() {
        // Lines of every length, so that chunks end anywhere in them; other sources too.
        let lines: String = (0..40_000)
            .map(|i| match i % 3 {
                0 => format!("{REJECT}\n"),
                1 => format!(
                    "2 1 eni-{i:x} 172.31.{}.{} 172.31.0.9 1 {} 6 1 40 1 2 REJECT OK{}\n",
                    i % 7,
                    i % 200,
                    i % 1000,
                    " ".repeat(i % 37)
                ),
                _ => "not a record\n".to_string(),
            })
            .collect();
        let whole = gzip(lines.as_bytes());
        let mut padded = gzip(lines.as_bytes());
        padded.extend(gzip(format!("{REJECT}\n").as_bytes()));
        padded.extend([0u8; 300]);
        let mut junk = padded.clone();
        junk.extend(b"junk");
        let json = gzip(event(&document(&[REJECT; 3])).as_bytes());
        let inputs = [
            ("whole", whole.clone()),
            ("cut", whole[..whole.len() * 2 / 3].to_vec()),
            ("two members and padding", padded),
            ("junk after the padding", junk),
            ("an event, gzipped", json),
            ("only the magic", GZIP_MAGIC.to_vec()),
        ];
        let read = |input: &[u8], apart: bool| {
            let config = Config {
                inflate_apart: apart,
                ..config()
            };
            // The first bytes a few at a time, as a pipe may hand them out.
            let (head, rest) = input.split_at(input.len().min(3));
            match scan_reader(Trickle(head).chain(rest), &config) {
                Ok(report) => format!("{report:?}"),
                Err(DecodeError::Cut { read, cause, .. }) => format!("{read:?} then {cause}"),
                Err(other) => other.to_string(),
            }
        };
        for (name, input) in &inputs {
            let here = read(input, false);
            assert_eq!(here, read(input, true), "{name}");
            if *name == "whole" {
                assert!(here.contains("findings: 26667"), "{here:.300}");
            }
        }
    }

    #[test]
    fn extracted_fields_are_skipped_only_in_their_compact_shape() {
        let len = |s: &str| compact_string_map_len(s.as_bytes(), |_| {});
        assert_eq!(len(r#"{"a":"1","srcaddr":"10.0.0.1"}}"#), Some(30));
        assert_eq!(len("{}rest"), Some(2));
        for other in [
            r#"{"a": "1"}"#,
            r#"{"a":"1\"2"}"#,
            r#"{"a":1}"#,
            r#"{"a":{"b":"c"}}"#,
            r#"{"a":"1",}"#,
            r#"{"a":"1""#,
            "{\"a\":\"\n\"}",
            "",
        ] {
            assert_eq!(len(other), None, "{other}");
        }
        // Whatever the shortcut declines, serde reads: the same records either way.
        let spaced = r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"id":"1","timestamp":1,"message":"m","extractedFields":{ "a" : "1" }}]}"#;
        assert!(both_ways(spaced).is_some());
    }

    #[test]
    fn known_keys_skip_exactly_what_the_general_reader_skips() {
        let objects = [
            r#"{"version":"2","srcaddr":"10.0.0.1","end":"1764195300"}}"#,
            r#"{"version":"2","srcaddr":"2600:1f18:4a2b:9e00::17","end":"1"}},{"#,
            r#"{"version":"2","srcaddr":"","end":"1764195300"}"#,
            r#"{"version":"2","srcaddr":"10.0.0.1"}"#,
            r#"{"version":"2","srcaddr":"10.0.0.1","end":"1","log_status":"OK"}"#,
            r#"{"version":"2","srcaddr":"10.0.0.1","end":"1","#,
            r#"{"version":"2","srcaddr":"10.0\.0.1","end":"1"}"#,
            "{\"version\":\"2\",\"srcaddr\":\"10.0\t.0.1\",\"end\":\"1\"}",
            r#"{"version":"2","srcaddr":"10.0.0.1","end":1}"#,
            r#"{"version":"2","srcaddr":"}","end":"1"}"#,
            r#"{"version":"2","srcaddr":"1\,"end":"1"}"#,
            "{\"version\":\"2\",\"srcaddr\":\"1\n,\"end\":\"1\"}",
            r#"{"version":"2","Srcaddr":"10.0.0.1","end":"1"}"#,
            r#"{"version":"2","srcaddr":"10.0.0.1","end":"1" }"#,
            r#"{"v":"2","s":"1"}"#,
            r#"{"v":"2","s":"1"#,
            r#"{}"#,
            r#"{"version":"2","srcaddr":"10.0.0.1","end":"1""#,
        ];
        let general = |o: &str| compact_string_map_len(o.as_bytes(), |_| {});
        // Guesses at the values' lengths, as a record's field edges: right (each object's own
        // values, cut at every quote), one off, too few, too many, none.
        let edges = |lengths: &[usize]| {
            let mut at = 0;
            let mut edges = Vec::new();
            for &n in lengths {
                edges.extend([at, at + n].map(|e| e as u32));
                at += n + 1;
            }
            edges
        };
        let mut guesses = vec![vec![]];
        for object in objects {
            let values: Vec<usize> = object.split('"').skip(3).step_by(4).map(str::len).collect();
            for k in 0..values.len() {
                for delta in [1, usize::MAX] {
                    let mut off = values.clone();
                    off[k] = off[k].wrapping_add(delta).min(40);
                    guesses.push(edges(&off));
                }
            }
            guesses.push(edges(&values[..values.len().saturating_sub(1)]));
            guesses.push(edges(&[values.clone(), vec![1]].concat()));
            guesses.push(edges(&values));
        }
        // Whatever object came before (the keys learnt), and whatever the guess, the same
        // length or the same refusal.
        // Each object also with the rest of a document after it, so that every value can be
        // checked in a whole block.
        let padded: Vec<String> = objects
            .iter()
            .map(|o| format!("{o}{}", " ".repeat(32)))
            .collect();
        for before in objects {
            for object in objects
                .iter()
                .copied()
                .chain(padded.iter().map(String::as_str))
            {
                for guess in &guesses {
                    let mut keys = FieldKeys::default();
                    keys.skip(before.as_bytes(), &[]);
                    assert_eq!(
                        keys.skip(object.as_bytes(), guess),
                        general(object),
                        "{object} after {before}, guessing {guess:?}"
                    );
                }
            }
        }
        let mut keys = FieldKeys::default();
        keys.skip(objects[0].as_bytes(), &[]);
        assert_eq!(keys.segments.len(), 3, "the keys are learnt");
        assert!(keys.skip_known(objects[1].as_bytes()).is_some());
        // The right guess is taken as it is, values of a block or longer too; a wrong one is
        // only declined.
        let guessed = |o: &str, lengths: &[usize]| keys.skip_guessed(o.as_bytes(), &edges(lengths));
        assert_eq!(guessed(objects[0], &[1, 8, 10]), general(objects[0]));
        assert_eq!(guessed(objects[1], &[1, 23, 1]), general(objects[1]));
        assert_eq!(guessed(objects[0], &[1, 9, 10]), None);
        assert_eq!(guessed(objects[1], &[1, 22, 1]), None);
        assert_eq!(guessed(objects[0], &[1, 8]), None);
    }

    /// A log event as CloudWatch Logs writes it for a space-delimited filter pattern that names
    /// the default format's fields: the record, then `fields` (its own, unless given) by name.
    fn extracted_event(id: usize, message: &str, fields: Option<&str>) -> String {
        let named: Vec<String> = FlowFormat::default_v2()
            .pattern_names()
            .zip(fields.unwrap_or(message).split(' '))
            .map(|(name, value)| format!(r#""{name}":"{value}""#))
            .collect();
        format!(
            r#"{{"id":"{id}","timestamp":5,"message":"{message}","extractedFields":{{{}}}}}"#,
            named.join(",")
        )
    }

    #[test]
    fn extracted_fields_are_skipped_where_the_records_fields_say_they_end() {
        let v6 = "2 123456789010 eni-1235b8ca123456789 2600:1f18:4a2b:9e00::17 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK";
        // The record's own fields are the right guess, values of a block or longer included
        // (the interface id, the IPv6 address).
        let event = extracted_event(1, v6, None);
        let object = &event[event.find("\"extractedFields\":").unwrap() + 18..event.len() - 1];
        let mut keys = FieldKeys::default();
        keys.skip(object.as_bytes(), &[]);
        let mut splitter = crate::flow::record::RecordSplitter::default();
        splitter.split(v6, &FlowFormat::default_v2()).unwrap();
        assert_eq!(
            keys.skip_guessed(object.as_bytes(), splitter.last_edges()),
            Some(object.len())
        );
        // Whole documents, against serde: production's events; an event whose fields are
        // another record's (a wrong guess); a blank record, which leaves the guess of the one
        // before; a malformed one, which leaves none; and a control message's events, which
        // are no records.
        let events = [
            extracted_event(1, REJECT, None),
            extracted_event(2, v6, None),
            extracted_event(3, REJECT, Some(v6)),
            extracted_event(4, " ", Some(REJECT)),
            extracted_event(5, "2 x", Some(REJECT)),
            extracted_event(6, REJECT, None),
        ];
        for kind in ["DATA_MESSAGE", "CONTROL_MESSAGE"] {
            let doc = format!(
                r#"{{"messageType":"{kind}","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{}]}}"#,
                events.join(",")
            );
            let (fast, slow) = both_ways(&doc).expect("CloudWatch's shape");
            assert_eq!(fast.counts, slow.counts, "{kind}");
            assert_eq!(fast.activities, slow.activities, "{kind}");
            assert_eq!(fast.fingerprint, slow.fingerprint, "{kind}");
            let records = if kind == "DATA_MESSAGE" { 5 } else { 0 };
            assert_eq!(
                fast.counts.records, records,
                "{kind}: the blank one is no record"
            );
        }
    }

    #[test]
    fn event_data_is_inflated_whole_only_when_it_is_exactly_one_member() {
        use base64::Engine as _;
        let text = format!("{REJECT}\n");
        let one = gzip(text.as_bytes());
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(decode_data(&b64(&one), 1 << 20).unwrap(), text.as_bytes());
        // Two identical members end with the trailer that fits the first one alone: both
        // must still be read.
        let twice = [one.clone(), one.clone()].concat();
        assert_eq!(
            decode_data(&b64(&twice), 1 << 20).unwrap(),
            text.repeat(2).as_bytes()
        );
        // A trailer that claims more than the limit is not trusted to size a buffer; the
        // stream still stops at the limit.
        let mut lying = one;
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_data(&b64(&lying), 1 << 20).is_err());
        assert!(matches!(
            decode_data(&b64(&gzip(&vec![b'x'; 4096])), 1000),
            Err(DecodeError::TooLarge { limit: 1000 })
        ));
        // A header CRC is checked (by the stream: libdeflate would skip it).
        let mut with_crc = gzip(text.as_bytes());
        with_crc[3] |= 0x02;
        let crc = crc32(&with_crc[..10]);
        with_crc.splice(10..10, crc.to_le_bytes()[..2].iter().copied());
        assert_eq!(
            decode_data(&b64(&with_crc), 1 << 20).unwrap(),
            text.as_bytes()
        );
        with_crc[10] ^= 0xff;
        assert!(matches!(
            decode_data(&b64(&with_crc), 1 << 20),
            Err(DecodeError::Gzip(_))
        ));
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = flate2::Crc::new();
        crc.update(bytes);
        crc.sum()
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
            assert_eq!(report.activities[0].source.to_string(), "172.31.1.1");
        }
    }

    #[test]
    fn a_header_naming_no_usable_format_fails_the_input_after_the_rest_is_read() {
        // Three files concatenated; the second's header has no `action`: its records cannot be
        // judged, nor read with the first format (which would find a reject from 172.31.1.7),
        // the third's are read with its own.
        let file = format!(
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n{REJECT}\nversion srcaddr dstaddr\n{}\n2 172.31.1.8 172.31.1.2\naction srcaddr dstaddr dstport log-status\nREJECT 172.31.1.1 172.31.1.2 22 OK\n",
            REJECT.replace("172.31.9.69", "172.31.1.7")
        );
        for input in [file.clone().into_bytes(), gzip(file.as_bytes())] {
            let Err(DecodeError::Cut { read, cause, note }) = scan_reader(&input[..], &config())
            else {
                panic!("a refused header fails the input");
            };
            assert!(
                matches!(*cause, DecodeError::Header { after: 1, .. }),
                "{cause}"
            );
            assert_eq!(
                (
                    read.counts.records,
                    read.counts.malformed,
                    read.counts.findings
                ),
                (4, 2, 2)
            );
            let mut sources: Vec<_> = read.activities.iter().map(|a| a.source).collect();
            sources.sort();
            assert_eq!(
                sources,
                ["172.31.1.1", "172.31.9.69"].map(|a| a.parse::<std::net::IpAddr>().unwrap())
            );
            let said = DecodeError::Cut { read, cause, note }.to_string();
            assert_eq!(
                said,
                "a header line after 1 record does not describe a usable format: the format has no `action` field, so REJECT records cannot be recognised (the records under it are counted malformed, the others are read)"
            );
        }
        // The first line: nothing is read with the configured format either.
        let Err(DecodeError::Cut { read, cause, .. }) =
            scan_reader(format!("srcaddr dstaddr\n{REJECT}\n").as_bytes(), &config())
        else {
            panic!("a refused header fails the input");
        };
        assert!(
            cause.to_string().starts_with("the header line does not"),
            "{cause}"
        );
        assert_eq!((read.counts.records, read.counts.malformed), (1, 1));
        // Cut off after such a header: the cut is the cause, and the header is named too.
        let many = format!("{REJECT}\n").repeat(3000);
        let file = gzip(format!("{REJECT}\nsrcaddr dstaddr\n{many}").as_bytes());
        let Err(DecodeError::Cut { cause, note, .. }) =
            scan_reader(&file[..file.len() * 2 / 3], &config())
        else {
            panic!("a cut");
        };
        assert!(matches!(*cause, DecodeError::Gzip(_)), "{cause}");
        assert!(
            note.contains("; before the cut, a header line after 1 record does not describe a usable format: the format has no `action` field"),
            "{note}"
        );
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

    #[test]
    fn lines_read_whole_or_gathered_across_one_byte_reads_give_the_same_report() {
        // Every kind of line, over several buffers: records, a line that is not UTF-8, one
        // longer than a record may be, CRLF, a byte order mark, blank lines, a second header.
        let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
        let mut file = format!("{header}\n").into_bytes();
        for i in 0..3000 {
            let line = match i % 500 {
                7 => b"\xff\xfe not text".to_vec(),
                8 => vec![b'9'; MAX_LINE_BYTES + 1],
                9 => format!("{REJECT}\r").into_bytes(),
                10 => format!("\u{feff}{REJECT}").into_bytes(),
                11 => Vec::new(),
                12 => b"srcaddr action dstport".to_vec(),
                13 => b"172.31.9.70 REJECT 22".to_vec(),
                14 => header.as_bytes().to_vec(),
                _ => REJECT.replace("3389", &(i % 4000).to_string()).into_bytes(),
            };
            file.extend_from_slice(&line);
            file.push(b'\n');
        }
        file.extend_from_slice(REJECT.as_bytes()); // no line break at the end
        let in_place = scan_lines(&file[..], &config()).unwrap();
        let gathered = scan_lines(BufReader::new(Trickle(&file)), &config()).unwrap();
        assert_eq!(in_place.counts, gathered.counts);
        assert_eq!(in_place.activities, gathered.activities);
        let c = in_place.counts;
        assert_eq!(
            (c.records, c.malformed),
            (2983, 12),
            "6 x (not text, too long)"
        );
        assert_eq!(
            in_place.activities.len(),
            2,
            "the second format's source too"
        );
    }
}
