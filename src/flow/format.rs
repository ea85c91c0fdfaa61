//! The flow log format: which field sits at which position of a record.
//!
//! A flow log is created with a `LogFormat` (`${version} ${account-id} ...`); every record of
//! that flow log lists its fields in that order. This module turns such a format (or a header
//! line of an S3 file, or plain names with hyphens or underscores) into a [`FlowFormat`] that
//! knows the position of each field the detector reads.

use std::fmt;

/// The format flow logs use unless they were created with a custom one: the 14 version-2 fields.
pub const DEFAULT_FORMAT: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} \
${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}";

/// The subscription filter pattern the stack uses by default: plain terms that pass REJECT
/// records and SKIPDATA records (the flow log lost records) whatever the format's field order;
/// the function re-checks every record. CloudWatch Logs sends no `extractedFields` with it.
pub const PLAIN_FILTER_PATTERN: &str = "?REJECT ?SKIPDATA";

/// Every field AWS documents for VPC and Transit Gateway flow logs, versions 2 to 8, with the
/// version that introduced it. Fields newer than this table are kept by name, not rejected.
pub const KNOWN_FIELDS: &[(&str, u8)] = &[
    ("version", 2),
    ("account-id", 2),
    ("interface-id", 2),
    ("srcaddr", 2),
    ("dstaddr", 2),
    ("srcport", 2),
    ("dstport", 2),
    ("protocol", 2),
    ("packets", 2),
    ("bytes", 2),
    ("start", 2),
    ("end", 2),
    ("action", 2),
    ("log-status", 2),
    ("vpc-id", 3),
    ("subnet-id", 3),
    ("instance-id", 3),
    ("tcp-flags", 3),
    ("type", 3),
    ("pkt-srcaddr", 3),
    ("pkt-dstaddr", 3),
    ("region", 4),
    ("az-id", 4),
    ("sublocation-type", 4),
    ("sublocation-id", 4),
    ("pkt-src-aws-service", 5),
    ("pkt-dst-aws-service", 5),
    ("flow-direction", 5),
    ("traffic-path", 5),
    ("resource-type", 6),
    ("tgw-id", 6),
    ("tgw-attachment-id", 6),
    ("tgw-src-vpc-account-id", 6),
    ("tgw-dst-vpc-account-id", 6),
    ("tgw-src-vpc-id", 6),
    ("tgw-dst-vpc-id", 6),
    ("tgw-src-subnet-id", 6),
    ("tgw-dst-subnet-id", 6),
    ("tgw-src-eni", 6),
    ("tgw-dst-eni", 6),
    ("tgw-src-az-id", 6),
    ("tgw-dst-az-id", 6),
    ("tgw-pair-attachment-id", 6),
    ("packets-lost-no-route", 6),
    ("packets-lost-blackhole", 6),
    ("packets-lost-mtu-exceeded", 6),
    ("packets-lost-ttl-expired", 6),
    ("ecs-cluster-arn", 7),
    ("ecs-cluster-name", 7),
    ("ecs-container-instance-arn", 7),
    ("ecs-container-instance-id", 7),
    ("ecs-container-id", 7),
    ("ecs-second-container-id", 7),
    ("ecs-service-name", 7),
    ("ecs-task-definition-arn", 7),
    ("ecs-task-arn", 7),
    ("ecs-task-id", 7),
    ("reject-reason", 8),
];

/// Why a format string cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the format is empty")]
    Empty,
    #[error("`{0}` is not a field name (expected `${{name}}` or a name of letters, digits, `-` and `_`)")]
    BadToken(String),
    #[error("field `{0}` appears twice")]
    Duplicate(String),
    #[error("the format has no `action` field, so REJECT records cannot be recognised")]
    NoAction,
    #[error(
        "the format has neither `srcaddr` nor `pkt-srcaddr`, so the source of a record is unknown"
    )]
    NoSource,
}

