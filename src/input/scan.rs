//! The scan of one input: records in, counts and each source's activity out.
//!
//! [`Scanner`] ties the stages together for a stream of lines (split, classify, group) and
//! keeps the counts a user sees in the summary. It holds no I/O: the decoder feeds it lines.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use serde::Serialize;

use crate::config::Config;
use crate::detect::activity::{Activity, Aggregator, Pending};
use crate::detect::alert::Origin;
use crate::detect::rule::{classify, Detached, Finding, Verdict};
use crate::flow::format::{FlowFormat, FormatError};
use crate::flow::record::RecordSplitter;

/// What a scan saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Records read (blank lines are not records).
    pub records: u64,
    /// Records with the wrong number of fields, or a field the rule needs that cannot be read.
    pub malformed: u64,
    /// Well-formed records whose action is REJECT, internal or not.
    pub rejects: u64,
    /// Rejects whose source is inside the VPC and not ignored.
    pub findings: u64,
    /// SKIPDATA records: the flow log lost records in their interval (a monitoring gap).
    pub skipped_data: u64,
}

impl Counts {
    /// Adds another input's counts.
    pub fn add(&mut self, other: &Counts) {
        self.records += other.records;
        self.malformed += other.malformed;
        self.rejects += other.rejects;
        self.findings += other.findings;
        self.skipped_data += other.skipped_data;
    }
}

/// The result of scanning one input.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub counts: Counts,
    /// What each source did in this input, by source address.
    pub activities: Vec<Activity>,
    pub origin: Origin,
    /// The log event ids of a CloudWatch Logs batch, hashed: the same batch delivered twice has
    /// the same fingerprint. `None` for inputs without ids.
    pub fingerprint: Option<u64>,
    /// The region the input says it came from (an S3 flow log's key), when it says.
    pub region: Option<String>,
    /// Sources whose region is not `region`: parts of one delivery from several regions.
    pub source_regions: HashMap<IpAddr, String>,
}

impl Report {
    /// The region `source`'s records came from, when the input says.
    pub fn region_of(&self, source: IpAddr) -> Option<&str> {
        self.source_regions
            .get(&source)
            .or(self.region.as_ref())
            .map(String::as_str)
    }

    /// One report for the parts of one delivery (the records of a Kinesis batch, the objects
    /// of a notification): counts added up, each source's activity merged, the origin and
    /// region kept where every part agrees, and a fingerprint of the parts' fingerprints.
    pub fn combine(parts: Vec<Report>) -> Report {
        let mut parts = parts.into_iter();
        let Some(mut whole) = parts.next() else {
            return Report::default();
        };
        let mut at: HashMap<IpAddr, usize> = whole
            .activities
            .iter()
            .enumerate()
            .map(|(i, a)| (a.source, i))
            .collect();
        let mut fingerprints = vec![whole.fingerprint];
        for part in parts {
            whole.counts.add(&part.counts);
            if whole.region != part.region || !whole.source_regions.is_empty() {
                // Parts from several regions: each source keeps its part's region.
                if let Some(region) = whole.region.take() {
                    for a in &whole.activities {
                        whole
                            .source_regions
                            .entry(a.source)
                            .or_insert(region.clone());
                    }
                }
                if let Some(region) = &part.region {
                    for a in &part.activities {
                        whole
                            .source_regions
                            .entry(a.source)
                            .or_insert(region.clone());
                    }
                }
                whole.source_regions.extend(part.source_regions);
            }
            for activity in part.activities {
                match at.get(&activity.source) {
                    Some(&i) => whole.activities[i].merge(&activity),
                    None => {
                        at.insert(activity.source, whole.activities.len());
                        whole.activities.push(activity);
                    }
                }
            }
            let o = &mut whole.origin;
            if o.log_group != part.origin.log_group {
                o.log_group = None;
            }
            if o.log_stream != part.origin.log_stream {
                o.log_stream = None;
            }
            fingerprints.push(part.fingerprint);
        }
        whole.fingerprint = combined_fingerprint(&fingerprints);
        whole
    }
}

/// The fingerprint of a delivery made of parts: a lone part's own, else a hash of all of
/// them (`None` when no part has one).
pub fn combined_fingerprint(parts: &[Option<u64>]) -> Option<u64> {
    match parts {
        [one] => *one,
        _ if parts.iter().all(Option::is_none) => None,
        all => {
            let mut hasher = DefaultHasher::new();
            all.hash(&mut hasher);
            Some(hasher.finish())
        }
    }
}

