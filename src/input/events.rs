//! The events the function is invoked with, recognised by their shape (no setting needed):
//! - a CloudWatch Logs subscription event (`awslogs`), read by [`crate::input::decode`];
//! - a Kinesis Data Streams batch (`Records[].kinesis`), each record a gzip CloudWatch Logs
//!   document sent by a CloudWatch Logs destination, from any account;
//! - an S3 object-created notification (`Records[].s3`), straight from S3;
//! - SQS messages (`Records[].body`) each holding such a notification;
//! - an EventBridge `Object Created` event from S3 (`detail-type`, `detail.object.key`).
//!
//! The records' own types are `aws_lambda_events`' (its Kinesis record and S3 entity); one
//! parse of the payload tells the shape and reads the records at once.

use std::fmt;

use aws_lambda_events::kinesis::KinesisRecord;
use aws_lambda_events::s3::S3Entity;
use serde::Deserialize;
use serde_json::value::RawValue;

/// An event, by shape.
#[derive(Debug)]
pub enum Event {
    /// A CloudWatch Logs subscription event or a decoded document: the payload is read as is.
    Logs,
    /// A Kinesis batch: each record's data is a gzip CloudWatch Logs document.
    Kinesis(Vec<KinesisItem>),
    /// S3 objects named by a notification, straight from S3 or through EventBridge.
    Objects(Vec<Result<ObjectRef, EventError>>),
    /// SQS messages, each holding an S3 notification.
    Queue(Vec<QueueItem>),
}

/// One Kinesis record: its sequence number (what a partial batch response names) and its
/// data, base64-decoded.
#[derive(Debug)]
pub struct KinesisItem {
    pub sequence_number: String,
    pub data: Vec<u8>,
}

/// One SQS message: its id (what a partial batch response names) and the objects its S3
/// notification names, or why it names none that can be read.
#[derive(Debug)]
pub struct QueueItem {
    pub message_id: String,
    pub objects: Result<Vec<ObjectRef>, EventError>,
}

/// An S3 object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The key as S3 stores it (notifications URL-encode it; this is decoded).
    pub key: String,
    /// What identifies this version of the object (its ETag, version or sequencer), so that a
    /// notification delivered twice is recognised.
    pub version: Option<String>,
}

/// Why an event, or a part of it, cannot be read. Each names the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("JSON that is neither a CloudWatch Logs subscription event (`awslogs`) or document (`messageType`, `logEvents`), nor a Kinesis, S3 or SQS event (`Records`), nor an EventBridge `Object Created` event from S3: {0}")]
    Unknown(String),
    #[error("{0}")]
    Record(String),
}

