//! What one delivery shows each source did: its findings grouped per source address.
//!
//! One delivery (a CloudWatch Logs payload, one S3 file) holds a slice of an incident: one
//! interface's records for one aggregation interval. [`Activity`] is that slice for one
//! source, in a bounded size: distinct destinations and ports are exact up to a cap, then
//! counted as "at least". Incidents ([`crate::detect::incident`]) add slices up across
//! deliveries.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::detect::rule::{Direction, Finding};

/// Distinct destinations, ports, peers and service ports are exact up to this many.
pub const SET_CAP: usize = crate::config::MAX_THRESHOLD;
/// Ids of interfaces, instances, subnets and VPCs, log streams and accounts kept, at most.
pub const ID_CAP: usize = 100;

/// A set that keeps at most `N` values and remembers whether it had to drop any.
///
/// The values are sorted [`Slots`]: one in place, more in a slice of exactly their number, not
/// a tree nor a vector with room to grow: most sources touch a handful of hosts and ports, and
/// a delivery may hold tens of thousands of sources (a tree node is 11 slots whatever the
/// count, a vector doubles). A second or later value costs a reallocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capped<T: Ord, const N: usize> {
    values: Slots<T>,
    /// A value was dropped (or, read back from the shared store, the set was full): the true
    /// count is at least `len()`.
    pub overflow: bool,
}

impl<T: Ord, const N: usize> Default for Capped<T, N> {
    fn default() -> Self {
        Capped {
            values: Slots::default(),
            overflow: false,
        }
    }
}

impl<T: Ord, const N: usize> Capped<T, N> {
    /// Whether the set is at its cap and has dropped a value: nothing added can change it
    /// (a value it holds stays, any other is dropped), so it is not even looked up. A busy
    /// source fills its sets early; the rest of its records skip the searches.
    fn settled(&self) -> bool {
        self.overflow && self.values.as_slice().len() >= N
    }

    pub fn insert(&mut self, value: T) {
        if self.settled() {
            return;
        }
        if let Err(at) = self.values.as_slice().binary_search(&value) {
            self.insert_at(at, || value);
        }
    }

    fn insert_at(&mut self, at: usize, make: impl FnOnce() -> T) {
        if self.values.as_slice().len() < N {
            self.values.insert(at, make());
        } else {
            self.overflow = true;
        }
    }

    /// Inserts a value that is built only when it is new and there is room for it.
    pub fn insert_with<Q>(&mut self, key: &Q, make: impl FnOnce() -> T)
    where
        T: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if self.settled() {
            return;
        }
        if let Err(at) = self
            .values
            .as_slice()
            .binary_search_by(|v| v.borrow().cmp(key))
        {
            self.insert_at(at, make);
        }
    }

    pub fn extend_from(&mut self, other: &Capped<T, N>)
    where
        T: Clone,
    {
        self.overflow |=
            merge_sorted(&mut self.values, other.values.as_slice(), N) | other.overflow;
    }

    pub fn len(&self) -> usize {
        self.values.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.as_slice().is_empty()
    }

    /// Whether every value seen is here (the count is exact).
    pub fn is_exact(&self) -> bool {
        !self.overflow
    }

    /// The values, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.values.as_slice().iter()
    }

    /// The lowest `n` values.
    pub fn lowest(&self, n: usize) -> Vec<T>
    where
        T: Clone,
    {
        self.values.as_slice().iter().take(n).cloned().collect()
    }
}

/// Sorted values: a single one in place (most sets of a source hold one protocol, one account,
/// one log stream, often one host and port: no allocation), more in a slice of exactly their
/// number. Always in the one form for a count (one value is never a slice), so the derived
/// equality compares the values. The same size as the slice alone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slots<T> {
    One(T),
    Many(Box<[T]>),
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots::Many(Box::default())
    }
}

impl<T> Slots<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            Slots::One(value) => std::slice::from_ref(value),
            Slots::Many(values) => values,
        }
    }

    /// Asks for the first of the values held apart (see [`prefetch`]).
    fn prefetch(&self) {
        if let Slots::Many(values) = self {
            if let Some(first) = values.first() {
                prefetch(first);
            }
        }
    }

    /// The values in a vector with room for `extra` more.
    fn into_vec(self, extra: usize) -> Vec<T> {
        match self {
            Slots::One(value) => {
                let mut values = Vec::with_capacity(1 + extra);
                values.push(value);
                values
            }
            Slots::Many(values) => {
                let mut values = values.into_vec();
                values.reserve_exact(extra);
                values
            }
        }
    }

    fn from_vec(mut values: Vec<T>) -> Slots<T> {
        match values.len() {
            1 => Slots::One(values.pop().expect("one value")),
            _ => Slots::Many(values.into_boxed_slice()),
        }
    }

    /// Puts `value` at `at` (one reallocation from the second value on).
    fn insert(&mut self, at: usize, value: T) {
        if self.as_slice().is_empty() {
            *self = Slots::One(value);
            return;
        }
        let mut grown = std::mem::take(self).into_vec(1);
        grown.insert(at, value);
        *self = Slots::from_vec(grown);
    }
}