/// The longest raw record read as a record; longer lines are counted malformed and skipped.
/// Real records are a few hundred bytes even with every field of every version.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Each of the whole lines of `block` (each ending with its line break) to `line`, as text,
/// or `None` when it is not text or longer than [`MAX_LINE_BYTES`].
fn each_line<'a>(block: &'a [u8], mut line: impl FnMut(Option<&'a str>)) {
    // One UTF-8 check for all of the lines; when some line is not text, each is checked
    // alone, to count just those.
    let text = std::str::from_utf8(block).ok();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', block) {
        line(match text {
            _ if end - start > MAX_LINE_BYTES => None,
            // A line break is a character of its own: the cut falls between characters.
            Some(text) => Some(&text[start..=end]),
            None => std::str::from_utf8(&block[start..=end]).ok(),
        });
        start = end + 1;
    }
}

/// The most findings [`Scanner::read_ahead`] keeps of one block (about 2 MB of them): a block
/// of short records, nearly all findings, is left to the scanner that takes it.
const MAX_FOUND_AHEAD: usize = 8192;

/// What [`Scanner::read_ahead`] read of a block of lines, for [`Scanner::take_ahead`].
#[derive(Debug)]
pub struct ReadAhead {
    /// The format the block was read with, and whether it was unusable (after a refused
    /// header); then the same after the block, whose header lines may have changed them.
    from: (FlowFormat, bool),
    to: (FlowFormat, bool),
    counts: Counts,
    /// The first header refused in the block: the block's records before it, and why.
    refused: Option<(u64, FormatError)>,
    /// The findings, in order; `None` if one could not be detached from the block.
    found: Option<Vec<Detached>>,
}

#[cfg(test)]
thread_local! {
    /// Blocks taken with [`Scanner::take_ahead`] on this thread, for tests to see it is used.
    pub static TAKEN_AHEAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Scans lines of one input against the configuration.
pub struct Scanner<'c> {
    config: Cow<'c, Config>,
    splitter: RecordSplitter,
    aggregator: Aggregator,
    counts: Counts,
    /// Whether the last header line named no usable format: the records under it cannot be
    /// read, and count as malformed until a header that can.
    unusable_format: bool,
    /// The first header line refused: the records read before it, and why.
    refused: Option<(u64, FormatError)>,
}