impl ObjectRef {
    /// `s3://bucket/key`, as the AWS CLI writes it.
    pub fn from_url(url: &str) -> Option<ObjectRef> {
        let (bucket, key) = url.strip_prefix("s3://")?.split_once('/')?;
        (!bucket.is_empty() && !key.is_empty()).then(|| ObjectRef {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version: None,
        })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Every shape's top-level keys; the one present says which shape this is.
#[derive(Deserialize)]
struct AnyEvent {
    #[serde(rename = "Records")]
    records: Option<Vec<AnyRecord>>,
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    source: Option<String>,
    detail: Option<ObjectCreatedDetail>,
    awslogs: Option<serde::de::IgnoredAny>,
    #[serde(rename = "messageType")]
    message_type: Option<serde::de::IgnoredAny>,
    #[serde(rename = "logEvents")]
    log_events: Option<serde::de::IgnoredAny>,
    /// S3 sends a test event when a notification is set up: `{"Event":"s3:TestEvent",...}`.
    #[serde(rename = "Event")]
    s3_event: Option<String>,
}

/// A record of a Kinesis, S3 or SQS event.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyRecord {
    event_source: Option<String>,
    kinesis: Option<KinesisRecord>,
    /// Read record by record: one that cannot be read fails alone.
    s3: Option<Box<RawValue>>,
    message_id: Option<String>,
    body: Option<String>,
}

/// The `detail` of EventBridge's `Object Created` event from S3.
#[derive(Deserialize)]
struct ObjectCreatedDetail {
    bucket: Option<Named>,
    object: Option<EventBridgeObject>,
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Deserialize)]
struct EventBridgeObject {
    key: Option<String>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// Recognises `payload`. A CloudWatch Logs event is only recognised here, not read.
pub fn recognise(payload: &[u8]) -> Result<Event, EventError> {
    let event: AnyEvent =
        serde_json::from_slice(payload).map_err(|e| EventError::Json(e.to_string()))?;
    if event.awslogs.is_some() || event.message_type.is_some() || event.log_events.is_some() {
        return Ok(Event::Logs);
    }
    if let Some(kind) = &event.detail_type {
        return eventbridge(kind, event.source.as_deref(), event.detail);
    }
    let Some(records) = event.records else {
        return Err(EventError::Unknown("none of their keys".into()));
    };
    let source = records
        .first()
        .and_then(|r| r.event_source.clone())
        .unwrap_or_default();
    match source.as_str() {
        "aws:kinesis" => records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let kinesis = r.kinesis.ok_or_else(|| {
                    EventError::Record(format!("record {i} of the Kinesis batch has no `kinesis`"))
                })?;
                Ok(KinesisItem {
                    sequence_number: kinesis.sequence_number,
                    data: kinesis.data.0,
                })
            })
            .collect::<Result<_, _>>()
            .map(Event::Kinesis),
        "aws:s3" => Ok(Event::Objects(
            records.into_iter().map(|r| notified_object(r.s3)).collect(),
        )),
        "aws:sqs" => records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let message_id = r.message_id.ok_or_else(|| {
                    EventError::Record(format!("message {i} of the SQS batch has no `messageId`"))
                })?;
                let objects = queued_objects(&message_id, r.body.as_deref());
                Ok(QueueItem {
                    message_id,
                    objects,
                })
            })
            .collect::<Result<_, _>>()
            .map(Event::Queue),
        "" if records.is_empty() => Err(EventError::Unknown("`Records` is empty".into())),
        other => Err(EventError::Unknown(format!(
            "records from {}; this function reads aws:kinesis, aws:s3 and aws:sqs records",
            if other.is_empty() {
                "an unnamed source (no `eventSource`)".into()
            } else {
                format!("`{other}`")
            }
        ))),
    }
}

fn eventbridge(
    kind: &str,
    source: Option<&str>,
    detail: Option<ObjectCreatedDetail>,
) -> Result<Event, EventError> {
    if source != Some("aws.s3") || kind != "Object Created" {
        return Err(EventError::Unknown(format!(
            "an EventBridge event `{kind}` from `{}`; this function reads `Object Created` \
             from aws.s3",
            source.unwrap_or("-")
        )));
    }
    let object = detail
        .and_then(|d| {
            let bucket = d.bucket?.name?;
            let object = d.object?;
            Some(ObjectRef {
                bucket,
                // EventBridge gives the key as stored, not URL-encoded.
                key: object.key?,
                version: object.version_id.or(object.etag).or(object.sequencer),
            })
        })
        .ok_or_else(|| {
            EventError::Record(
                "the EventBridge event has no `detail.bucket.name` or `detail.object.key`".into(),
            )
        });
    Ok(Event::Objects(vec![object]))
}

fn notified_object(entity: Option<Box<RawValue>>) -> Result<ObjectRef, EventError> {
    let missing = || EventError::Record("an S3 record without a bucket name or object key".into());
    let entity: S3Entity = serde_json::from_str(entity.ok_or_else(missing)?.get())
        .map_err(|e| EventError::Record(format!("an S3 record that cannot be read: {e}")))?;
    let bucket = entity.bucket.name.ok_or_else(missing)?;
    let key = entity.object.key.ok_or_else(missing)?;
    Ok(ObjectRef {
        bucket,
        key: url_decode(&key),
        version: entity
            .object
            .version_id
            .or(entity.object.e_tag)
            .or(entity.object.sequencer),
    })
}

