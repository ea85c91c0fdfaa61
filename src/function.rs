//! The Lambda function: a thin shell over the pipeline that publishes alerts to SNS.
//!
//! Start-up ([`run`]) reads and validates the configuration, loads the AWS config and creates
//! the SNS client once; each invocation ([`Function::handle`]) decodes the event, finds and
//! groups the findings, publishes, and returns a [`Summary`]. An event that cannot be decoded,
//! or whose alerts cannot all be published, fails the invocation, so that Lambda retries it and
//! finally keeps it in the failure destination.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::value::RawValue;

use futures_util::stream::{self, StreamExt};

use crate::aws::ec2::SenderLookup;
use crate::aws::publish::{publish_all, AlertSink, RetryPolicy, SnsSink};
use crate::aws::s3::{s3_client, scan_objects, Wanted};
use crate::aws::state::{StateError, StateTable};
use crate::aws::{dynamodb_client, ec2_client, sdk_config};
use crate::config::{env_setting, parse_count, Config, ConfigError, RawConfig, RawSetting};
use crate::detect::activity::Activity;
use crate::detect::alert::for_each_claim;
use crate::detect::claims::{distinct, Brief, Claims, Gathered, Gathering};
use crate::detect::incident::{Claim, Incident, IncidentMemory, Tracked};
use crate::input::decode::{scan_compressed_document, scan_json, DecodeError};
use crate::input::events::{recognise, Event, EventError, ObjectRef};
use crate::input::scan::{combined_fingerprint, Counts, Report};
use crate::present::message::{messages_of, OutgoingMessage, DIGEST_LISTED};
use crate::recent::DeliveredMessages;
use aws_lambda_events::sqs::SqsBatchResponse;
use aws_lambda_events::streams::KinesisEventResponse;

pub const ENV_SNS_TOPIC_ARN: &str = "SNS_TOPIC_ARN";
pub const ENV_DRY_RUN: &str = "DRY_RUN";
pub const ENV_MAX_ALERTS: &str = "MAX_ALERTS_PER_INVOCATION";
pub const ENV_STATE_TABLE: &str = "STATE_TABLE";
pub const ENV_ENRICH: &str = "ENRICH";

/// Alert messages per invocation unless MAX_ALERTS_PER_INVOCATION says otherwise.
pub const DEFAULT_MAX_ALERTS: usize = 10;

/// Every environment variable the function reads, the engine's included (the deployment
/// template sets exactly these).
pub const ENVIRONMENT: &[&str] = &[
    crate::config::ENV_VPC_CIDRS,
    crate::config::ENV_FLOW_LOG_FORMAT,
    crate::config::ENV_IGNORE_SOURCE_CIDRS,
    crate::config::ENV_PORT_SCAN_THRESHOLD,
    crate::config::ENV_HOST_SWEEP_THRESHOLD,
    crate::config::ENV_MAX_DECODED_BYTES,
    crate::config::ENV_INCIDENT_WINDOW,
    crate::config::ENV_COOLDOWN,
    ENV_SNS_TOPIC_ARN,
    ENV_DRY_RUN,
    ENV_MAX_ALERTS,
    ENV_STATE_TABLE,
    ENV_ENRICH,
];

/// The CloudWatch metrics namespace of the Embedded Metric Format line.
pub const METRICS_NAMESPACE: &str = "VpcFlowAlert";

/// The function's configuration: the engine's, plus where and how to publish.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub engine: Config,
    /// `None` only with `DRY_RUN=true`.
    pub topic_arn: Option<String>,
    pub dry_run: bool,
    pub max_alerts: usize,
    /// The function's region (`AWS_REGION`, set by Lambda), named in the alerts.
    pub region: Option<String>,
    /// The DynamoDB table that incidents are shared through; `None`: each instance keeps its
    /// own, in memory.
    pub state_table: Option<String>,
    /// Look the senders up in EC2 (`ENRICH=true`).
    pub enrich: bool,
}

/// The memory at which Lambda gives a function the time of one whole vCPU.
const ONE_VCPU_MB: u64 = 1_769;

impl FunctionConfig {
    /// Reads and validates every variable; an error names the variable and the value.
    pub fn from_env(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<FunctionConfig, ConfigError> {
        let mut engine = RawConfig::from_env(&lookup).validate()?;
        // Lambda shows a function its vCPUs whatever its memory, but gives it the time of one
        // only at 1,769 MB: below that a second thread would only take turns with the first.
        let memory_mb =
            lookup("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|m| m.trim().parse::<u64>().ok());
        engine.inflate_apart &= memory_mb.is_none_or(|mb| mb > ONE_VCPU_MB);
        let dry_run = match env_setting(&lookup, ENV_DRY_RUN) {
            None => false,
            Some(s) => parse_bool(&s)?,
        };
        let enrich = match env_setting(&lookup, ENV_ENRICH) {
            None => false,
            Some(s) => parse_bool(&s)?,
        };
        let topic_arn = match env_setting(&lookup, ENV_SNS_TOPIC_ARN) {
            Some(s) => Some(parse_topic_arn(&s)?),
            None if dry_run => None,
            None => {
                return Err(ConfigError::Invalid {
                    origin: ENV_SNS_TOPIC_ARN.into(),
                    value: String::new(),
                    reason: "required: the ARN of the SNS topic to publish alerts to (or set DRY_RUN=true to only log them)".into(),
                })
            }
        };
        let max_alerts = parse_count(
            env_setting(&lookup, ENV_MAX_ALERTS).as_ref(),
            DEFAULT_MAX_ALERTS,
        )?;
        Ok(FunctionConfig {
            engine,
            topic_arn,
            dry_run,
            max_alerts,
            region: env_setting(&lookup, "AWS_REGION").map(|s| s.value),
            state_table: env_setting(&lookup, ENV_STATE_TABLE).map(|s| s.value.trim().to_string()),
            enrich,
        })
    }
}

fn parse_bool(s: &RawSetting) -> Result<bool, ConfigError> {
    match s.value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::Invalid {
            origin: s.origin.clone(),
            value: s.value.clone(),
            reason: "expected true or false".into(),
        }),
    }
}

pub(crate) fn parse_topic_arn(s: &RawSetting) -> Result<String, ConfigError> {
    let arn = s.value.trim();
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() == 6 && parts[0] == "arn" && parts[2] == "sns" && !parts[5].is_empty() {
        Ok(arn.to_string())
    } else {
        Err(ConfigError::Invalid {
            origin: s.origin.clone(),
            value: s.value.clone(),
            reason: "not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)".into(),
        })
    }
}

