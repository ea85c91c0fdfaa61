//! vpc-flow-alert: alerts when a host inside a VPC sends traffic that the network rejects.
//!
//! The data flows one way, one module per stage:
//! event bytes ([`decode`]) -> flow records ([`format`], [`record`]) -> findings ([`detect`])
//! -> alerts ([`alert`], tied together by [`scan`]) -> rendered messages ([`render`]).
//! -> SNS messages ([`message`]). These stages do no I/O. The command line ([`cli`]) and the
//! Lambda function ([`function`], publishing through [`publish`], remembering recent alerts in
//! [`recent`]) are thin shells over them: what `check` prints is what the Lambda publishes.

pub mod alert;
pub mod cli;
pub mod config;
pub mod decode;
pub mod detect;
pub mod format;
pub mod function;
pub mod message;
pub mod publish;
pub mod recent;
pub mod record;
pub mod render;
pub mod scan;

pub use alert::{Alert, Severity};
pub use config::{Config, RawConfig};
pub use decode::{scan_json, scan_reader, DecodeError};
pub use format::FlowFormat;
pub use scan::{Counts, Report};