/// Adds the values of `other` that `values` lacks, while it holds fewer than `room`, in one
/// vector for the whole merge (a set of a thousand would otherwise reallocate a thousand
/// times), back to exact slots at the end. True when a value did not fit.
fn merge_sorted<T: Ord + Clone>(values: &mut Slots<T>, other: &[T], room: usize) -> bool {
    if other.is_empty() {
        return false;
    }
    let mut merged = std::mem::take(values).into_vec(0);
    let mut dropped = false;
    for v in other {
        if let Err(at) = merged.binary_search(v) {
            if merged.len() < room {
                merged.insert(at, v.clone());
            } else {
                dropped = true;
            }
        }
    }
    *values = Slots::from_vec(merged);
    dropped
}

impl<T: Ord, const N: usize> FromIterator<T> for Capped<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut set = Capped::default();
        for v in iter {
            set.insert(v);
        }
        set
    }
}

/// A [`Capped`] set of addresses that keeps IPv4 addresses in four bytes each (an `IpAddr` takes
/// seventeen): a delivery's thousands of sources each keep the hosts they probed. IPv6
/// addresses, rare in flow logs, are kept apart. Lowest first means every IPv4 address before
/// any IPv6 one, as `IpAddr` orders them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addrs<const N: usize> {
    v4: Slots<u32>,
    /// One word while empty, as nearly all are: a `Vec` would take three.
    #[allow(clippy::box_collection)]
    v6: Option<Box<Vec<Ipv6Addr>>>,
    /// As in [`Capped`]: the true count is at least `len()`.
    pub overflow: bool,
}

impl<const N: usize> Addrs<N> {
    pub fn insert(&mut self, value: IpAddr) {
        let full = self.len() >= N;
        if full && self.overflow {
            return; // settled, as a full [`Capped`] that has dropped a value
        }
        match value {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                if let Err(at) = self.v4.as_slice().binary_search(&a) {
                    if full {
                        self.overflow = true;
                    } else {
                        self.v4.insert(at, a);
                    }
                }
            }
            IpAddr::V6(a) => {
                let v6 = self.v6.get_or_insert_with(Box::default);
                if let Err(at) = v6.binary_search(&a) {
                    if full {
                        self.overflow = true;
                    } else {
                        v6.insert(at, a);
                    }
                }
                if v6.is_empty() {
                    self.v6 = None;
                }
            }
        }
    }

    pub fn extend_from(&mut self, other: &Addrs<N>) {
        let room = N.saturating_sub(self.v6.as_ref().map_or(0, |v| v.len()));
        self.overflow |= merge_sorted(&mut self.v4, other.v4.as_slice(), room);
        for &a in other.v6.iter().flat_map(|v| v.iter()) {
            self.insert(IpAddr::V6(a));
        }
        self.overflow |= other.overflow;
    }

    pub fn len(&self) -> usize {
        self.v4.as_slice().len() + self.v6.as_ref().map_or(0, |v| v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every value seen is here (the count is exact).
    pub fn is_exact(&self) -> bool {
        !self.overflow
    }

    /// The addresses, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self
            .v4
            .as_slice()
            .iter()
            .map(|&a| IpAddr::V4(Ipv4Addr::from(a)));
        let v6 = self
            .v6
            .iter()
            .flat_map(|v| v.iter())
            .map(|&a| IpAddr::V6(a));
        v4.chain(v6)
    }

    /// The lowest `n` addresses.
    pub fn lowest(&self, n: usize) -> Vec<IpAddr> {
        self.iter().take(n).collect()
    }
}

impl<const N: usize> FromIterator<IpAddr> for Addrs<N> {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(iter: I) -> Self {
        let mut set = Addrs::default();
        for v in iter {
            set.insert(v);
        }
        set
    }
}

/// A set that stops taking values at its cap: read back from a store, a set at its cap is
/// marked "at least".
pub trait AtLeast {
    fn mark_at_least(&mut self);
}

impl<T: Ord, const N: usize> AtLeast for Capped<T, N> {
    fn mark_at_least(&mut self) {
        self.overflow = true;
    }
}

impl<const N: usize> AtLeast for Addrs<N> {
    fn mark_at_least(&mut self) {
        self.overflow = true;
    }
}

/// An id (interface, instance, subnet, VPC, log stream, account): shared text, so the thousands
/// of sources seen at the same few interfaces of one delivery hold one copy of each name, and
/// a pointer to it: one word per id in a set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(Arc<String>);

impl From<&str> for Id {
    fn from(text: &str) -> Id {
        Id(Arc::new(text.to_owned()))
    }
}

impl std::str::FromStr for Id {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Id, Self::Err> {
        Ok(Id::from(text))
    }
}

impl std::borrow::Borrow<str> for Id {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Id {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_str() == *other
    }
}