/// What one invocation did; the invocation's result.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub records: u64,
    pub malformed: u64,
    pub rejects: u64,
    pub findings: u64,
    /// SKIPDATA records: the flow log lost records in their interval.
    pub skipped_data: u64,
    /// Sources with findings in the batch.
    pub sources: u64,
    /// Alerts the incidents claimed (openings, escalations, reminders, and messages a retried
    /// batch sends again).
    pub alerts: u64,
    /// Messages SNS accepted (alert messages and the digest).
    pub published: u64,
    /// Sources with findings that needed no message: their incident was reported already.
    pub suppressed: u64,
    /// Alerts beyond MAX_ALERTS_PER_INVOCATION, listed in the digest.
    pub digested: u64,
    /// Calls to the state table that failed; the instance decided from its own memory.
    pub state_errors: u64,
    /// Calls made to the state table.
    pub state_calls: u64,
    /// Sender lookups in EC2 that failed or took too long; the alerts went out without them.
    pub enrich_errors: u64,
    /// Parts of the event that could not be read (Kinesis records, SQS messages, S3 objects);
    /// the others were handled.
    pub failed_items: u64,
}

/// What an invocation returns: for a Kinesis or SQS batch, the items to retry (Lambda's
/// partial batch response, `batchItemFailures`); for any other event, its summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub summary: Summary,
    /// `None` for events other than batches.
    pub batch: Option<BatchResponse>,
}

/// One part of an event read: the reports of what was read, and why it was not read whole.
type PartRead = (Vec<Report>, Option<String>);

/// The partial batch response of a Kinesis or an SQS batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BatchResponse {
    Kinesis(KinesisEventResponse),
    Sqs(SqsBatchResponse),
}

impl BatchResponse {
    /// The identifiers of the failed items: sequence numbers or message ids.
    pub fn failed(&self) -> Vec<&str> {
        match self {
            BatchResponse::Kinesis(r) => r
                .batch_item_failures
                .iter()
                .filter_map(|f| f.item_identifier.as_deref())
                .collect(),
            BatchResponse::Sqs(r) => r
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect(),
        }
    }
}

impl Outcome {
    fn whole(summary: Summary) -> Outcome {
        Outcome {
            summary,
            batch: None,
        }
    }

    /// The invocation's result: the partial batch response for a batch, else the summary.
    pub fn response(&self) -> serde_json::Value {
        match &self.batch {
            Some(batch) => serde_json::to_value(batch),
            None => serde_json::to_value(self.summary),
        }
        .unwrap_or_default()
    }
}

/// Why an invocation failed. Lambda retries it, then keeps the event in the failure destination.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("cannot decode the event: {0}")]
    Decode(#[from] DecodeError),
    #[error("cannot read the event: {0}")]
    Event(EventError),
    #[error("{failed} of the event's objects could not be read (the others' alerts went out); the first: {first}")]
    Objects {
        failed: usize,
        first: String,
        summary: Summary,
    },
    #[error("{failed} of {total} alert messages could not be published ({reason}); failing the invocation so that Lambda retries the event")]
    Publish {
        failed: usize,
        total: usize,
        reason: String,
        /// What the invocation did before it failed, for the metrics.
        summary: Summary,
    },
}

impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(err: InvocationError) -> Self {
        let error_type = match err {
            InvocationError::Decode(_) | InvocationError::Event(_) => "VpcFlowAlert.DecodeError",
            InvocationError::Objects { .. } => "VpcFlowAlert.ObjectError",
            InvocationError::Publish { .. } => "VpcFlowAlert.PublishError",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: err.to_string(),
        }
    }
}

/// The function with its dependencies, created once per instance.
pub struct Function<S> {
    config: FunctionConfig,
    /// `None` with `DRY_RUN=true`: messages are logged instead.
    sink: Option<S>,
    /// The shared incidents, when STATE_TABLE is set.
    table: Option<StateTable>,
    /// Who owns the senders' addresses, when ENRICH is on.
    lookup: Option<SenderLookup>,
    /// Reads the flow log objects S3 notifications name.
    s3: Option<aws_sdk_s3::Client>,
    /// This instance's incidents: the store itself without a table, else a mirror of what the
    /// table said, used when the table cannot be reached.
    incidents: Mutex<IncidentMemory>,
    /// Slices that did not reach the table, by source, to be added with the next delivery.
    unsynced: Mutex<HashMap<IpAddr, Activity>>,
    delivered: Mutex<DeliveredMessages>,
    /// The parts of batches (Kinesis records, S3 objects) this instance took through the
    /// incidents and published for, by fingerprint.
    read: Mutex<DeliveredMessages>,
    policy: RetryPolicy,
    clock: fn() -> u64,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The mark of a part of a batch that was read and published for.
const READ: &str = "read";

/// Calls to the state table in flight at once, at most.
const STATE_CONCURRENCY: usize = 32;
/// Sources whose findings did not reach the table, remembered to send with their next delivery.
const MAX_UNSYNCED: usize = 10_000;

/// The time the table may take for one phase (updates, then claims) of an invocation: a third
/// of what is left before the deadline, at most 10 s, so that publishing always has time.
fn state_budget(deadline: Instant) -> Duration {
    (deadline.saturating_duration_since(Instant::now()) / 3).min(Duration::from_secs(10))
}

/// The results of `calls`, or, past `budget`, an error for each of the `n` calls: the function
/// then decides from its own memory.
async fn within<T>(
    budget: Duration,
    table: &StateTable,
    calls: impl std::future::Future<Output = Vec<Result<T, StateError>>>,
    n: usize,
) -> Vec<Result<T, StateError>> {
    match tokio::time::timeout(budget, calls).await {
        Ok(results) => results,
        Err(_) => (0..n).map(|_| Err(table.timed_out(budget))).collect(),
    }
}

/// Where a source's incident view came from.
enum View {
    Shared(Tracked),
    Local(Tracked),
}

impl<S: AlertSink> Function<S> {
    pub fn new(config: FunctionConfig, sink: Option<S>, policy: RetryPolicy) -> Function<S> {
        Function {
            incidents: Mutex::new(IncidentMemory::new(config.engine.incidents)),
            unsynced: Mutex::new(HashMap::new()),
            delivered: Mutex::new(DeliveredMessages::default()),
            read: Mutex::new(DeliveredMessages::default()),
            config,
            sink,
            table: None,
            lookup: None,
            s3: None,
            policy,
            clock: unix_now,
        }
    }

    /// Shares incidents through `table`.
    pub fn with_table(mut self, table: StateTable) -> Function<S> {
        self.table = Some(table);
        self
    }

    /// Names the senders' owners through `lookup`.
    pub fn with_lookup(mut self, lookup: SenderLookup) -> Function<S> {
        self.lookup = Some(lookup);
        self
    }

