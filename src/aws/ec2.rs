//! Who owns an address: the EC2 network interface (and instance, with its `Name` tag) behind
//! each alert's sender, so that a responder reads `web-7 (10.0.3.7)` instead of an address.
//!
//! One `DescribeNetworkInterfaces` call for all the new sources of an invocation (filtered on
//! `addresses.private-ip-address`, or `ipv6-addresses.ipv6-address` for IPv6), one
//! `DescribeInstances` for their instances' names. Results, negative ones too, are cached per
//! instance with an expiry and a bound. A lookup never holds up publishing for longer than its
//! budget: on a timeout, throttling or a denied call, the alerts go out without it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, NetworkInterface};

use super::error_text;
use crate::detect::alert::Owner;

/// How long a lookup may take before the alerts go out without it.
pub const LOOKUP_BUDGET: Duration = Duration::from_secs(1);
/// How long an answer is kept (an address can change hands when its interface is deleted).
pub const CACHE_TTL: Duration = Duration::from_secs(10 * 60);
/// Addresses remembered, at most.
pub const CACHE_MAX: usize = 10_000;
/// Values one EC2 filter takes.
const FILTER_VALUES: usize = 200;

/// The lookup failed or took too long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("looking up the senders in EC2: {0}")]
pub struct LookupError(pub String);

/// Finds the owners of addresses, with a cache.
#[derive(Debug)]
pub struct SenderLookup {
    client: aws_sdk_ec2::Client,
    budget: Duration,
    cache: Mutex<HashMap<IpAddr, (Instant, Owner)>>,
}

