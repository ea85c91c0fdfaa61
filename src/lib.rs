//! vpc-flow-alert: alerts when a host inside a VPC sends traffic that the network rejects.
//!
//! The data flows one way, and the folders are the layers; each uses only those above it in
//! this list:
//! - [`flow`]: what a flow log record is (its format, the record split into fields);
//! - [`config`]: the validated configuration;
//! - [`detect`]: the rule (which records are findings), the findings of one delivery grouped
//!   per source, and incidents (one per source across deliveries, deciding which messages to
//!   send);
//! - [`input`]: event bytes and files to records and counts;
//! - [`present`]: the words (subject, SMS, email, JSON) and the SNS messages;
//! - [`aws`]: SNS publishing, the shared incident table in DynamoDB, and the EC2 lookups that
//!   name the senders.
//!
//! The command line ([`cli`]) and the Lambda function ([`function`]) are thin shells over
//! them: what `check` prints is what the Lambda publishes.

pub mod aws;
pub mod cli;
pub mod config;
pub mod detect;
pub mod flow;
pub mod function;
pub mod input;
pub mod present;
pub mod recent;

pub use config::{Config, RawConfig};
pub use detect::alert::{Alert, Severity};
pub use flow::format::FlowFormat;
pub use input::decode::{scan_json, scan_reader, DecodeError};
pub use input::scan::{Counts, Report};