impl<'c> Scanner<'c> {
    pub fn new(config: &'c Config) -> Scanner<'c> {
        Scanner {
            config: Cow::Borrowed(config),
            splitter: RecordSplitter::default(),
            aggregator: Aggregator::default(),
            counts: Counts::default(),
            unusable_format: false,
            refused: None,
        }
    }

    /// Reads the following records with `format` instead of the configured one (an S3 file's
    /// header names the format of that file).
    pub fn use_format(&mut self, format: FlowFormat) {
        self.config.to_mut().format = format;
        self.unusable_format = false;
    }

    /// A header line that names no usable format: the records after it, up to the next header,
    /// are counted malformed (they are not read with the format before it), and the first such
    /// header is kept for [`Scanner::refused_header`].
    pub fn refuse_format(&mut self, why: FormatError) {
        self.unusable_format = true;
        self.refused.get_or_insert((self.counts.records, why));
    }

    /// The first header line refused, if any: the records read before it, and why.
    pub fn refused_header(&mut self) -> Option<(u64, FormatError)> {
        self.refused.take()
    }

    /// Scans one record; `owner` is the account the input came from, if it says.
    pub fn record(&mut self, line: &str, owner: Option<&str>) {
        if let Some(finding) = self.read(line) {
            self.add(&finding, owner);
        }
    }

    /// Scans the whole lines of `block`, each ending with its line break, as a file holds
    /// them: records, and header lines that name the format of the lines after them. Each
    /// finding goes to `found`; a line that is not text, or longer than [`MAX_LINE_BYTES`], is
    /// counted unreadable.
    pub fn block<'a>(&mut self, block: &'a [u8], mut found: impl FnMut(&mut Self, Finding<'a>)) {
        each_line(block, |line| match line {
            Some(line) => {
                if let Some(finding) = self.line(line) {
                    found(self, finding);
                }
            }
            None => self.unreadable_record(),
        });
    }

    /// Scans one line of text: a record, whose finding it gives if it is one, or a header
    /// that names the format of the lines after it.
    pub fn line<'a>(&mut self, text: &'a str) -> Option<Finding<'a>> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if self.header(text) {
            return None;
        }
        self.read(text)
    }

    /// Whether `text` (without a byte order mark) is a header line, which it then follows.
    /// Every header line names the format of the lines after it: files written by two flow
    /// logs, or concatenated (`cat a.log b.log`), switch formats midway. A header starts with
    /// a field name; a record of the usual formats starts with a digit or a dash.
    fn header(&mut self, text: &str) -> bool {
        let header = text.trim_ascii_start();
        if !(header
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_lowercase)
            && FlowFormat::looks_like_header(header))
        {
            return false;
        }
        match FlowFormat::parse(header) {
            Ok(format) => self.use_format(format),
            Err(why) => self.refuse_format(why),
        }
        true
    }

    /// Follows the header lines of a block of whole lines that another scanner reads (see
    /// [`Scanner::read_ahead`]), without reading its records: the format in use after it is
    /// then the other's. When `line_start` is false, the block starts within a line that
    /// started before it, which is no header.
    pub fn follow_headers(&mut self, block: &[u8], line_start: bool) {
        let first = match line_start {
            true => 0,
            false => memchr::memchr(b'\n', block).map_or(block.len(), |i| i + 1),
        };
        // What [`Scanner::block`] and [`Scanner::line`] would take for a header.
        each_line(&block[first..], |line| {
            if let Some(text) = line {
                self.header(text.strip_prefix('\u{feff}').unwrap_or(text));
            }
        });
        self.counts = Counts::default();
        self.refused = None;
    }

    /// Adds a finding at once (one of few, or of a line read alone).
    pub fn add(&mut self, finding: &Finding, owner: Option<&str>) {
        self.aggregator.add(finding, owner);
    }

    /// Adds a finding of many a few findings later (see [`Aggregator::add_ahead`]);
    /// [`Scanner::catch_up`] adds those still pending before their lines go.
    pub fn add_ahead<'a>(
        &mut self,
        finding: Finding<'a>,
        owner: Option<&'a str>,
        pending: &mut Pending<'a>,
    ) {
        self.aggregator.add_ahead(pending, finding, owner);
    }

    /// Reads a block of whole lines (as [`Scanner::block`]) for another scanner, on another
    /// thread, to take with [`Scanner::take_ahead`]: what the lines hold, without the
    /// grouping, which must follow the order of the whole input. To know the format in use,
    /// this scanner is given every block in order: the others to [`Scanner::follow_headers`].
    pub fn read_ahead(&mut self, block: &[u8]) -> ReadAhead {
        let from = (self.config.format.clone(), self.unusable_format);
        // Room for a finding every 256 bytes, about every other record (more grow the list).
        let mut found = Vec::with_capacity(block.len() / 256);
        let mut lost = false;
        self.block(block, |_, finding| match finding.detach(block) {
            // Past the cap, the other scanner reads the block itself.
            Some(detached) if found.len() < MAX_FOUND_AHEAD => found.push(detached),
            _ => lost = true,
        });
        ReadAhead {
            from,
            to: (self.config.format.clone(), self.unusable_format),
            counts: std::mem::take(&mut self.counts),
            refused: self.refused.take(),
            found: (!lost).then_some(found),
        }
    }

    /// Takes what [`Scanner::read_ahead`] read of `block` as if this scanner had read it: the
    /// counts, the header lines and the findings, added in order. Returns `false`, having
    /// taken nothing, when this scanner must read the block itself: it was read with another
    /// format than the one this scanner is at, or its findings were not all kept (past the
    /// cap), or one of them does not fit `block`.
    pub fn take_ahead(&mut self, ahead: ReadAhead, block: &[u8], owner: Option<&str>) -> bool {
        let Some(found) = &ahead.found else {
            return false;
        };
        if ahead.from.0 != self.config.format || ahead.from.1 != self.unusable_format {
            return false;
        }
        // The strings of a block of text are cut where its spans say; a block holding a line
        // that is not text has each of them checked (they were text where they were read).
        let text = std::str::from_utf8(block).ok();
        let string = |start: usize, end: usize| match text {
            Some(text) => text.get(start..end),
            None => std::str::from_utf8(block.get(start..end)?).ok(),
        };
        if !found.iter().all(|d| d.attach(string).is_some()) {
            return false;
        }
        if let Some((after, why)) = ahead.refused {
            self.refused
                .get_or_insert((self.counts.records + after, why));
        }
        self.counts.add(&ahead.counts);
        let (format, unusable) = ahead.to;
        if format != self.config.format {
            self.config.to_mut().format = format;
        }
        self.unusable_format = unusable;
        let mut pending = Pending::default();
        for finding in found.iter().filter_map(|d| d.attach(string)) {
            self.aggregator.add_ahead(&mut pending, finding, owner);
        }
        self.aggregator.catch_up(&mut pending);
        #[cfg(test)]
        TAKEN_AHEAD.with(|taken| taken.set(taken.get() + 1));
        true
    }

    /// Adds the findings still pending.
    pub fn catch_up(&mut self, pending: &mut Pending<'_>) {
        self.aggregator.catch_up(pending);
    }

    /// Counts one record, and gives its finding if it is one.
    fn read<'a>(&mut self, line: &'a str) -> Option<Finding<'a>> {
        if line.trim_ascii().is_empty() {
            return None;
        }
        if self.unusable_format {
            self.unreadable_record();
            return None;
        }
        self.counts.records += 1;
        let Some(record) = self.splitter.split(line, &self.config.format) else {
            self.counts.malformed += 1;
            return None;
        };
        match classify(&record, &self.config) {
            Verdict::Pass => {}
            Verdict::SkippedData => self.counts.skipped_data += 1,
            Verdict::Malformed => self.counts.malformed += 1,
            Verdict::ExternalReject => self.counts.rejects += 1,
            Verdict::Finding(finding) => {
                self.counts.rejects += 1;
                self.counts.findings += 1;
                return Some(finding);
            }
        }
        None
    }

    /// Where the fields of the last record read start and end, in turn (as in a record); empty
    /// when it was not a record of the format. A blank line leaves the ones before it.
    pub fn last_edges(&self) -> &[u32] {
        self.splitter.last_edges()
    }

    /// Counts a record that could not even be read as text (invalid UTF-8, or too long).
    pub fn unreadable_record(&mut self) {
        self.counts.records += 1;
        self.counts.malformed += 1;
    }

    /// The counts and each source's activity.
    pub fn finish(self, origin: Origin) -> Report {
        Report {
            counts: self.counts,
            activities: self.aggregator.finish(origin.log_stream.as_deref()),
            origin,
            fingerprint: None,
            region: None,
            source_regions: HashMap::new(),
        }
    }
}

