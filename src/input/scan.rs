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
use crate::detect::activity::{Activity, Aggregator};
use crate::detect::alert::Origin;
use crate::detect::rule::{classify, Verdict};
use crate::flow::format::FlowFormat;
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
}

impl Report {
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
            let c = &mut whole.counts;
            c.records += part.counts.records;
            c.malformed += part.counts.malformed;
            c.rejects += part.counts.rejects;
            c.findings += part.counts.findings;
            c.skipped_data += part.counts.skipped_data;
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
            if whole.region != part.region {
                whole.region = None;
            }
            fingerprints.push(part.fingerprint);
        }
        if fingerprints.len() > 1 {
            whole.fingerprint = fingerprints.iter().any(Option::is_some).then(|| {
                let mut hasher = DefaultHasher::new();
                fingerprints.hash(&mut hasher);
                hasher.finish()
            });
        }
        whole
    }
}

/// Scans lines of one input against the configuration.
pub struct Scanner<'c> {
    config: Cow<'c, Config>,
    splitter: RecordSplitter,
    aggregator: Aggregator,
    counts: Counts,
}

impl<'c> Scanner<'c> {
    pub fn new(config: &'c Config) -> Scanner<'c> {
        Scanner {
            config: Cow::Borrowed(config),
            splitter: RecordSplitter::default(),
            aggregator: Aggregator::default(),
            counts: Counts::default(),
        }
    }

    /// Reads the following records with `format` instead of the configured one (an S3 file's
    /// header names the format of that file).
    pub fn use_format(&mut self, format: FlowFormat) {
        self.config.to_mut().format = format;
    }

    /// Scans one record; `owner` is the account the input came from, if it says.
    pub fn record(&mut self, line: &str, owner: Option<&str>) {
        if line.trim_ascii().is_empty() {
            return;
        }
        self.counts.records += 1;
        let Some(record) = self.splitter.split(line, &self.config.format) else {
            self.counts.malformed += 1;
            return;
        };
        match classify(&record, &self.config) {
            Verdict::Pass => {}
            Verdict::SkippedData => self.counts.skipped_data += 1,
            Verdict::Malformed => self.counts.malformed += 1,
            Verdict::ExternalReject => self.counts.rejects += 1,
            Verdict::Finding(finding) => {
                self.counts.rejects += 1;
                self.counts.findings += 1;
                self.aggregator.add(&finding, owner);
            }
        }
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
