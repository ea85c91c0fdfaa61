//! SNS messages: one per alert, and one digest for the alerts beyond the per-invocation cap.
//!
//! Each message is published with `MessageStructure=json`: `default` is the alert as JSON (what
//! SQS, HTTPS and Lambda subscribers get), `email` the report, `sms` the one-segment text. The
//! `severity`, `source` and `account` attributes let subscription filter policies route them,
//! for example only `high` to SMS.

use serde::Serialize;

use crate::detect::alert::{Alert, Severity};
use crate::present::render::{self, SMS_TEXT_MAX};

/// How many alerts a digest lists by name; the rest are only counted.
pub const DIGEST_LISTED: usize = 50;

/// A message ready for SNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Identifies the message across retries of the same event: the alert's id (stable for an
    /// incident and level), or `digest`.
    pub key: String,
    pub subject: String,
    /// The `MessageStructure=json` document.
    pub body: String,
    /// `severity`, `kind`, `source`, `account`: String message attributes.
    pub attributes: Vec<(&'static str, String)>,
    /// The ids of the alerts this message tells about: its own, or every alert of a digest.
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
                ("severity", alert.severity.as_str().to_string()),
                ("kind", alert.kind.as_str().to_string()),
                ("source", alert.source.to_string()),
                ("account", alert.account().to_string()),
            ],
        }
    }

    /// One message that lists `alerts` briefly (the ones beyond the cap).
    pub fn digest(alerts: &[Alert]) -> OutgoingMessage {
        let severity = alerts
            .iter()
            .map(|a| a.severity)
            .min()
            .unwrap_or(Severity::Medium);
        let account = single(alerts.iter().map(Alert::account)).unwrap_or("several accounts");
        let n = alerts.len();
        let subject = format!(
            "[{}] {n} more source{} sent rejected traffic (digest, {account})",
            severity.as_str().to_ascii_uppercase(),
            if n == 1 { "" } else { "s" }
        );
        let listed = &alerts[..n.min(DIGEST_LISTED)];
        let default = serde_json::json!({
            "digest": true,
            "alerts": n,
            "listed": listed.iter().map(brief_json).collect::<Vec<_>>(),
        })
        .to_string();
        let mut email = format!(
            "VPC Flow Alert digest: {n} more source{} inside your VPC sent traffic that the network rejected.\n\
             They are beyond MAX_ALERTS_PER_INVOCATION for this batch, so each gets one line here instead of a message.\n\n",
            if n == 1 { "" } else { "s" }
        );
        for alert in listed {
            email.push_str(&format!(
                "  [{}] {} {} ({} records, account {})\n",
                alert.severity.as_str().to_ascii_uppercase(),
                alert.source,
                render::activity(alert),
                alert.records,
                alert.account()
            ));
        }
        if n > listed.len() {
            email.push_str(&format!("  ... and {} more\n", n - listed.len()));
        }
        email.push_str("\nRun `vpc-flow-alert check` on the batch, or read the log group, for the details of each.\n");
        let mut sms = format!(
            "{}: {n} more sources sent rejected traffic:",
            severity.as_str().to_ascii_uppercase()
        );
        for alert in listed {
            let item = format!(" {}", alert.source);
            if sms.len() + item.len() + " ...".len() > SMS_TEXT_MAX {
                sms.push_str(" ...");
                break;
            }
            sms.push_str(&item);
        }
        OutgoingMessage {
            key: "digest".into(),
            covers: alerts.iter().map(|a| a.id.clone()).collect(),
            subject: render::subject_line(&subject),
            body: structured(&default, &email, &sms),
            attributes: vec![
                ("severity", severity.as_str().to_string()),
                ("kind", "digest".to_string()),
                ("source", "digest".to_string()),
                ("account", account.to_string()),
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

/// The messages for `alerts` (already ordered most severe first): at most `cap` alert
/// messages, and one digest of the rest.
pub fn messages_for(alerts: &[Alert], cap: usize) -> Vec<OutgoingMessage> {
    let (direct, rest) = alerts.split_at(alerts.len().min(cap));
    let mut messages: Vec<OutgoingMessage> = direct.iter().map(OutgoingMessage::alert).collect();
    if !rest.is_empty() {
        messages.push(OutgoingMessage::digest(rest));
    }
    messages
}

fn structured(default: &str, email: &str, sms: &str) -> String {
    serde_json::to_string(&Structured {
        default,
        email,
        sms,
    })
    .expect("strings always serialize")
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
    use crate::present::render::tests::alert as sample;

    fn alert(source: &str, severity: Severity) -> Alert {
        let mut a = sample();
        a.source = source.parse().unwrap();
        a.severity = severity;
        a.id = format!("{source}@1/{}", severity.as_str());
        a
    }

    #[test]
    fn an_alert_message_carries_the_three_variants_and_the_routing_attributes() {
        let m = OutgoingMessage::alert(&alert("10.0.0.7", Severity::High));
        let body: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        let default: serde_json::Value =
            serde_json::from_str(body["default"].as_str().unwrap()).unwrap();
        assert_eq!(default["source"], "10.0.0.7");
        assert!(body["email"].as_str().unwrap().contains("WHAT TO DO NEXT"));
        assert!(
            render::sms_prefix().len() + body["sms"].as_str().unwrap().len() <= render::SMS_MAX
        );
        assert_eq!(
            m.attributes,
            [
                ("severity", "high".to_string()),
                ("kind", "port-scan".to_string()),
                ("source", "10.0.0.7".to_string()),
                ("account", "210987654321".to_string())
            ]
        );
        assert_eq!(m.key, "10.0.0.7@1/high");
    }

    #[test]
    fn twenty_five_alerts_give_ten_messages_and_one_digest() {
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
        let messages = messages_for(&alerts, 10);
        assert_eq!(messages.len(), 11);
        let digest = &messages[10];
        assert_eq!(digest.key, "digest");
        assert_eq!(
            digest.subject,
            "[HIGH] 15 more sources sent rejected traffic (digest, 210987654321)"
        );
        let body: serde_json::Value = serde_json::from_str(&digest.body).unwrap();
        let default: serde_json::Value =
            serde_json::from_str(body["default"].as_str().unwrap()).unwrap();
        assert_eq!(default["alerts"], 15);
        assert_eq!(default["listed"][0]["source"], "10.0.0.10");
        assert!(
            render::sms_prefix().len() + body["sms"].as_str().unwrap().len() <= render::SMS_MAX
        );
    }

    #[test]
    fn up_to_the_cap_there_is_no_digest() {
        let alerts: Vec<Alert> = (0..10)
            .map(|i| alert(&format!("10.0.0.{i}"), Severity::Medium))
            .collect();
        assert_eq!(messages_for(&alerts, 10).len(), 10);
        assert!(messages_for(&[], 10).is_empty());
    }
}