/// The positions of the fields the detector and the alerts read, plus every field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFormat {
    names: Vec<String>,
    pub(crate) version: Option<usize>,
    pub(crate) account_id: Option<usize>,
    pub(crate) interface_id: Option<usize>,
    pub(crate) srcaddr: Option<usize>,
    pub(crate) dstaddr: Option<usize>,
    pub(crate) srcport: Option<usize>,
    pub(crate) dstport: Option<usize>,
    pub(crate) protocol: Option<usize>,
    pub(crate) packets: Option<usize>,
    pub(crate) bytes: Option<usize>,
    pub(crate) start: Option<usize>,
    pub(crate) end: Option<usize>,
    pub(crate) action: usize,
    pub(crate) log_status: Option<usize>,
    pub(crate) vpc_id: Option<usize>,
    pub(crate) subnet_id: Option<usize>,
    pub(crate) instance_id: Option<usize>,
    pub(crate) pkt_srcaddr: Option<usize>,
    pub(crate) pkt_dstaddr: Option<usize>,
    pub(crate) tcp_flags: Option<usize>,
    pub(crate) flow_direction: Option<usize>,
}

impl FlowFormat {
    /// Parses `${a} ${b}`, `a b` or `a_b c_d`, separated by any whitespace.
    pub fn parse(text: &str) -> Result<FlowFormat, FormatError> {
        let mut names: Vec<String> = Vec::new();
        for token in text.split_ascii_whitespace() {
            let name = normalize_name(token).ok_or_else(|| FormatError::BadToken(token.into()))?;
            if names.contains(&name) {
                return Err(FormatError::Duplicate(name));
            }
            names.push(name);
        }
        if names.is_empty() {
            return Err(FormatError::Empty);
        }
        let at = |field: &str| names.iter().position(|n| n == field);
        let action = at("action").ok_or(FormatError::NoAction)?;
        if at("srcaddr").is_none() && at("pkt-srcaddr").is_none() {
            return Err(FormatError::NoSource);
        }
        Ok(FlowFormat {
            version: at("version"),
            account_id: at("account-id"),
            interface_id: at("interface-id"),
            srcaddr: at("srcaddr"),
            dstaddr: at("dstaddr"),
            srcport: at("srcport"),
            dstport: at("dstport"),
            protocol: at("protocol"),
            packets: at("packets"),
            bytes: at("bytes"),
            start: at("start"),
            end: at("end"),
            action,
            log_status: at("log-status"),
            vpc_id: at("vpc-id"),
            subnet_id: at("subnet-id"),
            instance_id: at("instance-id"),
            pkt_srcaddr: at("pkt-srcaddr"),
            pkt_dstaddr: at("pkt-dstaddr"),
            tcp_flags: at("tcp-flags"),
            flow_direction: at("flow-direction"),
            names,
        })
    }

    /// The 14-field version-2 format.
    pub fn default_v2() -> FlowFormat {
        FlowFormat::parse(DEFAULT_FORMAT).expect("the default format is valid")
    }

    /// How many fields a record of this format has.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: a format has at least one field.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names this program does not know (kept as plain strings, never an error).
    pub fn unknown_fields(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(String::as_str)
            .filter(|n| field_version(n).is_none())
    }

    /// The names a space-delimited filter pattern gives the fields, in order: hyphens become
    /// underscores, which filter patterns accept. They are also the keys of the
    /// `extractedFields` CloudWatch Logs adds to every log event such a pattern lets through.
    pub fn pattern_names(&self) -> impl Iterator<Item = String> + '_ {
        self.names.iter().map(|name| name.replace('-', "_"))
    }

    /// The CloudWatch Logs subscription filter pattern that lets only this format's REJECT
    /// records through: every field named in order ([`FlowFormat::pattern_names`]),
    /// `action=REJECT`, and `log_status=OK` when the format has a status.
    pub fn filter_pattern(&self) -> String {
        let terms: Vec<String> = self
            .pattern_names()
            .map(|term| match term.as_str() {
                "action" => format!("{term}=REJECT"),
                "log_status" => format!("{term}=OK"),
                _ => term,
            })
            .collect();
        format!("[{}]", terms.join(", "))
    }

    /// Whether `line` looks like the header an S3-delivered flow log file starts with: every
    /// token is a field name and most of them are names this program knows.
    pub fn looks_like_header(line: &str) -> bool {
        let mut tokens = 0;
        let mut known = 0;
        for token in line.split_ascii_whitespace() {
            let plain = token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_' || b.is_ascii_digit());
            if !plain || !token.starts_with(|c: char| c.is_ascii_lowercase()) {
                return false;
            }
            tokens += 1;
            if field_version(&token.replace('_', "-")).is_some() {
                known += 1;
            }
        }
        tokens > 0 && known * 2 >= tokens
    }
}

