//! The shared incident table (DynamoDB): one item per source address, shared by every
//! function instance, so that concurrent instances add up one incident and send each message
//! once.
//!
//! Every write is one atomic `UpdateItem`:
//! - tracking a delivery `ADD`s its counters and sets to the source's item (creating it with
//!   `if_not_exists` first values), under a condition that the incident is still open, that
//!   this batch was not added already (a slot per batch fingerprint), and that no set grows
//!   past its cap; `ReturnValues=ALL_NEW` hands back the merged incident;
//! - claiming a message is a conditional write that exactly one instance wins: a level only if
//!   neither it nor a more severe one was claimed, a reminder only once the cooldown has
//!   passed, both only in the same incident ([`Incident::try_claim`] is the same rule in
//!   memory).
//!
//! When a condition fails, a consistent `GetItem` says why: a closed incident is replaced by a
//! new one (conditionally, so only one instance does it), a batch seen before is a retry (its
//! earlier claims are sent again), a full set is left out. Items expire through the
//! `expires_at` TTL attribute, and stay far under 400 KB: each set holds at most twice its cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use crate::config::IncidentPolicy;
use crate::detect::activity::{Activity, AtLeast, Capped, Responses, ID_CAP, SET_CAP};
use crate::detect::incident::{Claim, Incident, Severity, Tracked};

/// The table's partition key: the source address in canonical text.
pub const KEY: &str = "source";
/// The TTL attribute (Unix seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// Slots remembering recent batch fingerprints per item, so that a retried batch is not added
/// twice (a few KB). A retry whose slot was taken since is added again; its claims are still
/// found, by their owner.
const BATCH_SLOTS: u64 = 64;
/// Updates tried before giving up on an item that keeps changing under us.
const ATTEMPTS: usize = 4;

/// A call to the table failed (throttling, a server error, no connection, a timeout, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state table {table}: {reason}")]
pub struct StateError {
    pub table: String,
    pub reason: String,
}

/// The incident table and the policy that decides when incidents close and remind.
#[derive(Debug)]
pub struct StateTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
    policy: IncidentPolicy,
    calls: AtomicU64,
}

/// One set attribute of an item: which of the activity's sets it stores, and its cap.
struct SetAttribute {
    name: &'static str,
    cap: usize,
    numbers: bool,
}

const SETS: [SetAttribute; 9] = [
    set("destinations", SET_CAP, false),
    set("ports", SET_CAP, true),
    set("peers", SET_CAP, false),
    set("service_ports", SET_CAP, true),
    set("protocols", 256, true),
    set("rejected_at", ID_CAP, false),
    set("sender_at", ID_CAP, false),
    set("log_streams", ID_CAP, false),
    set("accounts", ID_CAP, false),
];

const fn set(name: &'static str, cap: usize, numbers: bool) -> SetAttribute {
    SetAttribute { name, cap, numbers }
}

const COUNTERS: [&str; 5] = ["records", "packets", "bytes", "probes", "responses"];

/// The values of the set attribute `name` in an activity, as text.
fn set_values(a: &Activity, name: &str) -> Vec<String> {
    fn text<T: ToString + Ord, const N: usize>(set: &Capped<T, N>) -> Vec<String> {
        set.iter().map(ToString::to_string).collect()
    }
    match name {
        "destinations" => a.destinations.iter().map(|v| v.to_string()).collect(),
        "ports" => text(&a.ports),
        "peers" => a.responses().peers.iter().map(|v| v.to_string()).collect(),
        "service_ports" => text(&a.responses().service_ports),
        "protocols" => text(&a.protocols),
        "rejected_at" => text(&a.rejected_at),
        "sender_at" => text(&a.sender_at),
        "log_streams" => text(&a.log_streams),
        "accounts" => text(&a.accounts),
        _ => Vec::new(),
    }
}

