//! Publishing to SNS without flooding and without losing an alert.
//!
//! Messages go out with `PublishBatch` (up to 10 entries and 256 KB a call). Every entry's
//! result is checked; only the entries that failed with a retryable error are sent again, with
//! backoff, for as long as the invocation's deadline allows. What still fails is reported, so
//! the invocation can fail and Lambda can retry the event.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use crate::present::message::OutgoingMessage;

/// SNS takes at most 10 entries in one `PublishBatch`.
pub const BATCH_ENTRIES: usize = 10;
/// ... and at most 256 KB in all.
pub const BATCH_BYTES: usize = 256 * 1024;

/// One entry of a batch that SNS did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// Position of the entry in the batch passed to [`AlertSink::publish_batch`].
    pub index: usize,
    pub reason: String,
    /// Throttling and server faults are worth another try; a sender fault is not.
    pub retryable: bool,
}

/// A whole call that failed (after the SDK's own retries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct CallFailure {
    pub reason: String,
    pub retryable: bool,
}

/// Where messages go: SNS in the function, a fake in tests.
pub trait AlertSink {
    /// Publishes up to [`BATCH_ENTRIES`] messages; returns the entries that failed.
    fn publish_batch(
        &self,
        batch: &[&OutgoingMessage],
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<EntryFailure>, CallFailure>> + Send;
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Rounds of publishing, the first included.
    pub attempts: u32,
    /// Backoff before the second round; doubles for each further round.
    pub initial_backoff: Duration,
    /// Time kept free before the deadline: no call starts later than this.
    pub deadline_margin: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_millis(200),
            deadline_margin: Duration::from_millis(500),
        }
    }
}

/// What happened to each message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Indexes of the messages SNS accepted.
    pub published: Vec<usize>,
    /// Indexes of the messages that could not be published, with the last reason.
    pub failed: Vec<(usize, String)>,
}