impl Default for FlowFormat {
    fn default() -> Self {
        FlowFormat::default_v2()
    }
}

impl fmt::Display for FlowFormat {
    /// Writes the format as an AWS `LogFormat`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "${{{name}}}")?;
        }
        Ok(())
    }
}

/// The flow log version that introduced `name`, or `None` for a field this program does not know.
pub fn field_version(name: &str) -> Option<u8> {
    KNOWN_FIELDS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, v)| v)
}

/// `${account-id}`, `account-id`, `account_id` and `Account_ID` all become `account-id`.
fn normalize_name(token: &str) -> Option<String> {
    let inner = match token.strip_prefix("${") {
        Some(rest) => rest.strip_suffix('}')?,
        None => token,
    };
    let valid = !inner.is_empty()
        && inner.starts_with(|c: char| c.is_ascii_alphabetic())
        && inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| inner.to_ascii_lowercase().replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format_has_the_fourteen_version_2_fields_in_order() {
        let format = FlowFormat::default_v2();
        assert_eq!(format.len(), 14);
        assert_eq!(format.srcaddr, Some(3));
        assert_eq!(format.action, 12);
        assert_eq!(format.log_status, Some(13));
        assert_eq!(format.to_string(), DEFAULT_FORMAT);
    }

    #[test]
    fn plain_names_with_underscores_mean_the_same_as_aws_tokens() {
        let aws = FlowFormat::parse("${account-id} ${action} ${pkt-srcaddr}").unwrap();
        let plain = FlowFormat::parse("account_id action   PKT_SRCADDR").unwrap();
        assert_eq!(aws, plain);
    }

    #[test]
    fn a_format_without_action_is_refused() {
        assert_eq!(
            FlowFormat::parse("${srcaddr} ${dstaddr}"),
            Err(FormatError::NoAction)
        );
    }

    #[test]
    fn a_format_without_any_source_is_refused() {
        assert_eq!(
            FlowFormat::parse("${action} ${dstaddr}"),
            Err(FormatError::NoSource)
        );
    }

    #[test]
    fn pkt_srcaddr_alone_is_a_source() {
        assert!(FlowFormat::parse("${action} ${pkt-srcaddr}").is_ok());
    }

    #[test]
    fn unknown_fields_are_kept_by_name() {
        let format = FlowFormat::parse("${action} ${srcaddr} ${some-future-field}").unwrap();
        assert_eq!(format.len(), 3);
        assert_eq!(
            format.unknown_fields().collect::<Vec<_>>(),
            ["some-future-field"]
        );
    }

    #[test]
    fn bad_tokens_and_duplicates_are_named() {
        assert_eq!(
            FlowFormat::parse("${action} ${srcaddr"),
            Err(FormatError::BadToken("${srcaddr".into()))
        );
        assert_eq!(
            FlowFormat::parse("action srcaddr action"),
            Err(FormatError::Duplicate("action".into()))
        );
        assert_eq!(FlowFormat::parse("  "), Err(FormatError::Empty));
    }

    #[test]
    fn every_field_of_versions_2_to_8_is_known() {
        for v in 2..=8 {
            assert!(KNOWN_FIELDS.iter().any(|&(_, fv)| fv == v), "version {v}");
        }
        assert_eq!(field_version("reject-reason"), Some(8));
        assert_eq!(field_version("ecs-task-id"), Some(7));
    }

    #[test]
    fn the_filter_pattern_names_every_field_and_keeps_only_ok_rejects() {
        assert_eq!(
            FlowFormat::default_v2().filter_pattern(),
            "[version, account_id, interface_id, srcaddr, dstaddr, srcport, dstport, protocol, packets, bytes, start, end, action=REJECT, log_status=OK]"
        );
        let custom = FlowFormat::parse("${pkt-srcaddr} ${action} ${vpc-id}").unwrap();
        assert_eq!(
            custom.filter_pattern(),
            "[pkt_srcaddr, action=REJECT, vpc_id]"
        );
    }

    #[test]
    fn s3_header_lines_are_recognised_and_records_are_not() {
        assert!(FlowFormat::looks_like_header(
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
        ));
        assert!(!FlowFormat::looks_like_header(
            "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK"
        ));
        assert!(!FlowFormat::looks_like_header(
            "vpc-0abc subnet-0def i-0123"
        ));
    }
}
