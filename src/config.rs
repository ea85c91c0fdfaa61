//! Configuration of the engine, read and validated once at start-up.
//!
//! The command line and the Lambda read the same environment variables; command-line flags
//! override them. Raw text goes in ([`RawConfig`]), one typed [`Config`] comes out, and a bad
//! value fails with a message naming the variable (or flag) and the value.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::flow::format::{FlowFormat, FormatError};

pub const ENV_VPC_CIDRS: &str = "VPC_CIDRS";
pub const ENV_FLOW_LOG_FORMAT: &str = "FLOW_LOG_FORMAT";
pub const ENV_IGNORE_SOURCE_CIDRS: &str = "IGNORE_SOURCE_CIDRS";
pub const ENV_PORT_SCAN_THRESHOLD: &str = "PORT_SCAN_THRESHOLD";
pub const ENV_HOST_SWEEP_THRESHOLD: &str = "HOST_SWEEP_THRESHOLD";
pub const ENV_MAX_DECODED_BYTES: &str = "MAX_DECODED_BYTES";
pub const ENV_INCIDENT_WINDOW: &str = "INCIDENT_WINDOW_SECONDS";
pub const ENV_COOLDOWN: &str = "ALERT_COOLDOWN_SECONDS";

/// Default for both severity thresholds.
pub const DEFAULT_THRESHOLD: usize = 10;
/// The highest threshold: distinct counts are exact up to this many (`detect::activity::SET_CAP`).
pub const MAX_THRESHOLD: usize = 1000;
/// Default cap on the decoded size of one event or JSON input: CloudWatch Logs sends at most
/// 1 MB of log events in one batch, so 16 MiB leaves a wide margin while a compression bomb
/// stops long before it can exhaust a 128 MB function.
pub const DEFAULT_MAX_DECODED_BYTES: usize = 16 * 1024 * 1024;
/// An incident stays open while its source's findings arrive less than an hour apart.
pub const DEFAULT_INCIDENT_WINDOW: u64 = 3600;
/// At most one reminder an hour about an incident that goes on.
pub const DEFAULT_COOLDOWN: u64 = 3600;

/// A setting as given, with where it came from (a variable or a flag), for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSetting {
    pub origin: String,
    pub value: String,
}

/// The engine's settings as text, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    pub vpc_cidrs: Option<RawSetting>,
    pub ignore_cidrs: Option<RawSetting>,
    pub format: Option<RawSetting>,
    pub port_scan_threshold: Option<RawSetting>,
    pub host_sweep_threshold: Option<RawSetting>,
    pub max_decoded_bytes: Option<RawSetting>,
    pub incident_window: Option<RawSetting>,
    pub cooldown: Option<RawSetting>,
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin} is required: the VPC's CIDR blocks, comma-separated (for example 10.0.0.0/16,2600:1f18:1234::/56)")]
    Missing { origin: String },
    #[error("{origin}={value:?}: {reason}")]
    Invalid {
        origin: String,
        value: String,
        reason: String,
    },
}

/// The validated configuration the pipeline trusts.
#[derive(Debug, Clone)]
pub struct Config {
    pub vpc_cidrs: Vec<IpNet>,
    pub ignore_cidrs: Vec<IpNet>,
    pub format: FlowFormat,
    pub max_decoded_bytes: usize,
    /// How incidents are kept and when they send messages.
    pub incidents: IncidentPolicy,
    /// Whether gzip input is inflated on a thread of its own, beside the one that scans it:
    /// by default when the machine has more than one core.
    pub inflate_apart: bool,
}

/// Severity thresholds: distinct probed ports, distinct probed hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub port_scan: usize,
    pub host_sweep: usize,
}

/// The incident layer's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentPolicy {
    pub thresholds: Thresholds,
    /// A finding this many seconds or more after the source's last one opens a new incident.
    pub window: u64,
    /// Seconds between reminders about an incident that goes on (0: every delivery).
    pub cooldown: u64,
}

impl RawSetting {
    pub fn new(origin: impl Into<String>, value: impl Into<String>) -> RawSetting {
        RawSetting {
            origin: origin.into(),
            value: value.into(),
        }
    }

    fn invalid(&self, reason: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.clone(),
            value: self.value.clone(),
            reason: reason.to_string(),
        }
    }
}

