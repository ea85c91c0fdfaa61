//! Flow log objects in S3: streamed with GetObject through the same reader as files, so any
//! size is read in bounded memory, gzip or plain, its header line naming the format.

use std::hash::{Hash, Hasher};
use std::io::{self, Read};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::input::decode::{scan_reader_from, DecodeError};
use crate::input::events::{flow_log_key, ObjectRef};
use crate::input::scan::Report;

/// Chunks of an object in flight between the download and the reader, at most.
const CHUNKS_IN_FLIGHT: usize = 8;

/// What reading an object gave.
#[derive(Debug)]
pub enum ObjectRead {
    /// Its report.
    Report(Report),
    /// The report of what could be read, and why the rest could not
    /// ([`ObjectCause::ReadInPart`]). The report has no fingerprint: it is not the object's
    /// report, so a whole read of the object later is not mistaken for its replay.
    InPart(Report, ObjectError),
    /// The object is not a flow log by its key (another service's logs, any other file): it
    /// is left alone, for this reason.
    Skipped(String),
}

/// Why an object cannot be read, naming the object.
#[derive(Debug, thiserror::Error)]
#[error("{object}: {cause}")]
pub struct ObjectError {
    pub object: String,
    pub cause: ObjectCause,
}

/// Why an object cannot be read, without its name.
#[derive(Debug, thiserror::Error)]
pub enum ObjectCause {
    #[error("cannot get the object: {0}")]
    Get(String),
    #[error(transparent)]
    Decode(DecodeError),
    #[error("not a flow log: none of its {lines} lines is a flow log record")]
    NotFlowLog { lines: u64 },
    /// The object was read in part (cut off, or a header naming no usable format); `note`
    /// says how much.
    #[error("{cause} ({note})")]
    ReadInPart { cause: DecodeError, note: String },
}

impl ObjectError {
    fn new(object: &str, cause: ObjectCause) -> ObjectError {
        ObjectError {
            object: object.to_owned(),
            cause,
        }
    }

    /// The object, the cause as a decoding error, and how much was read of the object when it
    /// was read in part.
    pub fn into_parts(self) -> (String, DecodeError, Option<String>) {
        let (cause, note) = match self.cause {
            ObjectCause::Decode(cause) => (cause, None),
            ObjectCause::ReadInPart { cause, note } => (cause, Some(note)),
            other => (DecodeError::Io(io::Error::other(other.to_string())), None),
        };
        (self.object, cause, note)
    }
}

/// An S3 client for flow log objects; path-style addressing when an endpoint is configured
/// (a local S3 such as moto's, which does not serve bucket host names).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Which objects to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Only those whose key is in the layout flow logs write (what a notification names:
    /// the bucket may hold other objects).
    FlowLogKeys,
    /// Any object (one a user named).
    Any,
}

/// Reads one object: skipped when only flow log keys are wanted and its key is not one,
/// refused when it is Parquet, else streamed and scanned. The report names the key's region,
/// and its fingerprint is the object's identity, so that a notification delivered twice is
/// recognised.
pub async fn scan_object(
    client: &aws_sdk_s3::Client,
    object: &ObjectRef,
    config: &Config,
    wanted: Wanted,
) -> Result<ObjectRead, ObjectError> {
    let named = object.to_string();
    let layout = flow_log_key(&object.key);
    if layout.is_none() && wanted == Wanted::FlowLogKeys {
        return Ok(ObjectRead::Skipped(format!(
            "{named}: not a flow log object (its key is not under AWSLogs/ACCOUNT/vpcflowlogs/REGION/)"
        )));
    }
    if object.key.ends_with(".parquet") {
        return Err(ObjectError::new(
            &named,
            ObjectCause::Decode(DecodeError::Parquet),
        ));
    }
    let output = client
        .get_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .send()
        .await
        .map_err(|e| ObjectError::new(&named, ObjectCause::Get(super::error_text(&e))))?;
    let (send, receive) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let config = config.clone();
    let owner = layout.as_ref().map(|l| l.account.clone());
    let reading = tokio::task::spawn_blocking(move || {
        scan_reader_from(
            Chunks {
                receive,
                chunk: Bytes::new(),
            },
            &config,
            owner.as_deref(),
        )
    });
    let mut body = output.body;
    loop {
        let chunk = match body.next().await {
            None => break,
            Some(Ok(chunk)) => Ok(chunk),
            Some(Err(e)) => Err(io::Error::other(format!("the download broke off: {e}"))),
        };
        let last = chunk.is_err();
        // The reader stopped (it failed): its error says why.
        if send.send(chunk).await.is_err() || last {
            break;
        }
    }
    drop(send);
    let scanned = reading.await.map_err(|e| {
        ObjectError::new(&named, ObjectCause::Get(format!("the reader stopped: {e}")))
    })?;
    let mut report = match scanned {
        Ok(report) => report,
        Err(DecodeError::Cut { read, cause, note }) => {
            // Not the object's identity: what was read of it is not the object (a download
            // that broke off is read whole by a retry).
            let mut read = *read;
            read.region = layout.map(|l| l.region);
            let why = ObjectError::new(
                &named,
                ObjectCause::ReadInPart {
                    cause: *cause,
                    note,
                },
            );
            return Ok(ObjectRead::InPart(read, why));
        }
        Err(cause) => return Err(ObjectError::new(&named, ObjectCause::Decode(cause))),
    };
    let counts = report.counts;
    if counts.records > 0 && counts.malformed == counts.records {
        return Err(ObjectError::new(
            &named,
            ObjectCause::NotFlowLog {
                lines: counts.records,
            },
        ));
    }
    report.region = layout.map(|l| l.region);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&object.bucket, &object.key, &object.version).hash(&mut hasher);
    report.fingerprint = Some(hasher.finish());
    Ok(ObjectRead::Report(report))
}