    /// Reads the S3 objects that notifications name through `client`.
    pub fn with_s3(mut self, client: aws_sdk_s3::Client) -> Function<S> {
        self.s3 = Some(client);
        self
    }

    /// Reads the time from `clock` instead of the system's (tests).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Function<S> {
        self.clock = clock;
        self
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, IncidentMemory> {
        self.incidents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims in this instance's memory; the incident after the claim when it was won.
    fn claim_locally(&self, i: &Incident, claim: Claim, owner: u64, now: u64) -> Option<Incident> {
        let mut memory = self.memory();
        if memory.claim(i.source(), i.opened_at, claim, owner, now) {
            memory.get(&i.source()).cloned()
        } else {
            None
        }
    }

    /// Whether the message `key` already went out for the part `part` (a retry on this
    /// instance).
    fn already_sent(&self, part: Option<u64>, key: &str) -> bool {
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .already_sent(part, key)
    }

    /// Adds the batch to its sources' incidents, and what they claim to `claims`; how many
    /// calls to the state table failed. Without a state table, the report's slices are handed to
    /// their incidents: the report is left without them.
    async fn decide(
        &self,
        report: &mut Report,
        now: u64,
        deadline: Instant,
        claims: &mut Claims,
    ) -> u64 {
        // A claim that already went out for this part (a retry on this instance) stays out; on
        // a first try no claim's id need be made to ask.
        let retry = self
            .delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .knows(report.fingerprint);
        let mut gathering = Gathering {
            claims,
            part: report.fingerprint,
            thresholds: self.config.engine.incidents.thresholds,
            origin: &report.origin,
            region: report.region.as_deref().or(self.config.region.as_deref()),
            goes_out: |claim: &Brief| !retry || !self.already_sent(report.fingerprint, &claim.id()),
        };
        let Some(table) = &self.table else {
            // Handed over: each new incident keeps its slice instead of a copy.
            for_each_claim(
                &mut self.memory(),
                std::mem::take(&mut report.activities),
                (report.fingerprint, now),
                &mut gathering,
            );
            return 0;
        };
        let batch = report.fingerprint;
        let owner = batch.unwrap_or(0);
        let policy = self.config.engine.incidents;
        let mut state_errors = 0;
        // What did not reach the table in earlier invocations goes with this one; the sets this
        // instance knows to be full are left out.
        let (slices, full): (Vec<Cow<'_, Activity>>, Vec<Vec<&'static str>>) = {
            let memory = self.memory();
            let unsynced = self.unsynced.lock().unwrap_or_else(|e| e.into_inner());
            report
                .activities
                .iter()
                .map(|a| {
                    let slice = match unsynced.get(&a.source) {
                        Some(pending) => {
                            let mut merged = a.clone();
                            merged.merge(pending);
                            Cow::Owned(merged)
                        }
                        None => Cow::Borrowed(a),
                    };
                    (slice, table.full_sets(memory.get(&a.source), now))
                })
                .unzip()
        };
        // One update per source, concurrently, within a budget: state never costs an alert.
        let budget = state_budget(deadline);
        let shared: Vec<Result<Tracked, StateError>> = within(
            budget,
            table,
            stream::iter(slices.iter().zip(full))
                .map(|(a, full)| table.track(a, batch, now, full))
                .buffered(STATE_CONCURRENCY)
                .collect(),
            slices.len(),
        )
        .await;
        let views: Vec<View> = {
            let mut memory = self.memory();
            let mut unsynced = self.unsynced.lock().unwrap_or_else(|e| e.into_inner());
            report
                .activities
                .iter()
                .zip(shared)
                .map(|(activity, shared)| {
                    let local = memory.track(activity, batch, now);
                    match shared {
                        Ok(tracked) => {
                            if !tracked.replay {
                                unsynced.remove(&activity.source);
                            }
                            memory.replace(tracked.incident.clone(), now);
                            View::Shared(tracked)
                        }
                        Err(err) => {
                            tracing::warn!(source = %activity.source, error = %err, "state table unavailable: deciding from this instance's memory");
                            state_errors += 1;
                            if let Some(pending) = unsynced.get_mut(&activity.source) {
                                pending.merge(activity);
                            } else if unsynced.len() < MAX_UNSYNCED {
                                unsynced.insert(activity.source, activity.clone());
                            }
                            View::Local(local)
                        }
                    }
                })
                .collect()
        };
        let mut to_claim: Vec<(&Incident, Claim)> = Vec::new();
        for view in &views {
            let (View::Shared(tracked) | View::Local(tracked)) = view;
            let wanted = tracked.wanted(batch, &policy, now);
            for claim in wanted.resend {
                gathering.gather(&tracked.incident, claim);
            }
            match (view, wanted.due) {
                (View::Shared(_), Some(claim)) => to_claim.push((&tracked.incident, claim)),
                (View::Local(_), Some(claim)) => {
                    let i = &tracked.incident;
                    if let Some(claimed) = self.claim_locally(i, claim, owner, now) {
                        gathering.gather(&claimed, claim);
                    }
                }
                (_, None) => {}
            }
        }
        let won: Vec<Result<Option<Incident>, StateError>> = within(
            state_budget(deadline),
            table,
            stream::iter(&to_claim)
                .map(|(incident, claim)| table.claim(incident, *claim, owner, now))
                .buffered(STATE_CONCURRENCY)
                .collect(),
            to_claim.len(),
        )
        .await;
        for ((incident, claim), result) in to_claim.iter().zip(won) {
            match result {
                Ok(Some(claimed)) => {
                    self.memory().replace(claimed.clone(), now);
                    gathering.gather(&claimed, *claim);
                }
                Ok(None) => {}
                Err(err) => {
                    // A duplicate beats a miss: decide from this instance's memory.
                    tracing::warn!(source = %incident.source(), error = %err, "cannot claim the message in the state table: sending it on this instance's word");
                    state_errors += 1;
                    if let Some(claimed) = self.claim_locally(incident, *claim, owner, now) {
                        gathering.gather(&claimed, *claim);
                    }
                }
            }
        }
        state_errors
    }

    /// Handles one event of any shape the function reads (see [`crate::input::events`]);
    /// `deadline` is the invocation's. The parts of one event (the records of a Kinesis batch,
    /// the objects of a notification) go through the incidents each as a delivery of its own,
    /// then publish once (see [`Function::deliver`]). A Kinesis or SQS item that cannot be read is named in
    /// the outcome's batch item failures while the others' alerts go out; an S3 object that
    /// cannot be read whole fails a direct or EventBridge invocation, after the others' alerts.
    pub async fn invoke(
        &self,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<Outcome, InvocationError> {
        // The common case, a CloudWatch Logs event, without a second parse.
        if payload.trim_ascii_start().starts_with(b"{\"awslogs\"") {
            return self.handle(payload, deadline).await.map(Outcome::whole);
        }
        // Each part of the event: its item id in a batch, and its reports or why it failed.
        let mut parts: Vec<(Option<String>, PartRead)> = Vec::new();
        let mut batch = None;
        match recognise(payload).map_err(InvocationError::Event)? {
            Event::Logs => return self.handle(payload, deadline).await.map(Outcome::whole),
            Event::Kinesis(items) => {
                batch = Some(BatchResponse::Kinesis(KinesisEventResponse::default()));
                for item in items {
                    let read = match scan_compressed_document(&item.data, &self.config.engine) {
                        Ok(report) => (vec![report], None),
                        Err(e) => (
                            vec![],
                            Some(format!("Kinesis record {}: {e}", item.sequence_number)),
                        ),
                    };
                    parts.push((Some(item.sequence_number), read));
                }
            }
            Event::Objects(objects) => {
                for object in objects {
                    let read = match object {
                        Ok(object) => self.read_objects(&[object]).await,
                        Err(e) => (vec![], Some(e.to_string())),
                    };
                    parts.push((None, read));
                }
            }
            Event::Queue(items) => {
                batch = Some(BatchResponse::Sqs(SqsBatchResponse::default()));
                for item in items {
                    let read = match item.objects {
                        Ok(objects) => self.read_objects(&objects).await,
                        Err(e) => (
                            vec![],
                            Some(format!("SQS message {}: {e}", item.message_id)),
                        ),
                    };
                    parts.push((Some(item.message_id), read));
                }
            }
        }
        let mut reports = Vec::new();
        let mut errors = Vec::new();
        for (item, (read, failed)) in parts {
            // The objects of a notification read before one that failed still go through.
            reports.extend(read);
            if let Some(err) = failed {
                tracing::error!(error = %err, "cannot read this part of the event");
                errors.push(err);
                match (&mut batch, item) {
                    (Some(BatchResponse::Kinesis(r)), Some(id)) => r.add_failure(id),
                    (Some(BatchResponse::Sqs(r)), Some(id)) => r.add_failure(id),
                    _ => {}
                }
            }
        }
        // Lambda retries a Kinesis batch from its first failed record on: the parts after it
        // that this instance already took through the incidents and published for are left
        // out (the incidents' own replay memory holds fewer parts than a batch).
        let several = reports.len() > 1;
        if several {
            let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
            reports.retain(|r| r.fingerprint.is_none() || !read.already_sent(r.fingerprint, READ));
        }
        let read: Vec<Option<u64>> = reports.iter().map(|r| r.fingerprint).collect();
        let mut summary = self.deliver(reports, deadline).await?;
        if several {
            let now = Instant::now();
            let mut memory = self.read.lock().unwrap_or_else(|e| e.into_inner());
            for fingerprint in read {
                memory.sent(fingerprint, READ, now);
            }
        }
        summary.failed_items = errors.len() as u64;
        if batch.is_some() {
            return Ok(Outcome { summary, batch });
        }
        match errors.first() {
            None => Ok(Outcome::whole(summary)),
            Some(first) => Err(InvocationError::Objects {
                failed: errors.len(),
                first: first.clone(),
                summary,
            }),
        }
    }

    /// Reads S3 objects; the objects that cannot be read whole are the error (the first named,
    /// the others counted), after the reports of the others.
    async fn read_objects(&self, objects: &[ObjectRef]) -> PartRead {
        let Some(client) = &self.s3 else {
            let why = "an S3 notification, but the function has no S3 client";
            return (vec![], Some(why.into()));
        };
        let skipped = |why: &str| tracing::info!("skipped: {why}");
        let read = scan_objects(
            client,
            objects,
            &self.config.engine,
            Wanted::FlowLogKeys,
            skipped,
        )
        .await;
        for report in &read.reports {
            tracing::info!(region = ?report.region, "object read: {report}");
        }
        // What was read of an object that failed midway is not sent: the retry reads it again
        // (whole, when a download broke off), and its alerts then go out once.
        let failure = read.failure();
        (read.reports, failure)
    }

    /// Handles a CloudWatch Logs subscription event; `deadline` is the invocation's.
    pub async fn handle(
        &self,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<Summary, InvocationError> {
        let report = scan_json(payload, &self.config.engine)?;
        self.deliver(vec![report], deadline).await
    }

    /// Takes deliveries through the incidents, in order, and publishes what they claim, as one
    /// invocation: one page, one digest. Each part (a CloudWatch Logs batch, a Kinesis record's
    /// document, an S3 object) is a delivery of its own, as a subscription would have delivered
    /// it: its claims are owned by its fingerprint, so a retry that brings it again, in a batch
    /// made up differently, sends again what it claimed and adds nothing twice.
    async fn deliver(
        &self,
        mut parts: Vec<Report>,
        deadline: Instant,
    ) -> Result<Summary, InvocationError> {
        let now = (self.clock)();
        // Several parts share one budget for the table: publishing keeps half the time left.
        let state_deadline = match parts.len() {
            0 | 1 => deadline,
            _ => Instant::now() + deadline.saturating_duration_since(Instant::now()) / 2,
        };
        // The first alerts are held whole: those sent alone and those the digest names.
        let whole = self.config.max_alerts.saturating_add(DIGEST_LISTED);
        // One message per source across parts: when several parts moved one incident (opened,
        // then escalated), the most severe claim speaks for them; the others stay claimed.
        let mut claims = Claims::new(whole, parts.len() > 1);
        let mut summary = Summary::default();
        let mut counts = Counts::default();
        let mut sources = Vec::new();
        let mut one_part_sources = 0;
        let mut fingerprints = Vec::with_capacity(parts.len());
        let n = parts.len();
        for (i, report) in parts.iter_mut().enumerate() {
            // Each part a fair share of what is left of the budget (all of it for one part).
            let left = (n - i) as u32;
            let part_deadline = Instant::now()
                + state_deadline.saturating_duration_since(Instant::now()) / left.max(1);
            claims.reserve(report.activities.len());
            // A part's activities are one per source: only several parts need the list.
            match n {
                1 => one_part_sources = report.activities.len(),
                _ => sources.extend(report.activities.iter().map(|a| a.source)),
            }
            summary.state_errors += self.decide(report, now, part_deadline, &mut claims).await;
            counts.add(&report.counts);
            fingerprints.push(report.fingerprint);
            // The part's sources are in their incidents and its claims gathered: an S3 object's
            // tens of thousands of them need not wait for the messages.
            report.activities = Vec::new();
        }
        // The invocation as a whole, for its page.
        let fingerprint = combined_fingerprint(&fingerprints);
        summary.records = counts.records;
        summary.malformed = counts.malformed;
        summary.rejects = counts.rejects;
        summary.findings = counts.findings;
        summary.skipped_data = counts.skipped_data;
        // A retry of a part on this instance left out what already went out for it, alone or
        // in a digest (see `take`); the rest is split into messages and a digest again.
        let Gathered {
            mut alerts,
            briefs,
            parts: owners,
            superseded,
            claimed,
            sources: sources_alerted,
        } = claims.finish();
        let sources = match n {
            1 => one_part_sources,
            _ => distinct(sources),
        };
        summary.sources = sources as u64;
        summary.alerts = claimed;
        summary.suppressed = sources.saturating_sub(sources_alerted) as u64;
        summary.digested = briefs.len().saturating_sub(self.config.max_alerts) as u64;
        summary.state_calls = self.table.as_ref().map_or(0, StateTable::take_calls);
        if let Some(lookup) = &self.lookup {
            if let Err(err) = lookup.enrich(&mut alerts).await {
                tracing::warn!(error = %err, "alerts go out without the senders' owners");
                summary.enrich_errors += 1;
            }
        }
        // One text per invocation: a retry does not page again once the page went out.
        let page = !self.already_sent(fingerprint, "page");
        let messages = messages_of(&alerts, &briefs, self.config.max_alerts, page);
        // Which part claimed each message, for a retry of that part: with one part, the
        // invocation's own fingerprint is that part's, and the map is not needed.
        let owners: Option<HashMap<String, Option<u64>>> =
            (n > 1).then(|| briefs.iter().map(Brief::id).zip(owners).collect());
        let Some(sink) = &self.sink else {
            for m in &messages {
                tracing::info!(subject = %m.subject, "dry run: not publishing");
                tracing::debug!(message = %m.body, "dry run: message body");
            }
            return Ok(summary);
        };
        let outcome = publish_all(sink, &messages, deadline, self.policy).await;
        let mut published = std::collections::HashSet::new();
        {
            let now = Instant::now();
            let mut delivered = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
            let owner = |key: &str| {
                owners
                    .as_ref()
                    .and_then(|owners| owners.get(key).copied())
                    .unwrap_or(fingerprint)
            };
            for &i in &outcome.published {
                let m: &OutgoingMessage = &messages[i];
                delivered.sent(owner(&m.key), &m.key, now);
                published.insert(m.key.clone());
                for id in &m.covers {
                    delivered.sent(owner(id), id, now);
                    published.insert(id.clone());
                }
                tracing::debug!(subject = %m.subject, "published");
            }
        }
        // A claim another one spoke for went out with it.
        {
            let now = Instant::now();
            let mut delivered = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
            for (part, id, by) in &superseded {
                if published.contains(by) {
                    delivered.sent(*part, id, now);
                }
            }
        }
        summary.published = outcome.published.len() as u64;
        if let Some((_, reason)) = outcome.failed.first() {
            return Err(InvocationError::Publish {
                failed: outcome.failed.len(),
                total: messages.len(),
                reason: reason.clone(),
                summary,
            });
        }
        Ok(summary)
    }
}

/// One CloudWatch Embedded Metric Format line: CloudWatch turns it into metrics, no API call.
pub fn metrics_line(
    function_name: &str,
    summary: &Summary,
    failed: bool,
    duration: Duration,
) -> String {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let metric = |name: &str, unit: &str| serde_json::json!({"Name": name, "Unit": unit});
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    metric("Records", "Count"),
                    metric("Malformed", "Count"),
                    metric("Findings", "Count"),
                    metric("SkippedData", "Count"),
                    metric("AlertsPublished", "Count"),
                    metric("Suppressed", "Count"),
                    metric("StateErrors", "Count"),
                    metric("StateCalls", "Count"),
                    metric("EnrichErrors", "Count"),
                    metric("FailedItems", "Count"),
                    metric("Failed", "Count"),
                    metric("Duration", "Milliseconds"),
                ],
            }],
        },
        "FunctionName": function_name,
        "Records": summary.records,
        "Malformed": summary.malformed,
        "Findings": summary.findings,
        "SkippedData": summary.skipped_data,
        "AlertsPublished": summary.published,
        "Suppressed": summary.suppressed,
        "StateErrors": summary.state_errors,
        "StateCalls": summary.state_calls,
        "EnrichErrors": summary.enrich_errors,
        "FailedItems": summary.failed_items,
        "Failed": u64::from(failed),
        "Duration": duration.as_secs_f64() * 1000.0,
    })
    .to_string()
}

