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
}

/// An S3 client for flow log objects; path-style addressing when an endpoint is configured
/// (a local S3 such as moto's, which does not serve bucket host names).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Reads one object: skipped when its key is not a flow log's, refused when it is Parquet,
/// else streamed and scanned. The report names the key's region, and its fingerprint is the
/// object's identity, so that a notification delivered twice is recognised.
pub async fn scan_object(
    client: &aws_sdk_s3::Client,
    object: &ObjectRef,
    config: &Config,
) -> Result<ObjectRead, ObjectError> {
    let named = object.to_string();
    let Some(layout) = flow_log_key(&object.key) else {
        return Ok(ObjectRead::Skipped(format!(
            "{named}: not a flow log object (its key is not under AWSLogs/ACCOUNT/vpcflowlogs/REGION/)"
        )));
    };
    if layout.parquet {
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
    let owner = layout.account.clone();
    let reading = tokio::task::spawn_blocking(move || {
        scan_reader_from(
            Chunks {
                receive,
                chunk: Bytes::new(),
            },
            &config,
            Some(&owner),
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
    let mut report = scanned.map_err(|cause| ObjectError::Decode {
        object: named.clone(),
        cause,
    })?;
    let counts = report.counts;
    if counts.records > 0 && counts.malformed == counts.records {
        return Err(ObjectError::NotFlowLog {
            object: named,
            lines: counts.records,
        });
    }
    report.region = Some(layout.region);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&object.bucket, &object.key, &object.version).hash(&mut hasher);
    report.fingerprint = Some(hasher.finish());
    Ok(ObjectRead::Report(report))
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