/// What reading a notification's objects gave: a report for each object read whole, and each
/// object that could not be read whole, with what was read of it when it failed midway.
#[derive(Debug)]
pub struct ObjectsRead {
    pub reports: Vec<Report>,
    /// In the order of the objects; a report here has no identity (see
    /// [`ObjectRead::InPart`]).
    pub failed: Vec<(ObjectError, Option<Report>)>,
}

impl ObjectsRead {
    /// What failed, in one sentence: the first object's error, and how many more failed.
    pub fn failure(&self) -> Option<String> {
        let (first, _) = self.failed.first()?;
        Some(match self.failed.len() {
            1 => first.to_string(),
            2 => format!("{first}; and 1 more object could not be read"),
            n => format!("{first}; and {} more objects could not be read", n - 1),
        })
    }
}

/// Reads `objects` one after the other; `skipped` hears of each object left alone. An object
/// that cannot be read whole does not stop the reading: the objects after it are read too (one
/// object that never can be would otherwise hide theirs for good).
pub async fn scan_objects(
    client: &aws_sdk_s3::Client,
    objects: &[ObjectRef],
    config: &Config,
    wanted: Wanted,
    skipped: impl Fn(&str),
) -> ObjectsRead {
    let mut read = ObjectsRead {
        reports: Vec::with_capacity(objects.len()),
        failed: Vec::new(),
    };
    for object in objects {
        match scan_object(client, object, config, wanted).await {
            Ok(ObjectRead::Report(report)) => read.reports.push(report),
            Ok(ObjectRead::Skipped(why)) => skipped(&why),
            Ok(ObjectRead::InPart(report, why)) => read.failed.push((why, Some(report))),
            Err(why) => read.failed.push((why, None)),
        }
    }
    read
}

/// A blocking reader over the chunks the download sends.
struct Chunks {
    receive: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.receive.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.chunk = chunk?,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

/// S3 for a program without a runtime of its own (`check`): reads objects from any thread.
pub struct BlockingS3 {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
}

impl BlockingS3 {
    /// A client with the usual AWS credentials and region.
    pub fn new() -> io::Result<BlockingS3> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let client = runtime.block_on(async { s3_client(&super::sdk_config().await) });
        Ok(BlockingS3 { runtime, client })
    }

    /// Reads `objects` as one input, one after the other; `skipped` hears of each object left
    /// alone. An object that cannot be read whole does not stop the reading; the first such is
    /// the error, which names it, and what was read (the other objects, and what was read of
    /// the failed ones) is reported with the error ([`DecodeError::Cut`]), whose note names the
    /// other objects that failed.
    pub fn scan(
        &self,
        objects: &[ObjectRef],
        config: &Config,
        wanted: Wanted,
        skipped: impl Fn(&str),
    ) -> Result<Report, DecodeError> {
        let read =
            self.runtime
                .block_on(scan_objects(&self.client, objects, config, wanted, skipped));
        let mut reports = read.reports;
        let whole = reports.len();
        let mut failed = read.failed.into_iter();
        let Some((error, partial)) = failed.next() else {
            return Ok(Report::combine(reports));
        };
        let (object, cause, note) = error.into_parts();
        reports.extend(partial);
        // The input is the object itself when it was named (`s3://...`): its name is already
        // said, and the error is not put under it again.
        let cause = match wanted {
            Wanted::Any => cause,
            Wanted::FlowLogKeys => DecodeError::Item {
                item: object,
                cause: Box::new(cause),
            },
        };
        let mut notes: Vec<String> = note.into_iter().collect();
        match whole {
            0 => {}
            1 => notes.push("1 other object read whole".into()),
            n => notes.push(format!("{n} other objects read whole")),
        }
        for (error, partial) in failed {
            reports.extend(partial);
            notes.push(format!("also {error}"));
        }
        if notes.is_empty() {
            return Err(cause);
        }
        Err(DecodeError::Cut {
            read: Box::new(Report::combine(reports)),
            cause: Box::new(cause),
            note: notes.join("; "),
        })
    }
}
