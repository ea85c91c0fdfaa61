//! SNS messages: one per alert (by email), one digest for the alerts beyond the per-invocation
//! cap, and one page per invocation (the only text a phone gets).
//!
//! Each message is published with `MessageStructure=json`: `default` is the JSON body machines
//! receive (SQS, HTTPS, Lambda subscribers; its contract is `schema/message.schema.json`),
//! `email` the report, `sms` the one-segment text. The String attributes route them: `type`
//! (`alert`, `digest`, `page`: the template sends alerts and digests to email and pages to SMS),
//! `severity`, `kind`, `source`, `account`; pages are marked `Transactional`, so that they are
//! delivered as alerts, not marketing.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde::Serialize;

use crate::detect::alert::{Alert, Severity};
use crate::detect::claims::Brief;
use crate::present::render::{self, SCHEMA_VERSION, SMS_TEXT_MAX};

/// How many alerts a digest lists by name; the rest are only counted.
pub const DIGEST_LISTED: usize = 50;
/// How many alert ids a page lists (most severe first); `alert_count` gives them all. Every id
/// would make a page of thousands of alerts larger than SNS takes (256 KB), and the one text
/// of the invocation would never go out.
pub const PAGE_LISTED: usize = 100;
/// The message attribute that makes SNS deliver a text as transactional (an alert).
pub const SMS_TYPE_ATTRIBUTE: &str = "AWS.SNS.SMS.SMSType";

/// A message ready for SNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Identifies the message across retries of the same event: the alert's id (stable for an
    /// incident and level), `digest` or `page`.
    pub key: String,
    pub subject: String,
    /// The `MessageStructure=json` document.
    pub body: String,
    /// String message attributes: `type`, `severity`, `kind`, `source`, `account`.
    pub attributes: Vec<(&'static str, String)>,
    /// The ids of the alerts whose email this message is: its own, or every alert of a digest.
    pub covers: Vec<String>,
}

#[derive(Serialize)]
struct Structured<'a> {
    default: &'a str,
    email: &'a str,
    sms: &'a str,
}

impl OutgoingMessage {
    /// The message for one alert.
    pub fn alert(alert: &Alert) -> OutgoingMessage {
        let default = render::json(alert);
        OutgoingMessage {
            covers: vec![alert.id.clone()],
            key: alert.id.clone(),
            subject: render::subject(alert),
            body: structured(&default, &render::email(alert), &render::sms(alert)),
            attributes: vec![
                ("type", "alert".to_string()),
                ("severity", alert.severity.as_str().to_string()),
                ("kind", alert.kind.as_str().to_string()),
                ("source", alert.source.to_string()),
                ("account", alert.account().to_string()),
            ],
        }
    }

    /// One message for the alerts beyond the cap, `rest`: it names the first of them,
    /// `listed` (whole, at most [`DIGEST_LISTED`]), and counts the others.
    pub fn digest(listed: &[Alert], rest: &[Brief]) -> OutgoingMessage {
        let severity = most_severe(rest);
        let account = single(rest.iter().map(Brief::account)).unwrap_or("several accounts");
        let n = rest.len();
        let subject = format!(
            "[{}] {n} more source{} sent rejected traffic (digest, {account})",
            severity.as_str().to_ascii_uppercase(),
            if n == 1 { "" } else { "s" }
        );
        let listed = &listed[..listed.len().min(DIGEST_LISTED).min(n)];
        let default = body(
            "digest",
            rest,
            region(listed),
            severity,
            [
                ("alerts", n.into()),
                ("listed", listed.iter().map(brief_json).collect()),
            ],
        );
        let mut email = format!(
            "VPC Flow Alert digest: {n} more source{} inside your VPC sent traffic that the network rejected.\n\
             They are beyond MAX_ALERTS_PER_INVOCATION for this batch, so each gets one line here instead of a message.\n\n",
            if n == 1 { "" } else { "s" }
        );
        for alert in listed {
            email.push_str(&format!(
                "  [{}] {} from {}: {} ({} records, account {})\n",
                alert.severity.as_str().to_ascii_uppercase(),
                render::kind_title(alert.kind),
                render::who(alert),
                render::what(alert),
                alert.records,
                alert.account()
            ));
        }
        if n > listed.len() {
            email.push_str(&format!("  ... and {} more\n", n - listed.len()));
        }
        email.push_str("\nRun `vpc-flow-alert check` on the batch, or read the log group, for the details of each.\n");
        OutgoingMessage {
            key: "digest".into(),
            covers: rest.iter().map(Brief::id).collect(),
            body: structured(
                &default,
                &email,
                &listed
                    .first()
                    .map_or_else(|| subject.clone(), |a| page_line(a, n)),
            ),
            subject: render::subject_line(&subject),
            attributes: vec![
                ("type", "digest".to_string()),
                ("severity", severity.as_str().to_string()),
                ("kind", "digest".to_string()),
                ("source", "digest".to_string()),
                ("account", account.to_string()),
            ],
        }
    }