/// The Lambda entry point: start-up once, then the runtime loop.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = match FunctionConfig::from_env(|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("configuration error: {err}");
            return Err(format!("configuration error: {err}").into());
        }
    };
    let aws = sdk_config().await;
    let sink = match (&config.topic_arn, config.dry_run) {
        (Some(arn), false) => Some(SnsSink::new(aws_sdk_sns::Client::new(&aws), arn.clone())),
        _ => None,
    };
    let table = config
        .state_table
        .as_ref()
        .map(|name| StateTable::new(dynamodb_client(&aws), name, config.engine.incidents));
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    let lookup = config.enrich.then(|| SenderLookup::new(ec2_client(&aws)));
    let mut function = Function::new(config, sink, RetryPolicy::default()).with_s3(s3_client(&aws));
    if let Some(table) = table {
        function = function.with_table(table);
    }
    if let Some(lookup) = lookup {
        function = function.with_lookup(lookup);
    }
    let function = &function;
    let function_name = function_name.as_str();
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Box<RawValue>>| async move {
            let started = Instant::now();
            let deadline = deadline_instant(event.context.deadline);
            let result = function
                .invoke(event.payload.get().as_bytes(), deadline)
                .await;
            let (summary, failed) = match &result {
                Ok(o) => (o.summary, o.summary.failed_items > 0),
                Err(
                    InvocationError::Publish { summary, .. }
                    | InvocationError::Objects { summary, .. },
                ) => (*summary, true),
                Err(InvocationError::Decode(_) | InvocationError::Event(_)) => {
                    (Summary::default(), true)
                }
            };
            println!(
                "{}",
                metrics_line(function_name, &summary, failed, started.elapsed())
            );
            match &result {
                Ok(Outcome { summary: s, .. }) => tracing::info!(
                    records = s.records,
                    malformed = s.malformed,
                    rejects = s.rejects,
                    findings = s.findings,
                    skipped_data = s.skipped_data,
                    sources = s.sources,
                    alerts = s.alerts,
                    published = s.published,
                    suppressed = s.suppressed,
                    digested = s.digested,
                    state_errors = s.state_errors,
                    state_calls = s.state_calls,
                    enrich_errors = s.enrich_errors,
                    failed_items = s.failed_items,
                    "invocation done"
                ),
                Err(err) => tracing::error!(error = %err, "invocation failed"),
            }
            result.map(|o| o.response())
        },
    ))
    .await
}