/// One copy of each id text per delivery.
#[derive(Debug, Default)]
pub struct Ids(HashSet<Id>);

impl Ids {
    pub fn get(&mut self, text: &str) -> Id {
        if let Some(id) = self.0.get(text) {
            return id.clone();
        }
        let id = Id::from(text);
        self.0.insert(id.clone());
        id
    }
}

/// What one source did in one delivery (or, added up, in one incident).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub source: IpAddr,
    /// Finding records, probes and responses together.
    pub records: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Findings that are probes: they count toward the port-scan and host-sweep thresholds.
    pub probes: u64,
    /// Findings that are replies a network ACL dropped (see [`Finding::is_response`]): where
    /// they went and came from. `None` while there are none, as for nearly every source: a
    /// delivery's tens of thousands of sources each keep one word, not three sets' worth.
    responses: Option<Box<Responses>>,
    /// Destinations of the probes.
    pub destinations: Addrs<SET_CAP>,
    /// Destination ports of the probes.
    pub ports: Capped<u16, SET_CAP>,
    /// IANA protocol numbers.
    pub protocols: Capped<u8, 256>,
    /// Interface, instance, subnet and VPC ids of the records captured on a receiver's
    /// interface (`ingress`) or with no direction: where the traffic was rejected, usually the
    /// target's, never evidence of who the sender is.
    pub rejected_at: Capped<Id, ID_CAP>,
    /// The same ids from `egress` records: the sender's own interface.
    pub sender_at: Capped<Id, ID_CAP>,
    pub log_streams: Capped<Id, ID_CAP>,
    /// Owners of the interfaces where the records were captured.
    pub accounts: Capped<Id, ID_CAP>,
    /// Earliest `start` and latest `end` of the records, in seconds.
    first_seen: Time,
    last_seen: Time,
}

/// A delivery's slice of one source, lent or handed over: an incident opened from a slice
/// handed over keeps it instead of a copy (a file of tens of thousands of sources would
/// otherwise copy every one, sets and all, only to drop the original).
pub trait Slice {
    fn activity(&self) -> &Activity;
    fn into_activity(self) -> Activity;
}

impl Slice for Activity {
    fn activity(&self) -> &Activity {
        self
    }
    fn into_activity(self) -> Activity {
        self
    }
}

impl Slice for &Activity {
    fn activity(&self) -> &Activity {
        self
    }
    fn into_activity(self) -> Activity {
        self.clone()
    }
}

/// An optional time in one word: the seconds plus one, zero for none (`Option<u64>` takes two
/// words, and a delivery holds tens of thousands of activities). Exact for every time but
/// `u64::MAX`, which no record gives: a record's milliseconds are read as seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Time(Option<std::num::NonZeroU64>);

impl Time {
    fn new(seconds: Option<u64>) -> Time {
        Time(seconds.and_then(|s| std::num::NonZeroU64::new(s.saturating_add(1))))
    }

    fn get(self) -> Option<u64> {
        self.0.map(|t| t.get() - 1)
    }
}

/// The rejected replies of a source (see [`Activity::responses`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Responses {
    /// How many findings.
    pub count: u64,
    /// Where the rejected responses were going (the clients).
    pub peers: Addrs<SET_CAP>,
    /// The ports the rejected responses came from (the source's services).
    pub service_ports: Capped<u16, SET_CAP>,
}

impl Responses {
    fn is_empty(&self) -> bool {
        self == &Responses::default()
    }
}

/// What an activity without rejected replies shows of them.
static NO_RESPONSES: std::sync::LazyLock<Responses> = std::sync::LazyLock::new(Responses::default);

impl Activity {
    /// The rejected replies: none, as for most sources, or how many, to whom and from which
    /// ports.
    pub fn responses(&self) -> &Responses {
        self.responses.as_deref().unwrap_or(&NO_RESPONSES)
    }

    /// Sets the rejected replies (read back from the shared store). Nothing is kept for none,
    /// so that equal activities compare equal however they were made.
    pub fn set_responses(&mut self, responses: Responses) {
        self.responses = (!responses.is_empty()).then(|| Box::new(responses));
    }

    /// Earliest `start` of the records, in seconds.
    pub fn first_seen(&self) -> Option<u64> {
        self.first_seen.get()
    }

    /// Latest `end` of the records, in seconds.
    pub fn last_seen(&self) -> Option<u64> {
        self.last_seen.get()
    }

    /// Sets the earliest start and latest end (read back from the shared store).
    pub fn set_seen(&mut self, first: Option<u64>, last: Option<u64>) {
        self.first_seen = Time::new(first);
        self.last_seen = Time::new(last);
    }

    pub fn new(source: IpAddr) -> Activity {
        Activity {
            source,
            records: 0,
            packets: 0,
            bytes: 0,
            probes: 0,
            responses: None,
            destinations: Addrs::default(),
            ports: Capped::default(),
            protocols: Capped::default(),
            rejected_at: Capped::default(),
            sender_at: Capped::default(),
            log_streams: Capped::default(),
            accounts: Capped::default(),
            first_seen: Time::default(),
            last_seen: Time::default(),
        }
    }