/// The objects of the S3 notification in an SQS message body; none for S3's test event.
fn queued_objects(message_id: &str, body: Option<&str>) -> Result<Vec<ObjectRef>, EventError> {
    let unreadable = |why: &str| {
        EventError::Record(format!(
            "SQS message {message_id} does not hold an S3 notification: {why}"
        ))
    };
    let body = body.ok_or_else(|| unreadable("no body"))?;
    let inner: AnyEvent = serde_json::from_str(body).map_err(|e| unreadable(&e.to_string()))?;
    if inner.s3_event.as_deref() == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    if let Some(kind) = &inner.detail_type {
        // An EventBridge rule can target the queue too.
        let Event::Objects(objects) = eventbridge(kind, inner.source.as_deref(), inner.detail)?
        else {
            unreachable!("eventbridge() gives objects");
        };
        return objects.into_iter().collect();
    }
    let records = inner.records.ok_or_else(|| unreadable("no `Records`"))?;
    records.into_iter().map(|r| notified_object(r.s3)).collect()
}

/// S3 notifications URL-encode keys (a space as `+`).
fn url_decode(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Where a flow log object came from, read from the key S3 delivery writes:
/// `[prefix/]AWSLogs/[aws-account-id=]ACCOUNT/[aws-service=]vpcflowlogs/[aws-region=]REGION/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLogKey {
    pub account: String,
    pub region: String,
}