/// Reads variable `name` through `lookup`; an empty value counts as unset, because deployment
/// tools (SAM among them) pass empty strings for optional parameters.
pub fn env_setting(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<RawSetting> {
    lookup(name)
        .filter(|v| !v.trim().is_empty())
        .map(|v| RawSetting::new(name, v))
}

impl RawConfig {
    /// The settings found in the environment, read through `lookup` (`std::env::var` in the
    /// binaries, a map in tests).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> RawConfig {
        RawConfig {
            vpc_cidrs: env_setting(&lookup, ENV_VPC_CIDRS),
            ignore_cidrs: env_setting(&lookup, ENV_IGNORE_SOURCE_CIDRS),
            format: env_setting(&lookup, ENV_FLOW_LOG_FORMAT),
            port_scan_threshold: env_setting(&lookup, ENV_PORT_SCAN_THRESHOLD),
            host_sweep_threshold: env_setting(&lookup, ENV_HOST_SWEEP_THRESHOLD),
            max_decoded_bytes: env_setting(&lookup, ENV_MAX_DECODED_BYTES),
            incident_window: env_setting(&lookup, ENV_INCIDENT_WINDOW),
            cooldown: env_setting(&lookup, ENV_COOLDOWN),
        }
    }

    /// Validates every setting into a [`Config`].
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let vpc = self
            .vpc_cidrs
            .as_ref()
            .ok_or_else(|| ConfigError::Missing {
                origin: ENV_VPC_CIDRS.into(),
            })?;
        let vpc_cidrs = parse_cidrs(vpc)?;
        if vpc_cidrs.is_empty() {
            return Err(ConfigError::Missing {
                origin: vpc.origin.clone(),
            });
        }
        let ignore_cidrs = match &self.ignore_cidrs {
            Some(s) => parse_cidrs(s)?,
            None => Vec::new(),
        };
        let format = match &self.format {
            Some(s) => FlowFormat::parse(&s.value).map_err(|e: FormatError| s.invalid(e))?,
            None => FlowFormat::default_v2(),
        };
        let thresholds = Thresholds {
            port_scan: parse_threshold(self.port_scan_threshold.as_ref())?,
            host_sweep: parse_threshold(self.host_sweep_threshold.as_ref())?,
        };
        Ok(Config {
            vpc_cidrs,
            ignore_cidrs,
            format,
            max_decoded_bytes: parse_count(
                self.max_decoded_bytes.as_ref(),
                DEFAULT_MAX_DECODED_BYTES,
            )?,
            incidents: IncidentPolicy {
                thresholds,
                window: parse_count(
                    self.incident_window.as_ref(),
                    DEFAULT_INCIDENT_WINDOW as usize,
                )? as u64,
                cooldown: parse_seconds(self.cooldown.as_ref(), DEFAULT_COOLDOWN)?,
            },
            inflate_apart: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
        })
    }
}

impl Config {
    /// The defaults for everything but the VPC's CIDR blocks (comma-separated), as if only
    /// `VPC_CIDRS` were set.
    pub fn with_vpc_cidrs(cidrs: &str) -> Result<Config, ConfigError> {
        RawConfig {
            vpc_cidrs: Some(RawSetting::new(ENV_VPC_CIDRS, cidrs)),
            ..RawConfig::default()
        }
        .validate()
    }

    /// Whether `source` is one of the VPC's own addresses and not an ignored one.
    pub fn is_internal_source(&self, source: IpAddr) -> bool {
        self.vpc_cidrs.iter().any(|net| net.contains(&source))
            && !self.ignore_cidrs.iter().any(|net| net.contains(&source))
    }
}

/// Parses a positive whole number, or returns `default` when the setting is absent.
pub fn parse_count(setting: Option<&RawSetting>, default: usize) -> Result<usize, ConfigError> {
    let Some(s) = setting else {
        return Ok(default);
    };
    match s.value.trim().parse::<usize>() {
        Ok(0) => Err(s.invalid("must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(s.invalid("not a whole number")),
    }
}

/// A threshold of distinct ports or hosts: at most [`MAX_THRESHOLD`], as distinct counts are
/// exact only that far.
fn parse_threshold(setting: Option<&RawSetting>) -> Result<usize, ConfigError> {
    let n = parse_count(setting, DEFAULT_THRESHOLD)?;
    match setting {
        Some(s) if n > MAX_THRESHOLD => Err(s.invalid(format_args!(
            "at most {MAX_THRESHOLD}: distinct ports and hosts are counted exactly up to {MAX_THRESHOLD}"
        ))),
        _ => Ok(n),
    }
}

/// Parses a whole number of seconds, zero included, or returns `default` when absent.
pub fn parse_seconds(setting: Option<&RawSetting>, default: u64) -> Result<u64, ConfigError> {
    let Some(s) = setting else {
        return Ok(default);
    };
    s.value
        .trim()
        .parse::<u64>()
        .map_err(|_| s.invalid("not a whole number of seconds"))
}

/// Parses a comma-separated list of CIDR blocks; a bare address is a single-host block.
fn parse_cidrs(setting: &RawSetting) -> Result<Vec<IpNet>, ConfigError> {
    setting
        .value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            parse_cidr(item).ok_or_else(|| {
                setting.invalid(format_args!(
                    "`{item}` is not a CIDR block (expected an address and a prefix length, like 10.0.0.0/16 or 2600:1f18::/56)"
                ))
            })
        })
        .collect()
}

fn parse_cidr(item: &str) -> Option<IpNet> {
    let net = if let Ok(net) = item.parse::<IpNet>() {
        net.trunc()
    } else if item.contains('/') {
        return None;
    } else {
        IpNet::from(item.parse::<IpAddr>().ok()?)
    };
    Some(fold_mapped(net))
}