    /// Adds one finding; `owner` is the account of the delivery, used when the record names none.
    pub fn add(&mut self, f: &Finding<'_>, owner: Option<&str>) {
        self.add_with(f, owner, &mut Ids::default());
    }

    /// [`Activity::add`], with the ids taken from `ids`.
    pub fn add_with(&mut self, f: &Finding<'_>, owner: Option<&str>, ids: &mut Ids) {
        self.records += 1;
        self.packets = self.packets.saturating_add(f.packets);
        self.bytes = self.bytes.saturating_add(f.bytes);
        if f.is_response() {
            let responses = self.responses.get_or_insert_default();
            responses.count += 1;
            if let Some(d) = f.destination {
                responses.peers.insert(d);
            }
            if let Some(p) = f.srcport {
                responses.service_ports.insert(p);
            }
        } else {
            self.probes += 1;
            if let Some(d) = f.destination {
                self.destinations.insert(d);
            }
            if let Some(p) = f.dstport {
                self.ports.insert(p);
            }
        }
        if let Some(p) = f.protocol {
            self.protocols.insert(p);
        }
        let place = match f.direction {
            Some(Direction::Egress) => &mut self.sender_at,
            _ => &mut self.rejected_at,
        };
        for id in [f.interface_id, f.instance_id, f.subnet_id, f.vpc_id]
            .into_iter()
            .flatten()
        {
            place.insert_with(id, || ids.get(id));
        }
        if let Some(account) = f.account.or(owner) {
            self.accounts.insert_with(account, || ids.get(account));
        }
        if let Some(start) = f.start.map(seconds) {
            self.first_seen = Time::new(min_some(self.first_seen(), Some(start)));
        }
        if let Some(end) = f.end.map(seconds) {
            self.last_seen = Time::new(self.last_seen().max(Some(end)));
        }
    }

    /// Asks for the values of the sets a finding most often adds to (see [`prefetch`]).
    fn prefetch_sets(&self) {
        self.destinations.v4.prefetch();
        self.ports.values.prefetch();
        self.rejected_at.values.prefetch();
        self.accounts.values.prefetch();
    }

    /// Adds up another slice of the same source.
    pub fn merge(&mut self, other: &Activity) {
        self.records = self.records.saturating_add(other.records);
        self.packets = self.packets.saturating_add(other.packets);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.probes = self.probes.saturating_add(other.probes);
        if let Some(theirs) = &other.responses {
            let ours = self.responses.get_or_insert_default();
            ours.count = ours.count.saturating_add(theirs.count);
            ours.peers.extend_from(&theirs.peers);
            ours.service_ports.extend_from(&theirs.service_ports);
        }
        self.destinations.extend_from(&other.destinations);
        self.ports.extend_from(&other.ports);
        self.protocols.extend_from(&other.protocols);
        self.rejected_at.extend_from(&other.rejected_at);
        self.sender_at.extend_from(&other.sender_at);
        self.log_streams.extend_from(&other.log_streams);
        self.accounts.extend_from(&other.accounts);
        self.first_seen = Time::new(min_some(self.first_seen(), other.first_seen()));
        self.last_seen = Time::new(self.last_seen().max(other.last_seen()));
    }
}

