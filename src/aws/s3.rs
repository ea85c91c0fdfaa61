//! Flow log objects in S3: streamed with GetObject through the same reader as files, so any
//! size is read in bounded memory, gzip or plain, its header line naming the format.

use std::hash::{Hash, Hasher};
use std::io::{self, Read};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::input::decode::{read_in_part, scan_reader_from, DecodeError};
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
    /// ([`ObjectError::ReadInPart`]).
    InPart(Report, ObjectError),
    /// The object is not a flow log by its key (another service's logs, any other file): it
    /// is left alone, for this reason.
    Skipped(String),
}

/// Why an object cannot be read; each names the object.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{object}: cannot get the object: {cause}")]
    Get { object: String, cause: String },
    #[error("{object}: {cause}")]
    Decode { object: String, cause: DecodeError },
    #[error("{object}: not a flow log: none of its {lines} lines is a flow log record")]
    NotFlowLog { object: String, lines: u64 },
    /// The object was read in part (cut off, or a header naming no usable format): its report
    /// holds what was read, `records` records.
    #[error("{object}: {cause} ({})", read_in_part(cause, *records))]
    ReadInPart {
        object: String,
        records: u64,
        cause: DecodeError,
    },
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
        return Err(ObjectError::Decode {
            object: named,
            cause: DecodeError::Parquet,
        });
    }
    let output = client
        .get_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .send()
        .await
        .map_err(|e| ObjectError::Get {
            object: named.clone(),
            cause: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
        })?;
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
    let scanned = reading.await.map_err(|e| ObjectError::Get {
        object: named.clone(),
        cause: format!("the reader stopped: {e}"),
    })?;
    // The object's region and identity, on what was read of it, whole or in part: a
    // notification delivered twice, or retried after a cut, is then recognised.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&object.bucket, &object.key, &object.version).hash(&mut hasher);
    let own = |report: &mut Report| {
        report.region = layout.as_ref().map(|l| l.region.clone());
        report.fingerprint = Some(hasher.finish());
    };
    let mut report = match scanned {
        Ok(report) => report,
        Err(DecodeError::Cut { mut read, cause }) => {
            own(&mut read);
            let why = ObjectError::ReadInPart {
                object: named,
                records: read.counts.records,
                cause: *cause,
            };
            return Ok(ObjectRead::InPart(*read, why));
        }
        Err(cause) => {
            return Err(ObjectError::Decode {
                object: named,
                cause,
            })
        }
    };
    let counts = report.counts;
    if counts.records > 0 && counts.malformed == counts.records {
        return Err(ObjectError::NotFlowLog {
            object: named,
            lines: counts.records,
        });
    }
    own(&mut report);
    Ok(ObjectRead::Report(report))
}

/// What reading a notification's objects gave: a report for each object read, whole or in
/// part, and the error that stopped the reading, if one did.
#[derive(Debug)]
pub struct ObjectsRead {
    pub reports: Vec<Report>,
    pub error: Option<ObjectError>,
}

/// Reads `objects` one after the other; `skipped` hears of each object left alone. The first
/// object that cannot be read whole stops the reading: what was read of it, if anything, and
/// of the objects before it is kept, so that its alerts go out before the error.
pub async fn scan_objects(
    client: &aws_sdk_s3::Client,
    objects: &[ObjectRef],
    config: &Config,
    wanted: Wanted,
    skipped: impl Fn(&str),
) -> ObjectsRead {
    let mut reports = Vec::with_capacity(objects.len());
    for object in objects {
        let error = match scan_object(client, object, config, wanted).await {
            Ok(ObjectRead::Report(report)) => {
                reports.push(report);
                continue;
            }
            Ok(ObjectRead::Skipped(why)) => {
                skipped(&why);
                continue;
            }
            Ok(ObjectRead::InPart(report, why)) => {
                reports.push(report);
                why
            }
            Err(why) => why,
        };
        return ObjectsRead {
            reports,
            error: Some(error),
        };
    }
    ObjectsRead {
        reports,
        error: None,
    }
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
    /// alone. The first object that cannot be read is the error, which names it; when it was
    /// read in part, what was read of it and of the objects before it is reported with the
    /// error ([`DecodeError::Cut`]).
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
        let error = match read.error {
            None => return Ok(Report::combine(read.reports)),
            Some(error) => error,
        };
        Err(match error {
            ObjectError::ReadInPart { object, cause, .. } => DecodeError::Cut {
                read: Box::new(Report::combine(read.reports)),
                cause: Box::new(DecodeError::Item {
                    item: object,
                    cause: Box::new(cause),
                }),
            },
            ObjectError::Decode { object, cause } => DecodeError::Item {
                item: object,
                cause: Box::new(cause),
            },
            other => DecodeError::Io(io::Error::other(other.to_string())),
        })
    }
}