/// `::ffff:10.0.0.0/104` is `10.0.0.0/8`: records' IPv4-mapped addresses are folded into IPv4,
/// so the configuration's are too, or they would match nothing.
fn fold_mapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RawConfig::from_env(|k| map.get(k).cloned()).validate()
    }

    #[test]
    fn vpc_cidrs_are_required() {
        let err = config(&[]).unwrap_err();
        assert!(
            err.to_string().starts_with("VPC_CIDRS is required"),
            "{err}"
        );
        assert!(config(&[("VPC_CIDRS", " , ")]).is_err());
    }

    #[test]
    fn several_cidrs_of_both_families_are_accepted() {
        let c = config(&[("VPC_CIDRS", "10.0.0.0/16, 2600:1f18:1234::/56,192.168.1.7")]).unwrap();
        assert_eq!(c.vpc_cidrs.len(), 3);
        assert!(c.is_internal_source("10.0.200.1".parse().unwrap()));
        assert!(c.is_internal_source("2600:1f18:1234:ff::5".parse().unwrap()));
        assert!(c.is_internal_source("192.168.1.7".parse().unwrap()));
        assert!(!c.is_internal_source("192.168.1.8".parse().unwrap()));
        assert!(!c.is_internal_source("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn ipv4_mapped_cidrs_and_addresses_are_read_as_ipv4() {
        let c = config(&[
            ("VPC_CIDRS", "::ffff:10.0.0.0/104"),
            ("IGNORE_SOURCE_CIDRS", "::ffff:10.0.5.9"),
        ])
        .unwrap();
        assert_eq!(c.vpc_cidrs[0].to_string(), "10.0.0.0/8");
        assert!(c.is_internal_source("10.1.2.3".parse().unwrap()));
        assert!(!c.is_internal_source("10.0.5.9".parse().unwrap()));
    }

    #[test]
    fn ignored_cidrs_win_over_vpc_cidrs() {
        let c = config(&[
            ("VPC_CIDRS", "10.0.0.0/16"),
            ("IGNORE_SOURCE_CIDRS", "10.0.9.0/24"),
        ])
        .unwrap();
        assert!(!c.is_internal_source("10.0.9.4".parse().unwrap()));
        assert!(c.is_internal_source("10.0.8.4".parse().unwrap()));
    }

    #[test]
    fn a_bad_cidr_names_the_variable_and_the_value() {
        let err = config(&[("VPC_CIDRS", "10.0.0.0/33")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("VPC_CIDRS=\"10.0.0.0/33\""), "{text}");
        assert!(text.contains("not a CIDR block"), "{text}");
    }

    #[test]
    fn a_bad_threshold_names_the_variable() {
        let err =
            config(&[("VPC_CIDRS", "10.0.0.0/8"), ("PORT_SCAN_THRESHOLD", "ten")]).unwrap_err();
        assert!(err.to_string().contains("PORT_SCAN_THRESHOLD=\"ten\""));
        assert!(config(&[("VPC_CIDRS", "10.0.0.0/8"), ("HOST_SWEEP_THRESHOLD", "0")]).is_err());
        let err = config(&[
            ("VPC_CIDRS", "10.0.0.0/8"),
            ("HOST_SWEEP_THRESHOLD", "1001"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("at most 1000"), "{err}");
    }

    #[test]
    fn a_format_without_action_fails_with_the_variable_named() {
        let err = config(&[
            ("VPC_CIDRS", "10.0.0.0/8"),
            ("FLOW_LOG_FORMAT", "${srcaddr}"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("FLOW_LOG_FORMAT="), "{text}");
        assert!(text.contains("no `action` field"), "{text}");
    }

    #[test]
    fn empty_optional_variables_mean_the_defaults() {
        let c = config(&[
            ("VPC_CIDRS", "10.0.0.0/8"),
            ("FLOW_LOG_FORMAT", ""),
            ("IGNORE_SOURCE_CIDRS", ""),
        ])
        .unwrap();
        assert_eq!(c.format, FlowFormat::default_v2());
        assert!(c.ignore_cidrs.is_empty());
        assert_eq!(
            c.incidents.thresholds,
            Thresholds {
                port_scan: 10,
                host_sweep: 10
            }
        );
        assert_eq!((c.incidents.window, c.incidents.cooldown), (3600, 3600));
    }

    #[test]
    fn the_incident_window_and_cooldown_are_read_in_seconds() {
        let c = config(&[
            ("VPC_CIDRS", "10.0.0.0/8"),
            ("INCIDENT_WINDOW_SECONDS", "600"),
            ("ALERT_COOLDOWN_SECONDS", "0"),
        ])
        .unwrap();
        assert_eq!((c.incidents.window, c.incidents.cooldown), (600, 0));
        let err = config(&[
            ("VPC_CIDRS", "10.0.0.0/8"),
            ("INCIDENT_WINDOW_SECONDS", "0"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("INCIDENT_WINDOW_SECONDS"), "{err}");
    }
}