/// Publishes `messages`, retrying failed entries, and stops before `deadline`.
pub async fn publish_all<S: AlertSink>(
    sink: &S,
    messages: &[OutgoingMessage],
    deadline: Instant,
    policy: RetryPolicy,
) -> PublishOutcome {
    let mut outcome = PublishOutcome::default();
    let mut pending: Vec<usize> = (0..messages.len()).collect();
    let mut last_reason = vec![String::new(); messages.len()];
    for round in 0..policy.attempts.max(1) {
        if pending.is_empty() {
            break;
        }
        if round > 0 {
            let pause = backoff(policy.initial_backoff, round);
            if remaining(deadline, policy) <= pause {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        let mut retry = Vec::new();
        for batch in batches(&pending, messages) {
            let left = remaining(deadline, policy);
            if left.is_zero() {
                for &i in &batch {
                    last_reason[i] = "no time left before the invocation's deadline".into();
                }
                retry.extend(batch);
                continue;
            }
            let entries: Vec<&OutgoingMessage> = batch.iter().map(|&i| &messages[i]).collect();
            match sink.publish_batch(&entries, left).await {
                Ok(failures) => {
                    let mut failed = vec![false; batch.len()];
                    for f in failures.into_iter().filter(|f| f.index < batch.len()) {
                        failed[f.index] = true;
                        let i = batch[f.index];
                        last_reason[i] = f.reason;
                        if f.retryable {
                            retry.push(i);
                        } else {
                            outcome.failed.push((i, last_reason[i].clone()));
                        }
                    }
                    outcome.published.extend(
                        batch
                            .iter()
                            .zip(failed)
                            .filter(|(_, f)| !f)
                            .map(|(&i, _)| i),
                    );
                }
                Err(err) => {
                    for &i in &batch {
                        last_reason[i] = err.reason.clone();
                    }
                    if err.retryable {
                        retry.extend(batch);
                    } else {
                        outcome
                            .failed
                            .extend(batch.iter().map(|&i| (i, err.reason.clone())));
                    }
                }
            }
        }
        pending = retry;
    }
    outcome.failed.extend(
        pending
            .into_iter()
            .map(|i| (i, std::mem::take(&mut last_reason[i]))),
    );
    outcome.published.sort_unstable();
    outcome.failed.sort_unstable();
    outcome
}

fn remaining(deadline: Instant, policy: RetryPolicy) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(policy.deadline_margin)
}

/// Exponential backoff with up to 50% jitter, so that retries of concurrent functions spread.
fn backoff(initial: Duration, round: u32) -> Duration {
    let base = initial.saturating_mul(1 << (round - 1).min(10));
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

/// Groups message indexes into batches of at most 10 entries and 256 KB.
fn batches(pending: &[usize], messages: &[OutgoingMessage]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for &i in pending {
        let size = messages[i].size();
        match out.last_mut() {
            Some(batch) if batch.len() < BATCH_ENTRIES && bytes + size <= BATCH_BYTES => {
                batch.push(i);
                bytes += size;
            }
            _ => {
                out.push(vec![i]);
                bytes = size;
            }
        }
    }
    out
}

/// Publishes to one SNS topic.
#[derive(Debug, Clone)]
pub struct SnsSink {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsSink {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> SnsSink {
        SnsSink {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl AlertSink for SnsSink {
    async fn publish_batch(
        &self,
        batch: &[&OutgoingMessage],
        timeout: Duration,
    ) -> Result<Vec<EntryFailure>, CallFailure> {
        let mut request = self.client.publish_batch().topic_arn(&self.topic_arn);
        for (i, message) in batch.iter().enumerate() {
            request = request.publish_batch_request_entries(entry(i, message)?);
        }
        let timeouts = aws_sdk_sns::config::timeout::TimeoutConfig::builder()
            .operation_timeout(timeout)
            .build();
        let response = request
            .customize()
            .config_override(aws_sdk_sns::config::Builder::default().timeout_config(timeouts))
            .send()
            .await
            .map_err(call_failure)?;
        Ok(response
            .failed()
            .iter()
            .map(|f| EntryFailure {
                index: f
                    .id()
                    .strip_prefix('m')
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(usize::MAX),
                reason: format!("{}: {}", f.code(), f.message().unwrap_or("no message")),
                retryable: !f.sender_fault() || is_throttling(f.code()),
            })
            .collect())
    }
}

fn entry(i: usize, m: &OutgoingMessage) -> Result<PublishBatchRequestEntry, CallFailure> {
    let invalid = |e: aws_sdk_sns::error::BuildError| CallFailure {
        reason: format!("cannot build the request: {e}"),
        retryable: false,
    };
    let mut entry = PublishBatchRequestEntry::builder()
        .id(format!("m{i}"))
        .subject(&m.subject)
        .message(&m.body)
        .message_structure("json");
    for (name, value) in &m.attributes {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(invalid)?;
        entry = entry.message_attributes(*name, value);
    }
    entry.build().map_err(invalid)
}

fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "Throttled"
            | "KMSThrottling"
            | "TooManyRequestsException"
    )
}

fn call_failure<E, R>(err: SdkError<E, R>) -> CallFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let retryable = match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            is_throttling(code)
                || matches!(
                    code,
                    "InternalError" | "InternalFailure" | "ServiceUnavailable"
                )
        }
        // Timeouts, connection failures and unreadable responses: the next try may work.
        _ => true,
    };
    let reason = match &err {
        SdkError::ServiceError(service) => format!(
            "SNS refused the call: {}: {}",
            service.err().code().unwrap_or("unknown error"),
            service.err().message().unwrap_or("no message")
        ),
        SdkError::TimeoutError(_) => "SNS did not answer in time".to_string(),
        SdkError::DispatchFailure(_) => {
            format!("cannot reach SNS: {}", aws_smithy_error_chain(&err))
        }
        other => format!("SNS call failed: {}", aws_smithy_error_chain(other)),
    };
    CallFailure { reason, retryable }
}

/// The error and its causes on one line (the SDK's own `Display` says only "dispatch failure").
fn aws_smithy_error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A sink for tests: answers each call with the next scripted result (success once the script
/// is empty) and records the message keys of every call.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    pub(crate) struct ScriptedSink {
        pub(crate) script: Mutex<Vec<Result<Vec<EntryFailure>, CallFailure>>>,
        pub(crate) calls: Mutex<Vec<Vec<String>>>,
        /// The subjects of every message offered, in order.
        pub(crate) subjects: Mutex<Vec<String>>,
        /// The `default` (JSON) variant of every message offered, in order.
        pub(crate) bodies: Mutex<Vec<serde_json::Value>>,
    }

    impl AlertSink for ScriptedSink {
        async fn publish_batch(
            &self,
            batch: &[&OutgoingMessage],
            _timeout: Duration,
        ) -> Result<Vec<EntryFailure>, CallFailure> {
            self.calls
                .lock()
                .unwrap()
                .push(batch.iter().map(|m| m.key.clone()).collect());
            self.subjects
                .lock()
                .unwrap()
                .extend(batch.iter().map(|m| m.subject.clone()));
            // (Null for the bodies of this module's tests, which are not JSON.)
            self.bodies.lock().unwrap().extend(batch.iter().map(|m| {
                serde_json::from_str::<serde_json::Value>(&m.body)
                    .ok()
                    .and_then(|body| serde_json::from_str(body["default"].as_str()?).ok())
                    .unwrap_or_default()
            }));
            let mut script = self.script.lock().unwrap();
            if script.is_empty() {
                Ok(vec![])
            } else {
                script.remove(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::ScriptedSink;
    use super::*;

    fn message(n: usize, body_len: usize) -> OutgoingMessage {
        OutgoingMessage {
            key: format!("alert:{n}"),
            subject: format!("s{n}"),
            body: "x".repeat(body_len),
            attributes: vec![],
            covers: vec![],
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_millis(1),
            deadline_margin: Duration::from_millis(10),
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[tokio::test]
    async fn batches_hold_at_most_ten_entries_and_256_kb() {
        let sink = ScriptedSink::default();
        let mut messages: Vec<_> = (0..23).map(|n| message(n, 100)).collect();
        messages.push(message(23, 200 * 1024));
        messages.push(message(24, 100 * 1024));
        let outcome = publish_all(&sink, &messages, later(), fast()).await;
        assert_eq!(outcome.published.len(), 25);
        let sizes: Vec<usize> = sink.calls.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 4, 1]);
    }

    #[tokio::test]
    async fn only_the_failed_entry_is_sent_again() {
        let sink = ScriptedSink::default();
        sink.script.lock().unwrap().push(Ok(vec![EntryFailure {
            index: 1,
            reason: "InternalError: try again".into(),
            retryable: true,
        }]));
        let messages: Vec<_> = (0..3).map(|n| message(n, 10)).collect();
        let outcome = publish_all(&sink, &messages, later(), fast()).await;
        assert_eq!(outcome.published, [0, 1, 2]);
        let calls = sink.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            [vec!["alert:0", "alert:1", "alert:2"], vec!["alert:1"]]
        );
    }

    #[tokio::test]
    async fn throttled_calls_are_retried_until_they_succeed() {
        let sink = ScriptedSink::default();
        let throttled = CallFailure {
            reason: "Throttling: Rate exceeded".into(),
            retryable: true,
        };
        sink.script
            .lock()
            .unwrap()
            .extend([Err(throttled.clone()), Err(throttled)]);
        let outcome = publish_all(&sink, &[message(0, 10)], later(), fast()).await;
        assert_eq!(outcome.published, [0]);
        assert_eq!(sink.calls.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_persistent_failure_reports_every_message_as_failed() {
        let sink = ScriptedSink::default();
        let down = CallFailure {
            reason: "cannot reach SNS".into(),
            retryable: true,
        };
        sink.script
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(Err(down), 10));
        let outcome = publish_all(&sink, &[message(0, 10), message(1, 10)], later(), fast()).await;
        assert!(outcome.published.is_empty());
        assert_eq!(
            outcome.failed,
            [
                (0, "cannot reach SNS".to_string()),
                (1, "cannot reach SNS".to_string())
            ]
        );
        assert_eq!(sink.calls.lock().unwrap().len(), 4, "one call per round");
    }

    #[tokio::test]
    async fn sender_faults_are_not_retried() {
        let sink = ScriptedSink::default();
        sink.script.lock().unwrap().push(Err(CallFailure {
            reason: "NotFound: Topic does not exist".into(),
            retryable: false,
        }));
        let outcome = publish_all(&sink, &[message(0, 10)], later(), fast()).await;
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!(sink.calls.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn nothing_is_sent_when_the_deadline_is_too_close() {
        let sink = ScriptedSink::default();
        let deadline = Instant::now() + Duration::from_millis(5);
        let outcome = publish_all(&sink, &[message(0, 10)], deadline, fast()).await;
        assert!(outcome.published.is_empty());
        assert!(
            outcome.failed[0].1.contains("deadline"),
            "{:?}",
            outcome.failed
        );
        assert!(sink.calls.lock().unwrap().is_empty());
    }
}

/// `SnsSink` against canned HTTP answers from the SDK's own test client: what SNS says is
/// turned into the right retry decisions.
#[cfg(test)]
mod sns_tests {
    use super::*;
    use aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::test_util::infallible_client_fn;
    use std::sync::{Arc, Mutex};

    const PARTIAL: &str = r#"<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult><Successful><member><Id>m0</Id><MessageId>1</MessageId></member></Successful><Failed><member><Id>m1</Id><Code>InternalError</Code><Message>try again</Message><SenderFault>false</SenderFault></member></Failed></PublishBatchResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishBatchResponse>"#;
    const OK: &str = r#"<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult><Successful><member><Id>m0</Id><MessageId>1</MessageId></member></Successful><Failed/></PublishBatchResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishBatchResponse>"#;

    fn error(kind: &str, code: &str) -> String {
        format!(
            r#"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>injected</Message></Error><RequestId>r</RequestId></ErrorResponse>"#
        )
    }

    /// A sink whose HTTP answers are `answers`, in order; also returns the request count.
    fn sink(answers: Vec<(u16, String)>, sdk_attempts: u32) -> (SnsSink, Arc<Mutex<usize>>) {
        let answers = Mutex::new(answers);
        let requests = Arc::new(Mutex::new(0));
        let counter = requests.clone();
        let http = infallible_client_fn(move |_request| {
            *counter.lock().unwrap() += 1;
            let (status, body) = answers.lock().unwrap().remove(0);
            http::Response::builder().status(status).body(body).unwrap()
        });
        let config = aws_sdk_sns::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .retry_config(
                aws_sdk_sns::config::retry::RetryConfig::standard()
                    .with_max_attempts(sdk_attempts)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .http_client(http)
            .build();
        let client = aws_sdk_sns::Client::from_conf(config);
        (
            SnsSink::new(client, "arn:aws:sns:us-east-1:111122223333:alerts"),
            requests,
        )
    }

    fn messages() -> Vec<OutgoingMessage> {
        (0..2)
            .map(|n| OutgoingMessage {
                key: format!("alert:{n}"),
                subject: "s".into(),
                body: r#"{"default":"x"}"#.into(),
                attributes: vec![("severity", "high".into())],
                covers: vec![],
            })
            .collect()
    }

    async fn call(sink: &SnsSink) -> Result<Vec<EntryFailure>, CallFailure> {
        let messages = messages();
        let batch: Vec<&OutgoingMessage> = messages.iter().collect();
        sink.publish_batch(&batch, Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn a_failed_entry_is_reported_by_its_position_and_is_retryable() {
        let (sink, _) = sink(vec![(200, PARTIAL.into())], 1);
        let failures = call(&sink).await.unwrap();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].index, 1);
        assert!(failures[0].retryable);
        assert_eq!(failures[0].reason, "InternalError: try again");
    }

    #[tokio::test]
    async fn throttling_and_server_errors_are_retryable_and_missing_topics_are_not() {
        for (status, kind, code, retryable) in [
            (400, "Sender", "Throttling", true),
            (503, "Receiver", "ServiceUnavailable", true),
            (500, "Receiver", "InternalError", true),
            (404, "Sender", "NotFound", false),
            (403, "Sender", "AuthorizationError", false),
        ] {
            let (sink, _) = sink(vec![(status, error(kind, code))], 1);
            let failure = call(&sink).await.unwrap_err();
            assert_eq!(failure.retryable, retryable, "{code}");
            assert!(failure.reason.contains(code), "{}", failure.reason);
        }
    }

    #[tokio::test]
    async fn the_sdk_itself_retries_throttling_before_the_publisher_sees_it() {
        let (sink, requests) = sink(
            vec![(400, error("Sender", "Throttling")), (200, OK.into())],
            3,
        );
        assert!(call(&sink).await.unwrap().is_empty());
        assert_eq!(*requests.lock().unwrap(), 2);
    }
}