/// Asks for the cache lines `value` spans (of its first 256 bytes, so at most five) to be
/// brought in, without waiting for them: a hint, which changes nothing but when the memory is
/// read.
#[inline(always)]
fn prefetch<T>(value: &T) {
    let start = (value as *const T).cast::<u8>();
    // From the start of the cache line `value` starts in: an `Activity` is 256 bytes, but not
    // aligned to a line.
    let into_line = start as usize % 64;
    let first = start.wrapping_sub(into_line);
    for line in (0..into_line + std::mem::size_of::<T>().min(256)).step_by(64) {
        let at = first.wrapping_add(line);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch reads nothing the program sees and cannot fault.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(at.cast());
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above.
        unsafe {
            std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) at, options(nostack, readonly, preserves_flags));
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = at;
    }
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Record times in seconds: some records carry milliseconds (anything above 10^11, which in
/// seconds is the year 5138).
pub fn seconds(timestamp: u64) -> u64 {
    if timestamp >= 100_000_000_000 {
        timestamp / 1000
    } else {
        timestamp
    }
}

/// Groups the findings of one delivery per source.
///
/// The slices live in one vector, found through a map of addresses to positions: a map of
/// whole slices would spread a few hundred bytes per bucket over a table that is up to half
/// empty, which is most of the memory when a delivery has tens of thousands of sources.
#[derive(Debug, Default)]
pub struct Aggregator {
    positions: Positions,
    slices: Vec<Activity>,
    ids: Ids,
}

/// Each source's position in [`Aggregator`]'s slices, looked up once per finding: a fast hash
/// with a per-process seed instead of the default SipHash, and IPv4 sources (nearly all) in a
/// table of eight-byte entries ([`V4Positions`]), which stays in the processor's cache with
/// tens of thousands of sources where a map keyed by `IpAddr` (24-byte entries) misses it on
/// most lookups.
#[derive(Debug, Default)]
struct Positions {
    v4: V4Positions,
    v6: HashMap<u128, u32, foldhash::fast::RandomState>,
}

impl Positions {
    /// The position of `source`, given by `new` the first time; `hash` is
    /// [`Positions::hash`]'s.
    fn get_or_insert(&mut self, source: IpAddr, hash: u64, new: impl FnOnce() -> u32) -> u32 {
        match source {
            IpAddr::V4(a) => self.v4.get_or_insert(a.to_bits(), hash, new),
            IpAddr::V6(a) => *self.v6.entry(a.to_bits()).or_insert_with(new),
        }
    }

    /// The hash `source` is looked up with (IPv6 sources are looked up without it).
    fn hash(&self, source: IpAddr) -> u64 {
        match source {
            IpAddr::V4(a) => self.v4.state.hash_one(a.to_bits()),
            IpAddr::V6(_) => 0,
        }
    }

    /// Asks for the entry where a lookup of `source` starts (see [`prefetch`]).
    fn prefetch(&self, source: IpAddr, hash: u64) {
        if source.is_ipv4() && !self.v4.entries.is_empty() {
            prefetch(&self.v4.entries[self.v4.home(hash)]);
        }
    }
}

/// IPv4 sources' positions, in one array of (address, position) entries at most three
/// quarters full, each found from its hash by looking at the entries from its home on (linear
/// probing: the next entries are in the same cache line). Unlike with a standard map, the
/// entry where a lookup starts can be asked of memory before the lookup (see
/// [`Aggregator::add_ahead`]).
#[derive(Debug, Default)]
struct V4Positions {
    entries: Vec<(u32, u32)>,
    len: usize,
    state: foldhash::fast::RandomState,
}

/// The position of an empty entry: no slice has it (a slice is a source of a record, and an
/// input holds far fewer than 4 billion records: reading them would take hours).
const NO_POSITION: u32 = u32::MAX;

impl V4Positions {
    /// Where the lookup of `hash` starts: its high bits (the entries are a power of two, at
    /// least sixteen).
    fn home(&self, hash: u64) -> usize {
        debug_assert!(self.entries.len() >= 16);
        let bits = self.entries.len().trailing_zeros();
        (hash >> (64 - bits)) as usize
    }

    /// `address`'s position, or the empty entry where it would go.
    fn find(&self, address: u32, hash: u64) -> Result<u32, usize> {
        let mask = self.entries.len() - 1;
        let mut at = self.home(hash);
        loop {
            let (key, position) = self.entries[at];
            if position == NO_POSITION {
                return Err(at);
            }
            if key == address {
                return Ok(position);
            }
            at = (at + 1) & mask;
        }
    }

    fn get_or_insert(&mut self, address: u32, hash: u64, new: impl FnOnce() -> u32) -> u32 {
        if self.entries.is_empty() {
            self.grow();
        }
        let mut empty = match self.find(address, hash) {
            Ok(position) => return position,
            Err(at) => at,
        };
        if 4 * (self.len + 1) > 3 * self.entries.len() {
            self.grow();
            empty = self.find(address, hash).unwrap_err();
        }
        let position = new();
        self.entries[empty] = (address, position);
        self.len += 1;
        position
    }

    /// Twice the entries (sixteen at first), each entry moved to its new place.
    fn grow(&mut self) {
        let size = (2 * self.entries.len()).max(16);
        let old = std::mem::replace(&mut self.entries, vec![(0, NO_POSITION); size]);
        self.len = 0;
        for (address, position) in old {
            if position != NO_POSITION {
                let hash = self.state.hash_one(address);
                self.get_or_insert(address, hash, || position);
            }
        }
    }
}

/// How many findings wait in [`Pending`] while their entries and slices are fetched from
/// memory: a finding's position is looked up [`LOOKUP_AFTER`] findings after it was read (its
/// entry asked for when read), the sets of its slice asked for [`SETS_AFTER`] findings after,
/// and it is added [`AHEAD`] findings after.
const AHEAD: usize = 12;
const LOOKUP_AFTER: usize = 4;
const SETS_AFTER: usize = 8;
const _: () = assert!(0 < LOOKUP_AFTER && LOOKUP_AFTER < SETS_AFTER && SETS_AFTER < AHEAD);

/// Up to this many sources, the slices stay in the processor's cache, and findings are added
/// at once (a queue would only add its own work).
const CACHED_SOURCES: usize = 2048;

/// Findings read but not yet added (see [`Aggregator::add_ahead`]), oldest first, each with
/// the hash of its source and, once looked up, the position of its slice. They borrow the
/// lines they were read from: the queue must be emptied ([`Aggregator::catch_up`]) before
/// those go, which dropping it checks in tests and debug builds.
#[derive(Debug, Default)]
pub struct Pending<'a> {
    queue: std::collections::VecDeque<Queued<'a>>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        debug_assert!(
            self.queue.is_empty() || std::thread::panicking(),
            "findings left pending"
        );
    }
}