    /// The one text of an invocation: its most severe alert, `first`, and how many more there
    /// are; `all` is every alert of the invocation, in order (`first` too).
    pub fn page(first: &Alert, all: &[Brief]) -> OutgoingMessage {
        let severity = most_severe(all);
        let text = page_line(first, all.len());
        let default = body(
            "page",
            all,
            first.region.as_deref(),
            severity,
            [
                ("text", text.as_str().into()),
                ("alert_count", all.len().into()),
                (
                    "alerts",
                    all.iter().take(PAGE_LISTED).map(Brief::id).collect(),
                ),
            ],
        );
        OutgoingMessage {
            key: "page".into(),
            covers: Vec::new(),
            subject: render::subject(first),
            body: structured(&default, &text, &text),
            attributes: vec![
                ("type", "page".to_string()),
                ("severity", severity.as_str().to_string()),
                ("kind", first.kind.as_str().to_string()),
                ("source", first.source.to_string()),
                ("account", first.account().to_string()),
                (SMS_TYPE_ATTRIBUTE, "Transactional".to_string()),
            ],
        }
    }

    /// The bytes SNS counts against its 256 KB limit: message, subject and attributes.
    pub fn size(&self) -> usize {
        self.body.len()
            + self.subject.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + "String".len())
                .sum::<usize>()
    }
}

/// The text of a page (without the prefix SNS adds) for `count` alerts of which `first` is the
/// most severe (they are ordered so): that one, `+N more` after it.
pub fn page_line(first: &Alert, count: usize) -> String {
    let more = match count {
        0 | 1 => String::new(),
        n => format!(", +{} more", n - 1),
    };
    let text = render::sms_with(first, &more);
    debug_assert!(text.len() <= SMS_TEXT_MAX);
    text
}

/// The messages for `alerts` (already ordered most severe first): at most `cap` alert
/// messages, one digest of the rest, and, when `page`, the invocation's one text.
pub fn messages_for(alerts: &[Alert], cap: usize, page: bool) -> Vec<OutgoingMessage> {
    let briefs: Vec<Brief> = alerts.iter().map(Brief::of).collect();
    messages_of(alerts, &briefs, cap, page)
}

/// [`messages_for`] an invocation's claims as [`Claims`](crate::detect::claims::Claims) gathers
/// them: `briefs` all of them in order, `alerts` the first of them whole (at least `cap` +
/// [`DIGEST_LISTED`] when there are as many).
pub fn messages_of(
    alerts: &[Alert],
    briefs: &[Brief],
    cap: usize,
    page: bool,
) -> Vec<OutgoingMessage> {
    let direct = cap.min(alerts.len()).min(briefs.len());
    let mut messages: Vec<OutgoingMessage> = alerts[..direct]
        .iter()
        .map(OutgoingMessage::alert)
        .collect();
    let rest = &briefs[direct..];
    if !rest.is_empty() {
        messages.push(OutgoingMessage::digest(&alerts[direct..], rest));
    }
    if let (true, Some(first)) = (page, alerts.first()) {
        messages.push(OutgoingMessage::page(first, briefs));
    }
    messages
}

/// The JSON body of a digest or page: the keys both start with (its type, a stable id from
/// the alerts it covers, where and when), then its own.
fn body<const N: usize>(
    kind: &str,
    alerts: &[Brief],
    region: Option<&str>,
    severity: Severity,
    own: [(&str, serde_json::Value); N],
) -> String {
    let mut body = serde_json::json!({
        "type": kind,
        "schema_version": SCHEMA_VERSION,
        "id": format!("{kind}/{}", fingerprint(alerts)),
        "severity": severity,
        "region": region,
        "detected_at": detected_at(alerts),
    });
    for (key, value) in own {
        body[key] = value;
    }
    body.to_string()
}

fn structured(default: &str, email: &str, sms: &str) -> String {
    serde_json::to_string(&Structured {
        default,
        email,
        sms,
    })
    .expect("strings always serialize")
}

fn most_severe(alerts: &[Brief]) -> Severity {
    alerts
        .iter()
        .map(|a| a.severity)
        .min()
        .unwrap_or(Severity::Medium)
}

/// The region of a message about `alerts`: the first one's.
fn region(alerts: &[Alert]) -> Option<&str> {
    alerts.first().and_then(|a| a.region.as_deref())
}

fn detected_at(alerts: &[Brief]) -> Option<String> {
    alerts.iter().map(|a| a.detected_at).max().map(render::iso)
}