/// The Runtime API gives the deadline in milliseconds since the epoch.
fn deadline_instant(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::publish::testing::ScriptedSink;
    use crate::aws::publish::{CallFailure, EntryFailure};
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const ARN: &str = "arn:aws:sns:us-east-1:111122223333:alerts";

    #[test]
    fn the_topic_is_required_unless_dry_run() {
        let err = FunctionConfig::from_env(env(&[("VPC_CIDRS", "10.0.0.0/16")])).unwrap_err();
        assert!(err.to_string().starts_with("SNS_TOPIC_ARN="), "{err}");
        let c = FunctionConfig::from_env(env(&[("VPC_CIDRS", "10.0.0.0/16"), ("DRY_RUN", "true")]))
            .unwrap();
        assert!(c.dry_run && c.topic_arn.is_none());
        let err = FunctionConfig::from_env(env(&[
            ("VPC_CIDRS", "10.0.0.0/16"),
            ("SNS_TOPIC_ARN", "alerts"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("not an SNS topic ARN"), "{err}");
    }

    #[test]
    fn defaults_are_ten_alerts_an_hour_window_and_an_hour_between_reminders() {
        let c =
            FunctionConfig::from_env(env(&[("VPC_CIDRS", "10.0.0.0/16"), ("SNS_TOPIC_ARN", ARN)]))
                .unwrap();
        assert_eq!(c.max_alerts, 10);
        assert_eq!(c.engine.incidents.cooldown, 3600);
        assert_eq!(c.engine.incidents.window, 3600);
    }

    #[test]
    fn gzip_is_inflated_on_a_second_thread_only_with_more_than_one_vcpu_of_time() {
        let cores = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        for (memory, apart) in [
            (None, cores),
            (Some("1024"), false),
            (Some("1769"), false),
            (Some("3008"), cores),
        ] {
            let mut vars = vec![("VPC_CIDRS", "10.0.0.0/16"), ("SNS_TOPIC_ARN", ARN)];
            vars.extend(memory.map(|m| ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", m)));
            let c = FunctionConfig::from_env(env(&vars)).unwrap();
            assert_eq!(c.engine.inflate_apart, apart, "{memory:?}");
        }
    }

    fn function(cooldown: &str) -> Function<ScriptedSink> {
        let config = FunctionConfig::from_env(env(&[
            ("VPC_CIDRS", "10.0.0.0/16"),
            ("SNS_TOPIC_ARN", ARN),
            ("ALERT_COOLDOWN_SECONDS", cooldown),
            ("MAX_ALERTS_PER_INVOCATION", "2"),
        ]))
        .unwrap();
        let policy = RetryPolicy {
            attempts: 2,
            initial_backoff: Duration::from_millis(1),
            deadline_margin: Duration::from_millis(1),
        };
        Function::new(config, Some(ScriptedSink::default()), policy)
    }

    /// A delivery of one log stream: one REJECT per (source, destination) pair.
    fn document(flows: &[(&str, &str)], first_id: usize) -> Vec<u8> {
        let events: Vec<_> = flows
            .iter()
            .enumerate()
            .map(|(i, (s, d))| {
                serde_json::json!({"id": (first_id + i).to_string(), "timestamp": 0,
                "message": format!("2 111122223333 eni-1 {s} {d} 40000 22 6 1 40 1 2 REJECT OK")})
            })
            .collect();
        serde_json::json!({"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "g",
            "logStream": "s", "subscriptionFilters": [], "logEvents": events})
        .to_string()
        .into_bytes()
    }

    fn sources(sources: &[&str], first_id: usize) -> Vec<u8> {
        let flows: Vec<(&str, &str)> = sources.iter().map(|s| (*s, "10.0.9.9")).collect();
        document(&flows, first_id)
    }

    /// SNS answers the next calls with `answers`.
    fn script(
        f: &Function<ScriptedSink>,
        answers: impl IntoIterator<Item = Result<Vec<EntryFailure>, CallFailure>>,
    ) {
        f.sink
            .as_ref()
            .unwrap()
            .script
            .lock()
            .unwrap()
            .extend(answers);
    }

    /// SNS refuses both attempts of the next publish.
    fn sns_down_for_one_publish(f: &Function<ScriptedSink>) {
        let down = CallFailure {
            reason: "cannot reach SNS".into(),
            retryable: true,
        };
        script(f, [Err(down.clone()), Err(down)]);
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// The subjects of the alert messages offered (pages left out).
    fn subjects(f: &Function<ScriptedSink>) -> Vec<String> {
        let sink = f.sink.as_ref().unwrap();
        let keys: Vec<String> = sink.calls.lock().unwrap().concat();
        let subjects = sink.subjects.lock().unwrap().clone();
        keys.iter()
            .zip(subjects)
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(_, s)| s)
            .collect()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// A Kinesis batch as Lambda delivers it: each record's data a gzip document.
    fn kinesis(records: &[(&str, Vec<u8>)]) -> Vec<u8> {
        use base64::Engine as _;
        let records: Vec<_> = records
            .iter()
            .map(|(seq, data)| {
                serde_json::json!({"eventSource": "aws:kinesis", "eventID": format!("shardId-000:{seq}"),
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "p", "sequenceNumber": seq,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "approximateArrivalTimestamp": 1764237600.5}})
            })
            .collect();
        serde_json::json!({"Records": records})
            .to_string()
            .into_bytes()
    }

    #[tokio::test]
    async fn a_kinesis_batch_names_its_unreadable_record_and_alerts_for_the_others() {
        // A reminder with every delivery that brings findings: a replayed record brings none.
        let f = function("0");
        let batch = kinesis(&[
            ("101", gzip(&sources(&["10.0.0.1"], 0))),
            ("102", b"not gzip".to_vec()),
            ("103", gzip(&sources(&["10.0.0.2", "10.0.0.1"], 10))),
        ]);
        let outcome = f.invoke(&batch, later()).await.unwrap();
        let batch_response = outcome.batch.as_ref().unwrap();
        assert_eq!(batch_response.failed(), vec!["102"]);
        assert_eq!(
            outcome.response(),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "102"}]})
        );
        assert_eq!(outcome.summary.failed_items, 1);
        assert_eq!(outcome.summary.findings, 3);
        // 10.0.0.1 is in both parts: two sources, both alerting.
        assert_eq!(
            (outcome.summary.sources, outcome.summary.suppressed),
            (2, 0)
        );
        // Both sources alert once, from one delivery: one page for the batch.
        assert_eq!(subjects(&f).len(), 2, "{:?}", subjects(&f));
        let pages = f.sink.as_ref().unwrap().calls.lock().unwrap().concat();
        assert_eq!(pages.iter().filter(|k| k.as_str() == "page").count(), 1);
        // Lambda retries from the failed record on: what was reported stays quiet.
        let retry = kinesis(&[
            ("102", b"not gzip".to_vec()),
            ("103", gzip(&sources(&["10.0.0.2", "10.0.0.1"], 10))),
        ]);
        let outcome = f.invoke(&retry, later()).await.unwrap();
        assert_eq!(outcome.batch.unwrap().failed(), vec!["102"]);
        assert_eq!(subjects(&f).len(), 2, "nothing sent again");
    }

    #[tokio::test]
    async fn a_batch_that_opens_and_escalates_an_incident_sends_one_message_for_it() {
        let f = function("0");
        let sweep: Vec<String> = (1..=12).map(|h| format!("10.0.9.{h}")).collect();
        let flows: Vec<(&str, &str)> = sweep.iter().map(|d| ("10.0.0.7", d.as_str())).collect();
        let batch = kinesis(&[
            ("1", gzip(&document(&[("10.0.0.7", "10.0.9.1")], 0))),
            ("2", gzip(&document(&flows, 10))),
        ]);
        let outcome = f.invoke(&batch, later()).await.unwrap();
        assert_eq!(outcome.summary.alerts, 2, "opened, then escalated");
        let subjects = subjects(&f);
        assert_eq!(subjects.len(), 1, "{subjects:?}");
        assert!(subjects[0].starts_with("[HIGH"), "{subjects:?}");
        // The batch again (a publish that failed elsewhere, say): nothing more goes out.
        f.invoke(&batch, later()).await.unwrap();
        assert_eq!(super::tests::subjects(&f).len(), 1);
    }

    #[tokio::test]
    async fn a_kinesis_batch_whose_publishing_failed_is_sent_by_a_retry_made_up_differently() {
        let f = function("3600");
        sns_down_for_one_publish(&f);
        let first = ("1", gzip(&sources(&["10.0.0.1"], 0)));
        let second = ("2", gzip(&sources(&["10.0.0.2"], 10)));
        let batch = kinesis(&[first.clone(), second.clone()]);
        assert!(f.invoke(&batch, later()).await.is_err());
        let offered = subjects(&f).len();
        // Lambda bisects the failed batch: each half sends what its record claimed.
        f.invoke(&kinesis(&[second]), later()).await.unwrap();
        f.invoke(&kinesis(&[first]), later()).await.unwrap();
        let got = subjects(&f).split_off(offered);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].contains("10.0.0.2") && got[1].contains("10.0.0.1"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_claim_is_not_taken_for_sent_because_an_earlier_message_of_its_source_went_out() {
        let f = function("0");
        let a = ("1", gzip(&sources(&["10.0.0.1"], 0)));
        f.invoke(&kinesis(std::slice::from_ref(&a)), later())
            .await
            .unwrap();
        assert_eq!(subjects(&f).len(), 1);
        // A batch that brings `a` again (its message went out) and new findings of the same
        // source: the reminder those findings claim goes out.
        let c = ("2", gzip(&sources(&["10.0.0.1"], 10)));
        f.invoke(&kinesis(&[a, c]), later()).await.unwrap();
        let got = subjects(&f);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[1].contains("ongoing"), "{got:?}");
    }

    #[tokio::test]
    async fn a_retried_batch_leaves_out_what_this_instance_read_beyond_the_incidents_memory() {
        fn records(docs: &[(String, Vec<u8>)]) -> Vec<(&str, Vec<u8>)> {
            docs.iter().map(|(s, d)| (s.as_str(), d.clone())).collect()
        }
        // A reminder with every delivery that brings findings, and more documents of one
        // source than an incident remembers batches: only this instance's memory of what it
        // read keeps the retry from taking the first ones for new findings.
        let f = function("0");
        let documents: Vec<(String, Vec<u8>)> = (0..100)
            .map(|i| (i.to_string(), gzip(&sources(&["10.0.0.1"], i * 10))))
            .collect();
        f.invoke(&kinesis(&records(&documents)), later())
            .await
            .unwrap();
        assert_eq!(subjects(&f).len(), 1);
        let mut retry = vec![("bad".to_string(), b"not gzip".to_vec())];
        retry.extend(documents);
        let outcome = f.invoke(&kinesis(&records(&retry)), later()).await.unwrap();
        assert_eq!(outcome.summary.findings, 0, "{:?}", outcome.summary);
        assert_eq!(subjects(&f).len(), 1, "{:?}", subjects(&f));
    }

    #[tokio::test]
    async fn an_event_of_another_shape_fails_and_names_what_is_read() {
        let f = function("3600");
        let err = f
            .invoke(br#"{"Records":[{"EventSource":"aws:sns"}]}"#, later())
            .await;
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains("neither a CloudWatch Logs") && err.contains("no `eventSource`"),
            "{err}"
        );
        let err = f
            .invoke(br#"{"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"},"object":{"key":"AWSLogs/111122223333/vpcflowlogs/us-east-1/x.log.gz"}}}]}"#, later())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no S3 client"), "{err}");
    }

    #[tokio::test]
    async fn a_batch_of_hundreds_of_claims_sends_the_first_and_digests_the_rest_in_order() {
        // Two alerts a message here, so 52 are held whole and the other claims are let go as
        // they come. The first record opens 200 incidents (medium), the second escalates the
        // last 50 (high, a sweep of 10 more hosts): their medium claims are superseded.
        let f = function("3600");
        let all: Vec<String> = (0..200)
            .map(|i| format!("10.0.{}.{}", 1 + i / 100, i % 100 + 1))
            .collect();
        let opened: Vec<&str> = all.iter().map(String::as_str).collect();
        let hosts: Vec<String> = (1..=10).map(|h| format!("10.0.9.{h}")).collect();
        let sweeps: Vec<(&str, &str)> = all[150..]
            .iter()
            .flat_map(|s| hosts.iter().map(move |h| (s.as_str(), h.as_str())))
            .collect();
        let batch = kinesis(&[
            ("1", gzip(&sources(&opened, 0))),
            ("2", gzip(&document(&sweeps, 1_000))),
        ]);
        let s = f.invoke(&batch, later()).await.unwrap().summary;
        assert_eq!((s.alerts, s.digested, s.published), (250, 198, 4));
        let bodies = f.sink.as_ref().unwrap().bodies.lock().unwrap().clone();
        let sources_of = |kind: &str, key: &str| -> Vec<String> {
            let mut out = Vec::new();
            for b in bodies.iter().filter(|b| b["type"] == kind) {
                match &b[key] {
                    serde_json::Value::Array(listed) => out.extend(
                        listed
                            .iter()
                            .map(|l| l["source"].as_str().unwrap().to_string()),
                    ),
                    v => out.push(v.as_str().unwrap().to_string()),
                }
            }
            out
        };
        assert_eq!(sources_of("alert", "source"), all[150..152]);
        let listed = sources_of("digest", "listed");
        assert_eq!(listed[..48], all[152..]);
        assert_eq!(listed[48..], all[..2]);
        let digest = bodies.iter().find(|b| b["type"] == "digest").unwrap();
        assert_eq!(digest["alerts"], 198);
        assert_eq!(digest["severity"], "high");
        let page = bodies.iter().find(|b| b["type"] == "page").unwrap();
        assert_eq!(page["alert_count"], 200);
        assert!(page["text"].as_str().unwrap().contains("+199 more"));
    }

    #[tokio::test]
    async fn alerts_beyond_the_cap_go_into_one_digest() {
        let f = function("0");
        let s = f
            .handle(
                &sources(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"], 0),
                later(),
            )
            .await
            .unwrap();
        assert_eq!(
            (s.alerts, s.published, s.digested),
            (4, 4, 2),
            "2 alerts, a digest, a page"
        );
    }

    #[tokio::test]
    async fn a_sweep_delivered_one_target_per_invocation_sends_medium_then_high() {
        let f = function("3600");
        let mut published = 0;
        for host in 0..12 {
            let target = format!("10.0.2.{host}");
            let s = f
                .handle(&document(&[("10.0.4.9", &target)], host * 10), later())
                .await
                .unwrap();
            published += s.published;
        }
        assert_eq!(published, 4, "two alerts and a page with each");
        assert_eq!(
            subjects(&f),
            [
                "[MEDIUM] Probe from 10.0.4.9: port 22 (ssh) on 1 host - 111122223333",
                "[HIGH, escalated] Host sweep from 10.0.4.9: port 22 (ssh) on 10 hosts - 111122223333"
            ]
        );
    }

    #[tokio::test]
    async fn repeats_of_a_reported_incident_are_quiet() {
        let f = function("3600");
        f.handle(&sources(&["10.0.0.1"], 0), later()).await.unwrap();
        let s = f
            .handle(&sources(&["10.0.0.1"], 100), later())
            .await
            .unwrap();
        assert_eq!((s.alerts, s.published, s.suppressed), (0, 0, 1));
    }

    #[tokio::test]
    async fn a_zero_cooldown_sends_a_reminder_with_every_new_delivery() {
        let f = function("0");
        f.handle(&sources(&["10.0.0.1"], 0), later()).await.unwrap();
        let s = f
            .handle(&sources(&["10.0.0.1"], 100), later())
            .await
            .unwrap();
        assert_eq!(s.published, 2, "a reminder and its page");
        assert!(
            subjects(&f)[1].starts_with("[MEDIUM, ongoing] Probe from 10.0.0.1"),
            "{:?}",
            subjects(&f)
        );
    }

    #[tokio::test]
    async fn a_retried_event_does_not_send_again_what_it_sent() {
        let f = function("0");
        let event = sources(&["10.0.0.1", "10.0.0.2"], 0);
        assert_eq!(f.handle(&event, later()).await.unwrap().published, 3);
        let again = f.handle(&event, later()).await.unwrap();
        assert_eq!((again.alerts, again.published), (2, 0));
        assert_eq!(f.sink.as_ref().unwrap().calls.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn when_sns_fails_the_invocation_fails_and_a_retry_sends_everything() {
        let f = function("3600");
        let event = sources(&["10.0.0.1"], 0);
        sns_down_for_one_publish(&f);
        let err = f.handle(&event, later()).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("2 of 2 alert messages could not be published"),
            "{err}"
        );
        // Another delivery of the same source: the message is claimed by the failed batch.
        let other = f
            .handle(&sources(&["10.0.0.1"], 100), later())
            .await
            .unwrap();
        assert_eq!(other.published, 0);
        let s = f.handle(&event, later()).await.unwrap();
        assert_eq!(
            s.published, 2,
            "the retried batch sends the message it claimed, and its page"
        );
    }

    #[tokio::test]
    async fn a_retry_sends_only_what_did_not_go_out_alone_or_in_a_digest() {
        let f = function("3600");
        let event = sources(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"], 0);
        let refused = EntryFailure {
            index: 0,
            reason: "InvalidParameter: refused".into(),
            retryable: false,
        };
        script(&f, [Ok(vec![refused])]);
        let err = f.handle(&event, later()).await.unwrap_err();
        assert!(err.to_string().contains("1 of 4"), "{err}");
        let s = f.handle(&event, later()).await.unwrap();
        assert_eq!((s.alerts, s.published), (4, 1));
        let calls = f.sink.as_ref().unwrap().calls.lock().unwrap().clone();
        assert_eq!(calls[1].len(), 1, "{calls:?}");
        assert_eq!(
            calls[1][0], calls[0][0],
            "the one that failed, and nothing else"
        );
    }

    #[tokio::test]
    async fn a_dry_run_goes_through_the_incidents() {
        let config =
            FunctionConfig::from_env(env(&[("VPC_CIDRS", "10.0.0.0/16"), ("DRY_RUN", "true")]))
                .unwrap();
        let f: Function<ScriptedSink> = Function::new(config, None, RetryPolicy::default());
        assert_eq!(
            f.handle(&sources(&["10.0.0.1"], 0), later())
                .await
                .unwrap()
                .alerts,
            1
        );
        assert_eq!(
            f.handle(&sources(&["10.0.0.1"], 9), later())
                .await
                .unwrap()
                .alerts,
            0
        );
    }

    #[tokio::test]
    async fn an_undecodable_event_fails_and_a_control_message_succeeds() {
        let f = function("0");
        let err = f
            .handle(b"{\"awslogs\":{\"data\":\"@@\"}}", later())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot decode the event: `awslogs.data` is not valid base64"),
            "{err}"
        );
        let control = br#"{"messageType":"CONTROL_MESSAGE","logEvents":[]}"#;
        assert_eq!(
            f.handle(control, later()).await.unwrap(),
            Summary::default()
        );
    }

    #[test]
    fn the_metrics_line_is_embedded_metric_format() {
        let summary = Summary {
            records: 14,
            findings: 2,
            published: 1,
            ..Summary::default()
        };
        let line: serde_json::Value = serde_json::from_str(&metrics_line(
            "fn",
            &summary,
            false,
            Duration::from_millis(3),
        ))
        .unwrap();
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            METRICS_NAMESPACE
        );
        assert_eq!(line["Records"], 14);
        assert_eq!(line["AlertsPublished"], 1);
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in names {
            assert!(line.get(name).is_some(), "{name} has no value");
        }
    }
}