fn set_len_of(a: &Activity, name: &str) -> usize {
    match name {
        "destinations" => a.destinations.len(),
        "ports" => a.ports.len(),
        "peers" => a.responses().peers.len(),
        "service_ports" => a.responses().service_ports.len(),
        "protocols" => a.protocols.len(),
        "rejected_at" => a.rejected_at.len(),
        "sender_at" => a.sender_at.len(),
        "log_streams" => a.log_streams.len(),
        "accounts" => a.accounts.len(),
        _ => 0,
    }
}

fn counter_value(a: &Activity, name: &str) -> u64 {
    match name {
        "records" => a.records,
        "packets" => a.packets,
        "bytes" => a.bytes,
        "probes" => a.probes,
        "responses" => a.responses().count,
        _ => 0,
    }
}

/// An `UpdateItem` under construction: expression text and its names and values.
#[derive(Default)]
struct Update {
    set: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names
            .insert(placeholder.clone(), attribute.to_string());
        placeholder
    }

    fn value(&mut self, key: &str, value: AttributeValue) -> String {
        let placeholder = format!(":{key}");
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn expression(&self) -> String {
        let mut parts = Vec::new();
        for (word, items) in [
            ("SET", &self.set),
            ("ADD", &self.add),
            ("REMOVE", &self.remove),
        ] {
            if !items.is_empty() {
                parts.push(format!("{word} {}", items.join(", ")));
            }
        }
        parts.join(" ")
    }

    fn condition(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| {
            self.conditions
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" AND ")
        })
    }
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn text(s: impl Into<String>) -> AttributeValue {
    AttributeValue::S(s.into())
}

type Item = HashMap<String, AttributeValue>;

/// What an update did.
enum Updated {
    /// The item after the update.
    Done(Box<Incident>),
    /// The condition failed; the item as it was, if there is one.
    Refused(Option<Item>),
}

/// What a failed condition turned out to mean, read from the item.
enum Conflict {
    /// No item, or its incident closed: open a new one.
    Closed,
    /// This batch was added before: a retry.
    Replay(Box<Incident>),
    /// Sets that reached their cap: leave them out.
    Full(Vec<&'static str>),
}

impl StateTable {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        policy: IncidentPolicy,
    ) -> StateTable {
        StateTable {
            client,
            table: table.into(),
            policy,
            calls: AtomicU64::new(0),
        }
    }

    /// The error for calls that did not finish within `budget`.
    pub fn timed_out(&self, budget: std::time::Duration) -> StateError {
        StateError {
            table: self.table.clone(),
            reason: format!(
                "no answer within {} ms, the invocation's budget for the table",
                budget.as_millis()
            ),
        }
    }

    /// Calls made to the table since the last time this was asked (for the metrics line).
    pub fn take_calls(&self) -> u64 {
        self.calls.swap(0, Ordering::Relaxed)
    }