/// The account and region of a flow log object's key; `None` when the key is not in the
/// layout flow logs write (another service's logs, or any other object).
pub fn flow_log_key(key: &str) -> Option<FlowLogKey> {
    let parts: Vec<&str> = key.split('/').collect();
    let at = parts.iter().position(|p| *p == "AWSLogs")?;
    let value = |part: &str, name: &str| -> String {
        part.strip_prefix(name)
            .and_then(|p| p.strip_prefix('='))
            .unwrap_or(part)
            .to_owned()
    };
    let account = value(parts.get(at + 1)?, "aws-account-id");
    let service = value(parts.get(at + 2)?, "aws-service");
    let region = value(parts.get(at + 3)?, "aws-region");
    let valid_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    if service != "vpcflowlogs" || !valid_account || region.is_empty() {
        return None;
    }
    Some(FlowLogKey { account, region })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3_RECORD: &str = r#"{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
        "eventTime":"2026-11-27T10:00:00.000Z","eventName":"ObjectCreated:Put",
        "userIdentity":{"principalId":"AWS:X"},"requestParameters":{"sourceIPAddress":"10.0.0.1"},
        "responseElements":{},"s3":{"s3SchemaVersion":"1.0","configurationId":"c",
        "bucket":{"name":"logs","ownerIdentity":{"principalId":"X"},"arn":"arn:aws:s3:::logs"},
        "object":{"key":"AWSLogs/111122223333/vpcflowlogs/eu-west-1/2026/11/27/a+b%3D.log.gz",
        "size":10,"eTag":"e1","sequencer":"0A"}}}"#;

    #[test]
    fn an_s3_notification_names_its_objects_with_decoded_keys() {
        let event = format!(r#"{{"Records":[{S3_RECORD}]}}"#);
        let Event::Objects(objects) = recognise(event.as_bytes()).unwrap() else {
            panic!("not objects")
        };
        assert_eq!(
            objects,
            vec![Ok(ObjectRef {
                bucket: "logs".into(),
                key: "AWSLogs/111122223333/vpcflowlogs/eu-west-1/2026/11/27/a b=.log.gz".into(),
                version: Some("e1".into()),
            })]
        );
    }

    #[test]
    fn sqs_messages_hold_notifications_and_the_test_event_names_nothing() {
        let body = serde_json::to_string(&format!(r#"{{"Records":[{S3_RECORD}]}}"#)).unwrap();
        let test =
            serde_json::to_string(r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#).unwrap();
        let event = format!(
            r#"{{"Records":[{{"messageId":"m1","eventSource":"aws:sqs","body":{body}}},
                {{"messageId":"m2","eventSource":"aws:sqs","body":{test}}},
                {{"messageId":"m3","eventSource":"aws:sqs","body":"not json"}}]}}"#
        );
        let Event::Queue(items) = recognise(event.as_bytes()).unwrap() else {
            panic!("not a queue")
        };
        assert_eq!(items[0].message_id, "m1");
        assert_eq!(items[0].objects.as_ref().unwrap()[0].bucket, "logs");
        assert_eq!(items[1].objects, Ok(vec![]));
        let err = items[2].objects.as_ref().unwrap_err().to_string();
        assert!(
            err.contains("SQS message m3 does not hold an S3 notification"),
            "{err}"
        );
    }

    #[test]
    fn eventbridge_object_created_names_the_object_and_other_events_are_refused() {
        let event = br#"{"version":"0","id":"1","detail-type":"Object Created","source":"aws.s3",
            "account":"111122223333","time":"2026-11-27T10:00:00Z","region":"us-east-1",
            "resources":[],"detail":{"version":"0","bucket":{"name":"logs"},
            "object":{"key":"AWSLogs/1/x+y.log","size":5,"etag":"e"},"reason":"PutObject"}}"#;
        let Event::Objects(objects) = recognise(event).unwrap() else {
            panic!("not objects")
        };
        assert_eq!(objects[0].as_ref().unwrap().key, "AWSLogs/1/x+y.log");
        let other = br#"{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}"#;
        let err = recognise(other).unwrap_err().to_string();
        assert!(err.contains("`Object Created` from aws.s3"), "{err}");
    }

    #[test]
    fn kinesis_records_are_decoded_with_their_sequence_numbers() {
        let event = br#"{"Records":[{"eventSource":"aws:kinesis","eventID":"shardId-0:1",
            "kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"p","sequenceNumber":"4959",
            "data":"aGVsbG8=","approximateArrivalTimestamp":1764237600.5}}]}"#;
        let Event::Kinesis(items) = recognise(event).unwrap() else {
            panic!("not kinesis")
        };
        assert_eq!(items[0].sequence_number, "4959");
        assert_eq!(items[0].data, b"hello");
    }

    #[test]
    fn logs_events_and_unknown_shapes() {
        assert!(matches!(
            recognise(br#"{"awslogs":{"data":"x"}}"#),
            Ok(Event::Logs)
        ));
        let err = recognise(br#"{"Records":[{"EventSource":"aws:sns"}]}"#).unwrap_err();
        assert!(err.to_string().contains("no `eventSource`"), "{err}");
        let err = recognise(br#"{"hello":1}"#).unwrap_err().to_string();
        assert!(err.contains("neither a CloudWatch Logs"), "{err}");
        let err = recognise(br#"{"Records":[]}"#).unwrap_err().to_string();
        assert!(err.contains("`Records` is empty"), "{err}");
    }

    #[test]
    fn flow_log_keys_give_their_account_and_region() {
        let plain = "prefix/AWSLogs/111122223333/vpcflowlogs/eu-west-1/2026/11/27/111122223333_vpcflowlogs_eu-west-1_fl-1_20261127T1000Z_h.log.gz";
        let hive = "AWSLogs/aws-account-id=111122223333/aws-service=vpcflowlogs/aws-region=us-east-2/year=2026/x.log.gz";
        assert_eq!(
            flow_log_key(plain),
            Some(FlowLogKey {
                account: "111122223333".into(),
                region: "eu-west-1".into(),
            })
        );
        assert_eq!(flow_log_key(hive).unwrap().region, "us-east-2");
        assert_eq!(
            ObjectRef::from_url("s3://logs/AWSLogs/x.log.gz").map(|o| o.to_string()),
            Some("s3://logs/AWSLogs/x.log.gz".into())
        );
        assert_eq!(ObjectRef::from_url("s3://logs/"), None);
        assert_eq!(
            flow_log_key("AWSLogs/111122223333/CloudTrail/us-east-1/x.json.gz"),
            None
        );
        assert_eq!(flow_log_key("images/cat.png"), None);
    }
}