impl fmt::Display for Report {
    /// The one-line summary: `14 records, 0 malformed, 3 rejects, 2 findings, 1 source`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let n = self.activities.len();
        write!(
            f,
            "{} records, {} malformed, {} rejects, {} findings, {} source{}",
            c.records,
            c.malformed,
            c.rejects,
            c.findings,
            n,
            if n == 1 { "" } else { "s" }
        )?;
        if c.skipped_data > 0 {
            write!(
                f,
                ", {} SKIPDATA record{} (the flow log lost records)",
                c.skipped_data,
                if c.skipped_data == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::with_vpc_cidrs("172.31.0.0/16").unwrap()
    }

    fn part(lines: &[&str], region: &str, fingerprint: u64) -> Report {
        let config = config();
        let mut scanner = Scanner::new(&config);
        for line in lines {
            scanner.record(line, None);
        }
        let mut report = scanner.finish(Origin::default());
        report.region = Some(region.into());
        report.fingerprint = Some(fingerprint);
        report
    }

    #[test]
    fn parts_of_one_delivery_combine_per_source_and_keep_each_sources_region() {
        let probe = |src: &str, port: u16| {
            format!("2 1 eni-1 {src} 172.31.0.9 40000 {port} 6 1 40 1 2 REJECT OK")
        };
        let (a1, a2, b) = (
            probe("172.31.0.1", 22),
            probe("172.31.0.1", 23),
            probe("172.31.0.2", 22),
        );
        let one = part(&[&a1], "us-east-1", 1);
        let two = part(&[&a2, &b], "eu-west-1", 2);
        let whole = Report::combine(vec![one.clone(), two.clone()]);
        assert_eq!((whole.counts.records, whole.counts.findings), (3, 3));
        assert_eq!(whole.activities.len(), 2);
        assert_eq!(
            whole.activities[0].ports.len(),
            2,
            "one source's parts merged"
        );
        let source = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(whole.region_of(source("172.31.0.1")), Some("us-east-1"));
        assert_eq!(whole.region_of(source("172.31.0.2")), Some("eu-west-1"));
        // The same parts give the same fingerprint, other parts another.
        let again = Report::combine(vec![one.clone(), two.clone()]);
        assert_eq!(whole.fingerprint, again.fingerprint);
        assert_ne!(
            whole.fingerprint,
            Report::combine(vec![two, one]).fingerprint
        );
        let same_region = Report::combine(vec![
            part(&[&a1], "us-east-1", 1),
            part(&[&b], "us-east-1", 3),
        ]);
        assert_eq!(same_region.region.as_deref(), Some("us-east-1"));
        assert!(same_region.source_regions.is_empty());
    }

    #[test]
    fn the_documentation_records_count_as_expected() {
        let config = config();
        let mut scanner = Scanner::new(&config);
        for line in [
            "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
            "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK",
            "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA",
            "2 123456789010 eni-11111111aaaaaaaaa - - - - - - - 1431280876 1431280934 - SKIPDATA",
            "2 123456789010 eni-1235b8ca123456789 203.0.113.12 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK",
            "2 123456789010 short line",
            "",
        ] {
            scanner.record(line, None);
        }
        let report = scanner.finish(Origin::default());
        assert_eq!(
            report.counts,
            Counts {
                records: 6,
                malformed: 1,
                rejects: 2,
                findings: 1,
                skipped_data: 1
            }
        );
        assert_eq!(report.activities.len(), 1);
        assert_eq!(
            report.to_string(),
            "6 records, 1 malformed, 2 rejects, 1 findings, 1 source, 1 SKIPDATA record (the flow log lost records)"
        );
    }
}