    fn error<E, R>(&self, what: &str, err: SdkError<E, R>) -> StateError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let reason = match &err {
            SdkError::ServiceError(e) => format!(
                "{what}: {}: {}",
                e.err().code().unwrap_or("unknown error"),
                e.err().message().unwrap_or("no message")
            ),
            SdkError::TimeoutError(_) => format!("{what}: no answer in time"),
            other => {
                let mut text = format!("{what}: {other}");
                let mut source = std::error::Error::source(other);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            }
        };
        StateError {
            table: self.table.clone(),
            reason,
        }
    }

    /// The sets of an incident that are full, if it is still open: what [`Self::track`] may
    /// leave out without asking.
    pub fn full_sets(&self, known: Option<&Incident>, now: u64) -> Vec<&'static str> {
        match known {
            Some(i) if !i.is_closed(now, self.policy.window) => SETS
                .iter()
                .filter(|s| set_len_of(&i.seen, s.name) >= s.cap)
                .map(|s| s.name)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Adds a delivery's slice to its source's incident, leaving out the sets in `full` (they
    /// hold as many values as they keep).
    pub async fn track(
        &self,
        activity: &Activity,
        batch: Option<u64>,
        now: u64,
        full: Vec<&'static str>,
    ) -> Result<Tracked, StateError> {
        let cutoff = now.saturating_sub(self.policy.window);
        let mut full = full;
        for _ in 0..ATTEMPTS {
            match self.add(activity, batch, now, cutoff, &full).await? {
                Updated::Done(incident) => {
                    return Ok(Tracked {
                        incident: *incident,
                        replay: false,
                    })
                }
                Updated::Refused(item) => match self.conflict(activity.source, item, batch, cutoff)
                {
                    Conflict::Closed => {
                        if let Updated::Done(incident) =
                            self.open(activity, batch, now, cutoff).await?
                        {
                            return Ok(Tracked {
                                incident: *incident,
                                replay: false,
                            });
                        }
                    }
                    Conflict::Replay(incident) => {
                        return Ok(Tracked {
                            incident: *incident,
                            replay: true,
                        })
                    }
                    Conflict::Full(names) => full = names,
                },
            }
        }
        Err(StateError {
            table: self.table.clone(),
            reason: format!(
                "the item of {} kept changing; gave up after {ATTEMPTS} tries",
                activity.source
            ),
        })
    }

    /// The common case: adds to the open incident (or creates the item). `None` when a
    /// condition failed.
    async fn add(
        &self,
        a: &Activity,
        batch: Option<u64>,
        now: u64,
        cutoff: u64,
        full: &[&str],
    ) -> Result<Updated, StateError> {
        let mut u = Update::default();
        let (incident, last_at, now_v, cutoff_v) = self.stamp(&mut u, now, cutoff);
        u.set
            .push(format!("{incident} = if_not_exists({incident}, {now_v})"));
        u.conditions.push(format!(
            "attribute_not_exists({last_at}) OR {last_at} > {cutoff_v}"
        ));
        if let Some(first) = a.first_seen() {
            let first_seen = u.name("first_seen");
            let v = u.value("first", number(first));
            u.set
                .push(format!("{first_seen} = if_not_exists({first_seen}, {v})"));
        }
        if let Some(last) = a.last_seen() {
            let last_seen = u.name("last_seen");
            let v = u.value("last", number(last));
            u.set.push(format!("{last_seen} = {v}"));
        }
        for counter in COUNTERS {
            let n = u.name(counter);
            let v = u.value(counter, number(counter_value(a, counter)));
            u.add.push(format!("{n} {v}"));
        }
        self.batch_slot(&mut u, batch, true);
        for s in SETS.iter().filter(|s| !full.contains(&s.name)) {
            let values = set_values(a, s.name);
            if values.is_empty() {
                continue;
            }
            let n = u.name(s.name);
            let v = u.value(s.name, set_value(s, values));
            let cap = u.value(&format!("{}_cap", s.name), number(s.cap as u64));
            u.add.push(format!("{n} {v}"));
            u.conditions
                .push(format!("attribute_not_exists({n}) OR size({n}) < {cap}"));
        }
        self.update(a.source, u, "adding to the incident").await
    }

    /// Replaces a closed incident (or a missing item) with a new one holding this slice.
    async fn open(
        &self,
        a: &Activity,
        batch: Option<u64>,
        now: u64,
        cutoff: u64,
    ) -> Result<Updated, StateError> {
        let mut u = Update::default();
        let (incident, last_at, now_v, cutoff_v) = self.stamp(&mut u, now, cutoff);
        u.set.push(format!("{incident} = {now_v}"));
        u.conditions.push(format!(
            "attribute_not_exists({last_at}) OR {last_at} <= {cutoff_v}"
        ));
        for (name, value) in [("first_seen", a.first_seen()), ("last_seen", a.last_seen())] {
            let n = u.name(name);
            match value {
                Some(t) => {
                    let v = u.value(name, number(t));
                    u.set.push(format!("{n} = {v}"));
                }
                None => u.remove.push(n),
            }
        }
        for counter in COUNTERS {
            let n = u.name(counter);
            let v = u.value(counter, number(counter_value(a, counter)));
            u.set.push(format!("{n} = {v}"));
        }
        self.batch_slot(&mut u, batch, false);
        for s in &SETS {
            let values = set_values(a, s.name);
            let n = u.name(s.name);
            if values.is_empty() {
                u.remove.push(n);
            } else {
                let v = u.value(s.name, set_value(s, values));
                u.set.push(format!("{n} = {v}"));
            }
        }
        for name in ["claimed", "last_sent", "reminders"] {
            let n = u.name(name);
            u.remove.push(n);
        }
        for key in claim_keys() {
            let n = u.name(&format!("owner_{key}"));
            u.remove.push(n);
        }
        // The old incident's batches: a late retry of one of them is not this incident's.
        let current = batch.map(|b| b % BATCH_SLOTS);
        for slot in (0..BATCH_SLOTS).filter(|s| Some(*s) != current) {
            let n = u.name(&format!("batch_{slot}"));
            u.remove.push(n);
        }
        self.update(a.source, u, "opening an incident").await
    }

    /// What every tracking update sets: the time of the latest finding and the expiry. Returns
    /// the placeholders of `incident`, `last_at`, now and the cutoff for the caller's
    /// expressions.
    fn stamp(&self, u: &mut Update, now: u64, cutoff: u64) -> (String, String, String, String) {
        let [incident, last_at, expires_at] =
            ["incident", "last_at", TTL_ATTRIBUTE].map(|n| u.name(n));
        let now_v = u.value("now", number(now));
        let cutoff_v = u.value("cutoff", number(cutoff));
        let expires = u.value("expires", number(now + self.policy.window));
        u.set.push(format!("{last_at} = {now_v}"));
        u.set.push(format!("{expires_at} = {expires}"));
        (incident, last_at, now_v, cutoff_v)
    }

    /// Records the batch in its slot; with `guard`, only if the slot does not hold it already.
    fn batch_slot(&self, u: &mut Update, batch: Option<u64>, guard: bool) {
        let Some(b) = batch else {
            return;
        };
        let slot = u.name(&format!("batch_{}", b % BATCH_SLOTS));
        let v = u.value("batch", text(format!("{b:016x}")));
        u.set.push(format!("{slot} = {v}"));
        if guard {
            u.conditions
                .push(format!("attribute_not_exists({slot}) OR {slot} <> {v}"));
        }
    }

    /// Runs an update that returns the whole new item, or, when its condition failed, the item
    /// as it was (read back if the answer did not carry it; `None` when there is none).
    async fn update(&self, source: IpAddr, u: Update, what: &str) -> Result<Updated, StateError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, text(source.to_string()))
            .update_expression(u.expression())
            .set_condition_expression(u.condition())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (k, v) in u.names {
            request = request.expression_attribute_names(k, v);
        }
        for (k, v) in u.values {
            request = request.expression_attribute_values(k, v);
        }
        match request.send().await {
            Ok(out) => Ok(Updated::Done(Box::new(incident_from_item(
                source,
                out.attributes.as_ref().unwrap_or(&HashMap::new()),
            )))),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let old = match e.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                match old {
                    Some(item) => Ok(Updated::Refused(Some(item))),
                    None => Ok(Updated::Refused(self.read(source).await?)),
                }
            }
            Err(err) => Err(self.error(what, err)),
        }
    }

    /// The item of `source`, read consistently.
    async fn read(&self, source: IpAddr) -> Result<Option<Item>, StateError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, text(source.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("reading the incident", e))?;
        Ok(out.item)
    }

    /// Why a tracking condition failed, from the item as it was.
    fn conflict(
        &self,
        source: IpAddr,
        item: Option<Item>,
        batch: Option<u64>,
        cutoff: u64,
    ) -> Conflict {
        let Some(item) = item else {
            return Conflict::Closed;
        };
        if read_number(&item, "last_at").is_none_or(|t| t <= cutoff) {
            return Conflict::Closed;
        }
        if let Some(b) = batch {
            let slot = format!("batch_{}", b % BATCH_SLOTS);
            if read_text(&item, &slot) == Some(format!("{b:016x}")) {
                return Conflict::Replay(Box::new(incident_from_item(source, &item)));
            }
        }
        Conflict::Full(
            SETS.iter()
                .filter(|s| set_len(&item, s.name) >= s.cap)
                .map(|s| s.name)
                .collect(),
        )
    }

    /// Claims a message of `incident` for the batch `owner`. `Some` (the incident after the
    /// claim) when this instance won it, `None` when another delivery got there first.
    pub async fn claim(
        &self,
        incident: &Incident,
        claim: Claim,
        owner: u64,
        now: u64,
    ) -> Result<Option<Incident>, StateError> {
        let mut u = Update::default();
        let [incident_n, last_sent, owner_n] =
            ["incident", "last_sent", &format!("owner_{}", claim.key())].map(|n| u.name(n));
        let opened = u.value("opened", number(incident.opened_at));
        u.conditions.push(format!("{incident_n} = {opened}"));
        let now_v = u.value("now", number(now));
        u.set.push(format!("{last_sent} = {now_v}"));
        let owner_v = u.value("owner", text(format!("{owner:016x}")));
        u.set.push(format!("{owner_n} = {owner_v}"));
        match claim {
            Claim::Level(level) => {
                let claimed = u.name("claimed");
                let v = u.value("level", AttributeValue::Ss(vec![level.as_str().into()]));
                u.add.push(format!("{claimed} {v}"));
                let taken: Vec<String> = Severity::ALL
                    .into_iter()
                    .filter(|s| s.rank() >= level.rank())
                    .map(|s| {
                        let v = u.value(s.as_str(), text(s.as_str()));
                        format!("NOT contains({claimed}, {v})")
                    })
                    .collect();
                u.conditions.push(format!(
                    "attribute_not_exists({claimed}) OR ({})",
                    taken.join(" AND ")
                ));
            }
            Claim::Reminder => {
                let reminders = u.name("reminders");
                let one = u.value("one", number(1));
                u.add.push(format!("{reminders} {one}"));
                let due = u.value("due", number(now.saturating_sub(self.policy.cooldown)));
                u.conditions.push(format!(
                    "attribute_not_exists({last_sent}) OR {last_sent} <= {due}"
                ));
            }
        }
        let source = incident.source();
        match self.update(source, u, "claiming a message").await? {
            Updated::Done(claimed) => Ok(Some(*claimed)),
            // An earlier attempt of this very call may have landed without its answer (the SDK
            // retries timeouts and server errors): then the claim is ours.
            Updated::Refused(Some(item)) => {
                let old = incident_from_item(source, &item);
                let ours = old.opened_at == incident.opened_at
                    && old.owners.get(claim.key()) == Some(&owner)
                    && match claim {
                        Claim::Level(level) => old.claimed.contains(&level),
                        Claim::Reminder => old.last_sent == Some(now),
                    };
                Ok(ours.then_some(old))
            }
            Updated::Refused(None) => Ok(None),
        }
    }
}