impl SenderLookup {
    pub fn new(client: aws_sdk_ec2::Client) -> SenderLookup {
        SenderLookup {
            client,
            budget: LOOKUP_BUDGET,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Waits up to `budget` instead of [`LOOKUP_BUDGET`] (the command line can wait longer).
    pub fn with_budget(mut self, budget: Duration) -> SenderLookup {
        self.budget = budget;
        self
    }

    /// Fills in the owner of each alert's sender; on a failure the alerts stay as they are.
    pub async fn enrich(
        &self,
        alerts: &mut [crate::detect::alert::Alert],
    ) -> Result<(), LookupError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let sources: Vec<IpAddr> = alerts.iter().map(|a| a.source).collect();
        let owners = self.owners(&sources).await?;
        for alert in alerts {
            alert.owner = owners.get(&alert.source).cloned();
        }
        Ok(())
    }

    /// The owners of `addresses` (an owner with `found: false` for an address nothing visible
    /// has). Cached answers come first; the rest is asked of EC2 within the budget.
    pub async fn owners(
        &self,
        addresses: &[IpAddr],
    ) -> Result<HashMap<IpAddr, Owner>, LookupError> {
        let now = Instant::now();
        let mut found: HashMap<IpAddr, Owner> = HashMap::new();
        let mut missing: Vec<IpAddr> = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for &address in addresses.iter().collect::<HashSet<_>>() {
                match cache.get(&address) {
                    Some((at, owner)) if now.duration_since(*at) < CACHE_TTL => {
                        found.insert(address, owner.clone());
                    }
                    _ => missing.push(address),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let looked_up = tokio::time::timeout(self.budget, self.describe(&missing))
            .await
            .map_err(|_| {
                LookupError(format!("no answer within {} ms", self.budget.as_millis()))
            })??;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() + missing.len() > CACHE_MAX {
            cache.retain(|_, (at, _)| now.duration_since(*at) < CACHE_TTL);
            if cache.len() + missing.len() > CACHE_MAX {
                cache.clear();
            }
        }
        for address in missing {
            let owner = looked_up.get(&address).cloned().unwrap_or_default();
            cache.insert(address, (now, owner.clone()));
            found.insert(address, owner);
        }
        Ok(found)
    }

    async fn describe(&self, addresses: &[IpAddr]) -> Result<HashMap<IpAddr, Owner>, LookupError> {
        let wanted: HashSet<IpAddr> = addresses.iter().copied().collect();
        let v4: Vec<String> = addresses
            .iter()
            .filter(|a| a.is_ipv4())
            .map(ToString::to_string)
            .collect();
        let v6: Vec<String> = addresses
            .iter()
            .filter(|a| a.is_ipv6())
            .map(ToString::to_string)
            .collect();
        let mut owners: HashMap<IpAddr, Owner> = HashMap::new();
        for (filter, values) in [
            ("addresses.private-ip-address", v4),
            ("ipv6-addresses.ipv6-address", v6),
        ] {
            for chunk in values.chunks(FILTER_VALUES) {
                let out = self
                    .client
                    .describe_network_interfaces()
                    .filters(
                        Filter::builder()
                            .name(filter)
                            .set_values(Some(chunk.to_vec()))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| {
                        LookupError(format!("DescribeNetworkInterfaces: {}", error_text(&e)))
                    })?;
                for interface in out.network_interfaces() {
                    for address in interface_addresses(interface) {
                        if wanted.contains(&address) {
                            owners.insert(address, owner_of(interface));
                        }
                    }
                }
            }
        }
        let instances: Vec<String> = owners
            .values()
            .filter_map(|o| o.instance_id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !instances.is_empty() {
            let names = self.names(instances).await?;
            for owner in owners.values_mut() {
                owner.name = owner
                    .instance_id
                    .as_ref()
                    .and_then(|i| names.get(i).cloned());
            }
        }
        Ok(owners)
    }

    /// The `Name` tags of instances.
    async fn names(&self, instances: Vec<String>) -> Result<HashMap<String, String>, LookupError> {
        let out = self
            .client
            .describe_instances()
            .set_instance_ids(Some(instances))
            .send()
            .await
            .map_err(|e| LookupError(format!("DescribeInstances: {}", error_text(&e))))?;
        Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| {
                let name = i.tags().iter().find(|t| t.key() == Some("Name"))?.value()?;
                Some((i.instance_id()?.to_string(), name.to_string()))
            })
            .collect())
    }
}

/// Every address of an interface, IPv4 and IPv6.
fn interface_addresses(i: &NetworkInterface) -> Vec<IpAddr> {
    let v4 = i
        .private_ip_addresses()
        .iter()
        .filter_map(|a| a.private_ip_address())
        .chain(i.private_ip_address());
    let v6 = i.ipv6_addresses().iter().filter_map(|a| a.ipv6_address());
    v4.chain(v6)
        .filter_map(|a| a.parse::<IpAddr>().ok().map(|a| a.to_canonical()))
        .collect()
}

/// What an interface says about its owner.
pub fn owner_of(i: &NetworkInterface) -> Owner {
    Owner {
        found: true,
        interface_id: i.network_interface_id().map(str::to_owned),
        interface_type: i.interface_type().map(|t| t.as_str().to_owned()),
        description: i.description().filter(|d| !d.is_empty()).map(str::to_owned),
        instance_id: i
            .attachment()
            .and_then(|a| a.instance_id())
            .map(str::to_owned),
        name: None,
        security_groups: i
            .groups()
            .iter()
            .filter_map(|g| match (g.group_id(), g.group_name()) {
                (Some(id), Some(name)) => Some(format!("{id} ({name})")),
                (Some(id), None) => Some(id.to_owned()),
                _ => None,
            })
            .collect(),
        subnet_id: i.subnet_id().map(str::to_owned),
        vpc_id: i.vpc_id().map(str::to_owned),
        availability_zone: i.availability_zone().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{
        GroupIdentifier, NetworkInterfaceAttachment, NetworkInterfacePrivateIpAddress,
        NetworkInterfaceType,
    };

    #[test]
    fn a_nat_gateway_interface_says_what_it_is_and_has_no_instance() {
        let nat = NetworkInterface::builder()
            .network_interface_id("eni-0nat")
            .interface_type(NetworkInterfaceType::NatGateway)
            .description("Interface for NAT Gateway nat-0abc")
            .private_ip_address("10.0.0.9")
            .subnet_id("subnet-1")
            .vpc_id("vpc-1")
            .availability_zone("us-east-1a")
            .build();
        let owner = owner_of(&nat);
        assert_eq!(owner.interface_type.as_deref(), Some("natGateway"));
        assert_eq!(owner.instance_id, None);
        assert_eq!(
            owner.description.as_deref(),
            Some("Interface for NAT Gateway nat-0abc")
        );
        assert_eq!(
            interface_addresses(&nat),
            ["10.0.0.9".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn an_instance_interface_names_its_instance_groups_and_every_address() {
        let eni = NetworkInterface::builder()
            .network_interface_id("eni-0web")
            .interface_type(NetworkInterfaceType::Interface)
            .attachment(
                NetworkInterfaceAttachment::builder()
                    .instance_id("i-0web")
                    .build(),
            )
            .groups(
                GroupIdentifier::builder()
                    .group_id("sg-0123")
                    .group_name("web")
                    .build(),
            )
            .private_ip_addresses(
                NetworkInterfacePrivateIpAddress::builder()
                    .private_ip_address("10.0.3.7")
                    .build(),
            )
            .private_ip_addresses(
                NetworkInterfacePrivateIpAddress::builder()
                    .private_ip_address("10.0.3.8")
                    .build(),
            )
            .build();
        let owner = owner_of(&eni);
        assert_eq!(owner.instance_id.as_deref(), Some("i-0web"));
        assert_eq!(owner.security_groups, ["sg-0123 (web)"]);
        assert_eq!(interface_addresses(&eni).len(), 2);
    }
}