#[derive(Debug)]
struct Queued<'a> {
    hash: u64,
    /// [`NO_POSITION`] until looked up.
    at: u32,
    finding: Finding<'a>,
    owner: Option<&'a str>,
}

impl Aggregator {
    /// Adds a finding; `owner` is the account of the delivery, used when the record names none.
    pub fn add(&mut self, finding: &Finding<'_>, owner: Option<&str>) {
        let hash = self.positions.hash(finding.source);
        let at = self.position(finding.source, hash);
        self.slices[at as usize].add_with(finding, owner, &mut self.ids);
    }

    /// Adds a finding a few findings later, as [`Aggregator::add`] would now, its source's
    /// entry and slice asked of memory first. With tens of thousands of sources, they are
    /// rarely in the processor's cache; asked ahead, they arrive while the findings before are
    /// added, instead of each finding waiting for its own. With few sources, it is added at
    /// once. The findings are looked up and added in the order they come.
    pub fn add_ahead<'a>(
        &mut self,
        pending: &mut Pending<'a>,
        finding: Finding<'a>,
        owner: Option<&'a str>,
    ) {
        if pending.queue.is_empty() && self.slices.len() <= CACHED_SOURCES {
            self.add(&finding, owner);
            return;
        }
        let hash = self.positions.hash(finding.source);
        self.positions.prefetch(finding.source, hash);
        if pending.queue.len() >= AHEAD {
            self.add_next(pending);
        }
        // The finding read LOOKUP_AFTER findings ago: its entry has arrived.
        let len = pending.queue.len();
        if let Some(q) = len
            .checked_sub(LOOKUP_AFTER)
            .and_then(|i| pending.queue.get_mut(i))
        {
            q.at = self.position(q.finding.source, q.hash);
            prefetch(&self.slices[q.at as usize]);
        }
        // And SETS_AFTER ago: its slice has.
        if let Some(q) = len.checked_sub(SETS_AFTER).map(|i| &pending.queue[i]) {
            if q.at != NO_POSITION {
                self.slices[q.at as usize].prefetch_sets();
            }
        }
        pending.queue.push_back(Queued {
            hash,
            at: NO_POSITION,
            finding,
            owner,
        });
    }

    /// Adds every finding still in `pending`.
    pub fn catch_up(&mut self, pending: &mut Pending<'_>) {
        while !pending.queue.is_empty() {
            self.add_next(pending);
        }
    }

    fn add_next(&mut self, pending: &mut Pending<'_>) {
        if let Some(mut q) = pending.queue.pop_front() {
            if q.at == NO_POSITION {
                q.at = self.position(q.finding.source, q.hash);
            }
            self.slices[q.at as usize].add_with(&q.finding, q.owner, &mut self.ids);
        }
    }

    /// The position of `source`'s slice, made the first time; `hash` is
    /// [`Positions::hash`]'s.
    fn position(&mut self, source: IpAddr, hash: u64) -> u32 {
        let slices = &mut self.slices;
        self.positions.get_or_insert(source, hash, || {
            slices.push(Activity::new(source));
            // At most one slice per record, and a delivery's records are counted in u64s long
            // before 4 billion sources: the position fits.
            (slices.len() - 1) as u32
        })
    }

    /// The slices, by source address; every one is tagged with the delivery's log stream.
    pub fn finish(self, log_stream: Option<&str>) -> Vec<Activity> {
        drop(self.positions);
        let mut all = self.slices;
        let stream = log_stream.map(Id::from);
        for a in &mut all {
            if let Some(stream) = &stream {
                a.log_streams.insert(stream.clone());
            }
        }
        all.shrink_to_fit();
        // Sorted through a list of keys, each slice then moved once: sorting 83,000 slices of
        // 256 bytes in place moves each many times.
        all.sort_by_cached_key(|a| a.source);
        all
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_set_is_equal_to_the_same_values_however_they_came() {
        let mut one_by_one: Capped<u16, 4> = Capped::default();
        for p in [30, 10, 20, 10] {
            one_by_one.insert(p);
        }
        let mut merged: Capped<u16, 4> = [20].into_iter().collect();
        merged.extend_from(&[10, 30].into_iter().collect());
        assert_eq!(one_by_one, merged);
        assert_eq!(one_by_one.iter().copied().collect::<Vec<_>>(), [10, 20, 30]);
        // One value, in place, whether inserted or merged into an empty set.
        let single: Capped<u16, 4> = [7].into_iter().collect();
        let mut from_merge: Capped<u16, 4> = Capped::default();
        from_merge.extend_from(&single);
        assert_eq!(single, from_merge);
        assert_eq!((single.len(), single.lowest(5)), (1, vec![7]));
        // The cap still holds, and says so.
        for p in 40..50 {
            one_by_one.insert(p);
        }
        assert_eq!((one_by_one.len(), one_by_one.is_exact()), (4, false));
        let mut hosts: Addrs<4> = ["10.0.0.2", "10.0.0.1"]
            .iter()
            .map(|a| a.parse::<IpAddr>().unwrap())
            .collect();
        hosts.extend_from(
            &["10.0.0.1".parse::<IpAddr>().unwrap()]
                .into_iter()
                .collect(),
        );
        assert_eq!(
            hosts.lowest(5),
            [
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "10.0.0.2".parse().unwrap()
            ]
        );
    }

    pub(crate) fn finding(source: &str, dst: &str, port: u16) -> Finding<'static> {
        Finding {
            account: Some("111122223333"),
            source: source.parse().unwrap(),
            destination: Some(dst.parse().unwrap()),
            srcport: Some(40000),
            dstport: Some(port),
            protocol: Some(6),
            packets: 2,
            bytes: 120,
            start: Some(100),
            end: Some(160),
            interface_id: Some("eni-b"),
            vpc_id: None,
            subnet_id: None,
            instance_id: None,
            tcp_flags: None,
            direction: None,
        }
    }

    #[test]
    fn findings_added_ahead_make_the_slices_added_at_once_make() {
        // More sources than stay in the cache, each source's findings spread among the others;
        // once they are queued, one busy source sends from more interfaces than its set keeps
        // (the first ones seen stay, so the order counts); a few sources are IPv6.
        let n = 5 * CACHED_SOURCES;
        let lines: Vec<String> = (0..n)
            .map(|i| match i % 4 {
                1 if i > n / 2 => format!("eni-{}", i * 37 % 301),
                _ => format!("eni-{}", i % 13),
            })
            .collect();
        let findings: Vec<Finding> = (0..n)
            .map(|i| {
                let source = match i % 4 {
                    1 if i > n / 2 => "10.0.200.1".to_string(),
                    _ if i % 7 == 0 => format!("2600:1f18::{:x}", i % 5),
                    _ => format!("10.0.{}.{}", i % 3001 / 250, i % 3001 % 250),
                };
                let mut f = finding(&source, &format!("10.1.0.{}", i % 11), (i % 17) as u16);
                f.interface_id = Some(&lines[i]);
                f.start = Some(100 + i as u64);
                f
            })
            .collect();
        let mut at_once = Aggregator::default();
        let mut ahead = Aggregator::default();
        let mut pending = Pending::default();
        for f in &findings {
            at_once.add(f, Some("111122223333"));
            ahead.add_ahead(&mut pending, f.clone(), Some("111122223333"));
        }
        assert!(!pending.queue.is_empty(), "some are still pending");
        ahead.catch_up(&mut pending);
        let (at_once, ahead) = (at_once.finish(None), ahead.finish(None));
        assert!(at_once.len() > CACHED_SOURCES, "{}", at_once.len());
        let busy = at_once
            .iter()
            .find(|a| a.source == finding("10.0.200.1", "10.1.0.1", 1).source);
        assert!(
            !busy.unwrap().rejected_at.is_exact(),
            "the busy source's set is full"
        );
        assert_eq!(ahead, at_once);
        // Each source's findings in its own slice, counted apart from the positions' table.
        let mut expected: HashMap<IpAddr, u64> = HashMap::new();
        for f in &findings {
            *expected.entry(f.source).or_default() += 1;
        }
        let got: HashMap<IpAddr, u64> = ahead.iter().map(|a| (a.source, a.records)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn findings_of_one_source_make_one_slice_with_sums_and_distinct_counts() {
        let mut agg = Aggregator::default();
        agg.add(&finding("10.0.0.5", "10.0.1.1", 22), None);
        agg.add(&finding("10.0.0.5", "10.0.1.1", 22), None);
        let mut other = finding("10.0.0.5", "10.0.1.2", 23);
        other.interface_id = Some("eni-a");
        other.account = Some("999988887777");
        other.start = Some(90);
        other.end = Some(200);
        other.packets = 0;
        agg.add(&other, None);
        let all = agg.finish(Some("eni-b-all"));
        assert_eq!(all.len(), 1, "one source, whatever the accounts");
        let a = &all[0];
        assert_eq!((a.records, a.packets, a.bytes), (3, 4, 360));
        assert_eq!((a.destinations.len(), a.ports.len()), (2, 2));
        assert_eq!(a.rejected_at.lowest(5), ["eni-a", "eni-b"]);
        assert_eq!(a.accounts.lowest(5), ["111122223333", "999988887777"]);
        assert_eq!(a.log_streams.lowest(5), ["eni-b-all"]);
        assert_eq!((a.first_seen(), a.last_seen()), (Some(90), Some(200)));
    }

    #[test]
    fn millisecond_times_are_read_as_seconds() {
        let mut a = Activity::new("10.0.0.1".parse().unwrap());
        let mut f = finding("10.0.0.1", "10.0.1.1", 22);
        f.start = Some(1_418_530_010_000);
        f.end = Some(1_418_530_070);
        a.add(&f, None);
        assert_eq!(
            (a.first_seen(), a.last_seen()),
            (Some(1_418_530_010), Some(1_418_530_070))
        );
    }

    #[test]
    fn responses_count_apart_from_probes() {
        let mut a = Activity::new("10.0.0.1".parse().unwrap());
        let mut reply = finding("10.0.0.1", "10.0.1.9", 51000);
        reply.srcport = Some(443);
        a.add(&reply, None);
        a.add(&finding("10.0.0.1", "10.0.1.1", 22), None);
        assert_eq!((a.probes, a.responses().count), (1, 1));
        assert_eq!(a.ports.lowest(5), [22]);
        assert_eq!(a.responses().service_ports.lowest(5), [443]);
        assert_eq!(a.responses().peers.len(), 1);
        assert_eq!(a.destinations.len(), 1);
    }

    #[test]
    fn replies_and_times_read_back_equal_what_was_added() {
        // As the shared store gives them back: set, not added. Equal activities compare equal
        // however their parts were made, with replies or without.
        let mut probed = Activity::new("10.0.0.1".parse().unwrap());
        probed.add(&finding("10.0.0.1", "10.0.1.1", 22), None);
        let mut back = probed.clone();
        back.set_responses(Responses::default());
        assert_eq!(back, probed);
        let mut replied = probed.clone();
        let mut reply = finding("10.0.0.1", "10.0.1.9", 51000);
        reply.srcport = Some(443);
        replied.add(&reply, None);
        back.set_responses(replied.responses().clone());
        assert_eq!(back.responses(), replied.responses());
        assert_ne!(back, probed);
        // Merged into one without replies, the replies arrive whole.
        let mut merged = probed.clone();
        merged.merge(&replied);
        assert_eq!(merged.responses(), replied.responses());
        // Times at both ends of the range are kept as they are, none stays none.
        for (first, last) in [
            (Some(0), Some(0)),
            (None, Some(u64::MAX - 1)),
            (Some(7), None),
        ] {
            back.set_seen(first, last);
            assert_eq!((back.first_seen(), back.last_seen()), (first, last));
        }
    }

    #[test]
    fn egress_records_name_the_senders_own_interface() {
        let mut a = Activity::new("10.0.0.1".parse().unwrap());
        let mut out = finding("10.0.0.1", "10.0.1.1", 22);
        out.direction = Some(Direction::Egress);
        out.interface_id = Some("eni-sender");
        a.add(&out, None);
        let mut inbound = finding("10.0.0.1", "10.0.1.1", 22);
        inbound.direction = Some(Direction::Ingress);
        inbound.interface_id = Some("eni-target");
        a.add(&inbound, None);
        assert_eq!(a.sender_at.lowest(5), ["eni-sender"]);
        assert_eq!(a.rejected_at.lowest(5), ["eni-target"]);
    }

    #[test]
    fn address_sets_hold_ipv4_and_ipv6_in_address_order_up_to_one_cap() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let mut set: Addrs<4> = ["2001:db8::2", "10.0.0.9", "10.0.0.1", "10.0.0.9"]
            .into_iter()
            .map(ip)
            .collect();
        assert_eq!(
            set.lowest(9),
            [ip("10.0.0.1"), ip("10.0.0.9"), ip("2001:db8::2")]
        );
        assert!(set.is_exact());
        let other: Addrs<4> = ["2001:db8::1", "10.0.0.5", "10.0.0.1"]
            .into_iter()
            .map(ip)
            .collect();
        set.extend_from(&other);
        // 10.0.0.5 fits (the fourth), 2001:db8::1 does not: the count is "at least 4".
        assert_eq!(
            set.lowest(9),
            [
                ip("10.0.0.1"),
                ip("10.0.0.5"),
                ip("10.0.0.9"),
                ip("2001:db8::2")
            ]
        );
        assert_eq!((set.len(), set.is_exact()), (4, false));
        let mut reread: Addrs<4> = set.iter().collect();
        assert!(
            reread.is_exact()
                && reread
                    == Addrs {
                        overflow: false,
                        ..set.clone()
                    }
        );
        reread.insert(ip("10.0.0.1"));
        assert!(reread.is_exact(), "a value it has is not an overflow");
        reread.insert(ip("10.0.0.2"));
        assert!(!reread.is_exact());
    }

    #[test]
    fn capped_sets_are_exact_up_to_the_cap_then_say_at_least() {
        let mut set: Capped<u16, 3> = Capped::default();
        for v in [5, 1, 5, 3] {
            set.insert(v);
        }
        assert!(set.is_exact() && set.len() == 3);
        set.insert(9);
        assert!(!set.is_exact() && set.overflow);
        assert_eq!(set.lowest(10), [1, 3, 5]);
        set.insert(1);
        assert_eq!(set.len(), 3);
    }
}