fn claim_keys() -> impl Iterator<Item = &'static str> {
    Severity::ALL
        .into_iter()
        .map(Severity::as_str)
        .chain(["reminder"])
}

fn set_value(s: &SetAttribute, values: Vec<String>) -> AttributeValue {
    if s.numbers {
        AttributeValue::Ns(values)
    } else {
        AttributeValue::Ss(values)
    }
}

fn read_number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn read_text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn read_set<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a [String] {
    match item.get(name) {
        Some(AttributeValue::Ss(v)) | Some(AttributeValue::Ns(v)) => v,
        _ => &[],
    }
}

fn set_len(item: &HashMap<String, AttributeValue>, name: &str) -> usize {
    read_set(item, name).len()
}

/// Reads a set back; a set at its cap stopped taking values, so its count is "at least".
fn capped<S: FromIterator<T> + AtLeast, T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
    cap: usize,
) -> S {
    let values = read_set(item, name);
    let mut set: S = values.iter().filter_map(|v| v.parse().ok()).collect();
    if values.len() >= cap {
        set.mark_at_least();
    }
    set
}

/// The incident an item holds.
pub fn incident_from_item(source: IpAddr, item: &HashMap<String, AttributeValue>) -> Incident {
    let n = |name: &str| read_number(item, name).unwrap_or(0);
    let mut seen = Activity::new(source);
    seen.records = n("records");
    seen.packets = n("packets");
    seen.bytes = n("bytes");
    seen.probes = n("probes");
    seen.destinations = capped(item, "destinations", SET_CAP);
    seen.ports = capped(item, "ports", SET_CAP);
    seen.set_responses(Responses {
        count: n("responses"),
        peers: capped(item, "peers", SET_CAP),
        service_ports: capped(item, "service_ports", SET_CAP),
    });
    seen.protocols = capped(item, "protocols", 256);
    seen.rejected_at = capped(item, "rejected_at", ID_CAP);
    seen.sender_at = capped(item, "sender_at", ID_CAP);
    seen.log_streams = capped(item, "log_streams", ID_CAP);
    seen.accounts = capped(item, "accounts", ID_CAP);
    seen.set_seen(
        read_number(item, "first_seen"),
        read_number(item, "last_seen"),
    );
    let mut incident = Incident::open(&seen, n("incident"));
    incident.last_at = n("last_at");
    incident.claimed = read_set(item, "claimed")
        .iter()
        .filter_map(|s| Severity::parse(s))
        .collect();
    incident.last_sent = read_number(item, "last_sent");
    incident.reminders = n("reminders");
    for key in claim_keys() {
        if let Some(owner) =
            read_text(item, &format!("owner_{key}")).and_then(|o| u64::from_str_radix(&o, 16).ok())
        {
            incident.owners.insert(key, owner);
        }
    }
    incident
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_reads_back_as_the_incident_it_stores() {
        let item: HashMap<String, AttributeValue> = [
            ("incident", number(100)),
            ("last_at", number(160)),
            ("records", number(12)),
            ("probes", number(12)),
            (
                "destinations",
                AttributeValue::Ss(vec!["10.0.1.1".into(), "10.0.1.2".into()]),
            ),
            ("ports", AttributeValue::Ns(vec!["22".into()])),
            ("claimed", AttributeValue::Ss(vec!["medium".into()])),
            ("owner_medium", text(format!("{:016x}", 7u64))),
            ("last_sent", number(100)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let i = incident_from_item("10.0.4.9".parse().unwrap(), &item);
        assert_eq!((i.opened_at, i.last_at), (100, 160));
        assert_eq!(i.seen.destinations.len(), 2);
        assert!(i.seen.destinations.is_exact());
        assert_eq!(i.seen.ports.lowest(1), [22]);
        assert_eq!(i.highest_claimed(), Some(Severity::Medium));
        assert_eq!(i.claimed_by(7), [Claim::Level(Severity::Medium)]);
        assert_eq!(i.last_sent, Some(100));
    }

    #[test]
    fn a_set_read_back_at_its_cap_counts_as_at_least() {
        let ports: Vec<String> = (0..SET_CAP).map(|p| p.to_string()).collect();
        let item: HashMap<String, AttributeValue> =
            [("ports".to_string(), AttributeValue::Ns(ports))].into();
        let i = incident_from_item("10.0.4.9".parse().unwrap(), &item);
        assert!(!i.seen.ports.is_exact());
    }

    #[test]
    fn every_set_of_an_activity_has_an_attribute() {
        let mut a = Activity::new("10.0.0.1".parse().unwrap());
        let mut f = crate::detect::activity::tests::finding("10.0.0.1", "10.0.1.1", 22);
        f.instance_id = Some("i-1");
        a.add(&f, None);
        a.log_streams.insert("s".into());
        let stored: usize = SETS.iter().map(|s| set_values(&a, s.name).len()).sum();
        // destination, port, protocol, interface + instance, log stream, account
        assert_eq!(stored, 7);
    }
}