/// The same for the same alerts, whatever the run: a stable id for a digest or page.
fn fingerprint(alerts: &[Brief]) -> String {
    let mut hasher = DefaultHasher::new();
    for a in alerts {
        a.id().hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

fn brief_json(alert: &Alert) -> serde_json::Value {
    serde_json::json!({
        "id": alert.id,
        "severity": alert.severity,
        "kind": alert.kind,
        "accounts": alert.accounts,
        "source": alert.source,
        "records": alert.records,
        "destinations": alert.destinations,
        "ports": alert.ports,
    })
}

fn single<'a>(mut values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::tests::sample;
    use crate::detect::alert::{message_id, Label};

    fn alert(source: &str, severity: Severity) -> Alert {
        let mut a = sample();
        a.source = source.parse().unwrap();
        a.severity = severity;
        a.opened_at = 1;
        a.label = Label::Level(severity);
        a.id = message_id(a.source, a.opened_at, a.label);
        a
    }

    fn default_of(m: &OutgoingMessage) -> serde_json::Value {
        let body: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        serde_json::from_str(body["default"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn an_alert_message_carries_the_variants_and_the_routing_attributes() {
        let m = OutgoingMessage::alert(&alert("10.0.0.7", Severity::High));
        let body: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        let default = default_of(&m);
        assert_eq!(default["type"], "alert");
        assert_eq!(default["source"], "10.0.0.7");
        assert!(body["email"].as_str().unwrap().contains("WHAT TO DO NEXT"));
        assert_eq!(
            m.attributes,
            [
                ("type", "alert".to_string()),
                ("severity", "high".to_string()),
                ("kind", "port-scan".to_string()),
                ("source", "10.0.0.7".to_string()),
                ("account", "210987654321".to_string())
            ]
        );
        assert_eq!(m.key, "10.0.0.7@1/high");
    }

    #[test]
    fn twenty_five_alerts_give_ten_messages_one_digest_and_one_page() {
        let alerts: Vec<Alert> = (0..25)
            .map(|i| {
                alert(
                    &format!("10.0.0.{i}"),
                    if i < 12 {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                )
            })
            .collect();
        let messages = messages_for(&alerts, 10, true);
        assert_eq!(messages.len(), 12);
        let digest = &messages[10];
        assert_eq!(digest.key, "digest");
        assert_eq!(
            digest.subject,
            "[HIGH] 15 more sources sent rejected traffic (digest, 210987654321)"
        );
        let default = default_of(digest);
        assert_eq!(
            (default["type"].as_str(), default["alerts"].as_u64()),
            (Some("digest"), Some(15))
        );
        assert_eq!(default["listed"][0]["source"], "10.0.0.10");
        let page = &messages[11];
        assert_eq!(page.key, "page");
        let text = default_of(page)["text"].as_str().unwrap().to_string();
        assert!(text.ends_with(", +24 more"), "{text}");
        assert!(
            render::sms_prefix().len() + text.len() <= render::SMS_MAX,
            "{text}"
        );
        assert!(page
            .attributes
            .contains(&(SMS_TYPE_ATTRIBUTE, "Transactional".to_string())));
        assert!(page.attributes.contains(&("type", "page".to_string())));
    }

    #[test]
    fn up_to_the_cap_there_is_no_digest_and_without_alerts_no_page() {
        let alerts: Vec<Alert> = (0..10)
            .map(|i| alert(&format!("10.0.0.{i}"), Severity::Medium))
            .collect();
        assert_eq!(messages_for(&alerts, 10, false).len(), 10);
        assert_eq!(messages_for(&alerts, 10, true).len(), 11);
        assert!(messages_for(&[], 10, true).is_empty());
    }

    #[test]
    fn every_message_of_an_invocation_with_thousands_of_alerts_fits_in_sns() {
        // IPv6 sources: the longest ids. SNS takes at most 256 KB a message.
        let alerts: Vec<Alert> = (0..20_000)
            .map(|i| alert(&format!("2600:1f18:4a2b:9e00::{i:x}"), Severity::High))
            .collect();
        let messages = messages_for(&alerts, 10, true);
        assert_eq!(messages.len(), 12);
        for m in &messages {
            assert!(m.size() <= 256 * 1024, "{}: {} bytes", m.key, m.size());
        }
        let page = default_of(&messages[11]);
        assert_eq!(page["alert_count"], 20_000);
        assert_eq!(page["alerts"].as_array().unwrap().len(), PAGE_LISTED);
        assert_eq!(page["alerts"][0], alerts[0].id.as_str());
    }

    #[test]
    fn digest_and_page_ids_are_stable_for_the_same_alerts() {
        let alerts = vec![
            alert("10.0.0.1", Severity::High),
            alert("10.0.0.2", Severity::High),
        ];
        let briefs: Vec<Brief> = alerts.iter().map(Brief::of).collect();
        let id = |m: &OutgoingMessage| default_of(m)["id"].as_str().unwrap().to_string();
        let page = |n: usize| OutgoingMessage::page(&alerts[0], &briefs[..n]);
        assert_eq!(id(&page(2)), id(&page(2)));
        assert_ne!(id(&page(2)), id(&page(1)));
        assert!(id(&OutgoingMessage::digest(&alerts, &briefs)).starts_with("digest/"));
    }
}
