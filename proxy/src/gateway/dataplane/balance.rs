//! Endpoint balancing: power-of-two-choices over EWMA(latency) × (in-flight + 1), outlier
//! ejection, and the per-endpoint state (keep-alive pool, latency, in-flight count, failures)
//! kept by address across table updates.
//!
//! - Only endpoints that are ready and not terminating get new requests; the others keep their
//!   pool and in-flight requests until those finish, then leave with the table.
//! - An attempt that fails goes to an endpoint not tried yet when there is one ([`Attempts`]
//!   implements the retry loop's [`Targets`], so the sidecar's retry rules, budget and backoff
//!   decide whether there is another attempt).
//! - `eject_after` consecutive 5xx answers or connect errors eject an endpoint for the ejection
//!   period (doubling with each ejection that follows without a success in between, capped),
//!   unless it is the last one of its backend that is not ejected; when all are ejected anyway
//!   (several backends share endpoints), ejection is ignored rather than answering 503.
//!
//! The EWMA is updated with plain loads and stores: two racing updates lose one sample, which
//! a load-balancing estimate tolerates, and the request path takes no lock for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use crate::body::ReqBody;
use crate::gateway::config::Balancing;
use crate::gateway::table::{BackendKey, Table};
use crate::retry::{Attempt, Targets};
use crate::upstream::{RequestHead, Upstream, UpstreamError};

/// Latency assumed for an endpoint not measured yet.
const INITIAL_EWMA_NS: u64 = 1_000_000;
/// Weight of a new latency sample.
const EWMA_ALPHA: f64 = 0.3;
/// Idle connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// One endpoint address and what the balancer knows about it.
#[derive(Debug)]
pub struct EndpointState {
    /// Pod address and target port.
    pub addr: SocketAddr,
    /// Keep-alive connections to it.
    pub pool: Arc<Upstream>,
    in_flight: AtomicU32,
    ewma_ns: AtomicU64,
    failures: AtomicU32,
    ejections: AtomicU32,
    /// Milliseconds since the balancer's epoch until which it is ejected (0: not ejected).
    ejected_until_ms: AtomicU64,
}

impl EndpointState {
    /// Requests on it now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn score(&self) -> u64 {
        self.ewma_ns
            .load(Ordering::Relaxed)
            .saturating_mul(u64::from(self.in_flight()) + 1)
    }

    fn ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms
    }

    fn observe(&self, latency: Duration) {
        let sample = latency.as_nanos().min(u128::from(u64::MAX)) as f64;
        let old = self.ewma_ns.load(Ordering::Relaxed) as f64;
        let new = old * (1.0 - EWMA_ALPHA) + sample * EWMA_ALPHA;
        self.ewma_ns.store(new.max(1.0) as u64, Ordering::Relaxed);
    }
}

/// An endpoint of one backend.
#[derive(Debug, Clone)]
struct Member {
    state: Arc<EndpointState>,
    /// Ready and not terminating: may get new requests.
    eligible: bool,
    terminating: bool,
}

/// Which members (by index) a tier of [`BackendSet::choose`] considers.
type Tier<'a> = &'a dyn Fn(usize, &Member) -> bool;

/// The endpoints of one backend.
#[derive(Debug)]
pub struct BackendSet {
    /// Metric label (`namespace/name:port`).
    pub label: Arc<str>,
    members: Vec<Member>,
    balancer: Arc<Inner>,
    /// `outrigger_gateway_endpoint_ejections_total{backend}` of this backend.
    ejections: Counter,
}

/// Counts of a backend's endpoints by state, for `outrigger_gateway_backend_endpoints`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StateCounts {
    /// Ready, not terminating, not ejected.
    pub ready: i64,
    /// Ready but ejected.
    pub ejected: i64,
    /// Not ready (and not terminating).
    pub not_ready: i64,
    /// Terminating.
    pub terminating: i64,
}

impl BackendSet {
    /// Endpoints that would get new requests now (ready, not terminating, not ejected).
    pub fn counts(&self) -> StateCounts {
        let now = self.balancer.now_ms();
        let mut c = StateCounts::default();
        for m in &self.members {
            if m.terminating {
                c.terminating += 1;
            } else if !m.eligible {
                c.not_ready += 1;
            } else if m.state.ejected(now) {
                c.ejected += 1;
            } else {
                c.ready += 1;
            }
        }
        c
    }

    /// Choose an endpoint for an attempt, avoiding the members whose bit is set in `tried`
    /// (member `i` is bit `i`; members past the 64th are never marked) when possible. Returns
    /// the member's index and state; `None` when no endpoint is eligible.
    fn choose(&self, tried: u64, now: Instant) -> Option<(usize, Arc<EndpointState>)> {
        let now = self.balancer.ms_at(now);
        let untried = |i: usize| i >= 64 || tried & (1 << i) == 0;
        let tiers: [Tier<'_>; 4] = [
            &|i, m| !m.state.ejected(now) && untried(i),
            &|i, _| untried(i),
            &|_, m| !m.state.ejected(now),
            &|_, _| true,
        ];
        for tier in tiers {
            let candidates: smallvec::SmallVec<[(usize, &Member); 8]> = self
                .members
                .iter()
                .enumerate()
                .filter(|(i, m)| m.eligible && tier(*i, m))
                .collect();
            match candidates.len() {
                0 => {}
                1 => return Some((candidates[0].0, candidates[0].1.state.clone())),
                n => {
                    let a = fastrand::usize(..n);
                    let mut b = fastrand::usize(..n - 1);
                    if b >= a {
                        b += 1;
                    }
                    let (a, b) = (candidates[a], candidates[b]);
                    let best = if b.1.state.score() < a.1.state.score() {
                        b
                    } else {
                        a
                    };
                    return Some((best.0, best.1.state.clone()));
                }
            }
        }
        None
    }

    /// Record a failure on `ep`; ejects it after `eject_after` in a row unless it is the last
    /// endpoint of this backend not ejected. Returns whether it was ejected.
    fn failed(&self, ep: &EndpointState) -> bool {
        let opts = &self.balancer.options;
        let failures = ep.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < opts.eject_after {
            return false;
        }
        let now = self.balancer.now_ms();
        if ep.ejected(now) {
            return false;
        }
        let others = self
            .members
            .iter()
            .any(|m| m.eligible && m.state.addr != ep.addr && !m.state.ejected(now));
        if !others {
            return false;
        }
        let n = ep.ejections.fetch_add(1, Ordering::Relaxed).min(16);
        let period = opts.ejection.saturating_mul(1 << n).min(opts.max_ejection);
        ep.ejected_until_ms
            .store(now + period.as_millis() as u64, Ordering::Relaxed);
        ep.failures.store(0, Ordering::Relaxed);
        self.ejections.inc();
        tracing::warn!(
            endpoint = %ep.addr,
            backend = %self.label,
            period_ms = period.as_millis() as u64,
            "endpoint ejected"
        );
        true
    }
}

#[derive(Debug)]
struct Inner {
    options: Balancing,
    connect_timeout: Duration,
    idle_timeout: Duration,
    epoch: Instant,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    fn ms_at(&self, at: Instant) -> u64 {
        // +1 so that "ejected until 0" always means "not ejected".
        at.saturating_duration_since(self.epoch).as_millis() as u64 + 1
    }
}

/// Every backend's endpoint set, rebuilt from each table; endpoint state survives by address.
#[derive(Debug)]
pub struct Balancer {
    inner: Arc<Inner>,
    endpoints: Mutex<HashMap<SocketAddr, Arc<EndpointState>>>,
    backends: RwLock<Arc<HashMap<BackendKey, Arc<BackendSet>>>>,
}

impl Balancer {
    /// An empty balancer; pools use `connect_timeout` and `idle_timeout`.
    pub fn new(options: Balancing, connect_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                options,
                connect_timeout,
                idle_timeout,
                epoch: Instant::now(),
            }),
            endpoints: Mutex::default(),
            backends: RwLock::default(),
        }
    }

    /// Take the endpoints of `table` (inside the runtime: new pools start their sweepers);
    /// `ejections` gives each backend's ejection counter.
    pub fn update(&self, table: &Table, ejections: impl Fn(&str) -> Counter) {
        let mut known = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::new();
        let mut backends = HashMap::new();
        for (key, list) in &table.endpoints {
            let members = list
                .iter()
                .map(|e| {
                    let state = next
                        .entry(e.addr)
                        .or_insert_with(|| {
                            known.get(&e.addr).cloned().unwrap_or_else(|| {
                                Arc::new(EndpointState {
                                    addr: e.addr,
                                    pool: Upstream::new(
                                        e.addr,
                                        self.inner.connect_timeout,
                                        self.inner.idle_timeout,
                                        MAX_IDLE_PER_ENDPOINT,
                                    ),
                                    in_flight: AtomicU32::new(0),
                                    ewma_ns: AtomicU64::new(INITIAL_EWMA_NS),
                                    failures: AtomicU32::new(0),
                                    ejections: AtomicU32::new(0),
                                    ejected_until_ms: AtomicU64::new(0),
                                })
                            })
                        })
                        .clone();
                    Member {
                        state,
                        eligible: e.ready && !e.terminating,
                        terminating: e.terminating,
                    }
                })
                .collect();
            let label: Arc<str> = key.to_string().into();
            backends.insert(
                key.clone(),
                Arc::new(BackendSet {
                    ejections: ejections(&label),
                    label,
                    members,
                    balancer: self.inner.clone(),
                }),
            );
        }
        *known = next;
        *self
            .backends
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(backends);
    }

    /// The endpoint set of `key`, if the table has one.
    pub fn backend(&self, key: &BackendKey) -> Option<Arc<BackendSet>> {
        self.backends
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Every backend set (for the endpoint gauges).
    pub fn all(&self) -> Arc<HashMap<BackendKey, Arc<BackendSet>>> {
        self.backends
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The attempts of one request to one backend: the retry loop's [`Targets`].
#[derive(Debug)]
pub struct Attempts {
    set: Arc<BackendSet>,
    /// Members tried already, one bit per member index (see [`BackendSet::choose`]).
    tried: u64,
    /// Bound of each attempt (the rule's `backendRequest`).
    attempt_timeout: Option<Duration>,
}

impl Attempts {
    /// Attempts over `set`, each bounded by `attempt_timeout`.
    pub fn new(set: Arc<BackendSet>, attempt_timeout: Option<Duration>) -> Self {
        Self {
            set,
            tried: 0,
            attempt_timeout,
        }
    }
}

/// An attempt on one endpoint; counts as in flight there until dropped.
#[derive(Debug)]
pub struct Picked {
    ep: Arc<EndpointState>,
    start: Instant,
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.ep.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Targets for Attempts {
    type Pick = Picked;

    fn pick(&mut self) -> Result<Picked, UpstreamError> {
        // One clock read for the ejection check and the latency sample.
        let start = Instant::now();
        let (index, ep) = self
            .set
            .choose(self.tried, start)
            .ok_or(UpstreamError::NoEndpoint)?;
        if index < 64 {
            self.tried |= 1 << index;
        }
        ep.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Picked { ep, start })
    }

    fn send<'s>(
        &'s self,
        pick: &'s Picked,
        head: RequestHead<'_>,
        body: ReqBody,
    ) -> impl Future<Output = Attempt> + Send + 's {
        let limit = self.attempt_timeout;
        let send = pick.ep.pool.send_head(head, body);
        async move {
            match limit {
                None => send.await,
                Some(t) => tokio::time::timeout(t, send)
                    .await
                    .unwrap_or(Err(UpstreamError::AttemptTimeout)),
            }
        }
    }

    fn done(&mut self, pick: Picked, result: &Attempt) {
        let failed = match result {
            Ok(resp) => resp.status().is_server_error(),
            // Failures of the client's body are not the endpoint's.
            Err(e) => !crate::retry::body_too_large(e),
        };
        if failed {
            self.set.failed(&pick.ep);
        } else {
            pick.ep.failures.store(0, Ordering::Relaxed);
            pick.ep.ejections.store(0, Ordering::Relaxed);
            pick.ep.observe(pick.start.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::table::Endpoint;
    use std::collections::BTreeMap;

    fn key() -> BackendKey {
        BackendKey {
            namespace: "ns".into(),
            name: "svc".into(),
            port: 80,
        }
    }

    fn table(eps: &[(u16, bool, bool)]) -> Table {
        let list = eps
            .iter()
            .map(|&(port, ready, terminating)| Endpoint {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                ready,
                terminating,
            })
            .collect();
        Table {
            ports: vec![],
            endpoints: BTreeMap::from([(key(), list)]),
        }
    }

    impl Balancer {
        fn update_t(&self, t: &Table) {
            self.update(t, |_| Counter::default());
        }
    }

    fn balancer(eject_after: u32) -> Balancer {
        Balancer::new(
            Balancing {
                eject_after,
                ejection: Duration::from_secs(30),
                max_ejection: Duration::from_secs(60),
            },
            Duration::from_secs(1),
            Duration::from_secs(60),
        )
    }

    #[tokio::test]
    async fn state_survives_updates_and_only_eligible_endpoints_are_chosen() {
        let b = balancer(5);
        b.update_t(&table(&[(1, true, false), (2, true, false)]));
        let first = b.backend(&key()).unwrap().members[0].state.clone();
        first.observe(Duration::from_millis(7));
        b.update_t(&table(&[
            (1, false, false),
            (2, true, false),
            (3, true, true),
        ]));
        let set = b.backend(&key()).unwrap();
        assert!(Arc::ptr_eq(&set.members[0].state, &first));
        for _ in 0..100 {
            assert_eq!(set.choose(0, Instant::now()).unwrap().1.addr.port(), 2);
        }
        assert_eq!(
            set.counts(),
            StateCounts {
                ready: 1,
                ejected: 0,
                not_ready: 1,
                terminating: 1
            }
        );
        b.update_t(&table(&[(1, false, false)]));
        assert!(
            b.backend(&key())
                .unwrap()
                .choose(0, Instant::now())
                .is_none()
        );
    }

    #[tokio::test]
    async fn p2c_prefers_the_faster_less_loaded_endpoint_and_avoids_tried_ones() {
        let b = balancer(5);
        b.update_t(&table(&[(1, true, false), (2, true, false)]));
        let set = b.backend(&key()).unwrap();
        set.members[0].state.observe(Duration::from_secs(1));
        set.members[0].state.observe(Duration::from_secs(1));
        for _ in 0..50 {
            assert_eq!(set.choose(0, Instant::now()).unwrap().1.addr.port(), 2);
        }
        // Member 1 (port 2) tried already.
        assert_eq!(set.choose(1 << 1, Instant::now()).unwrap().1.addr.port(), 1);
    }

    #[tokio::test]
    async fn ejection_never_takes_the_last_endpoint_and_doubles() {
        let b = balancer(2);
        b.update_t(&table(&[(1, true, false), (2, true, false)]));
        let set = b.backend(&key()).unwrap();
        let (one, two) = (set.members[0].state.clone(), set.members[1].state.clone());
        assert!(!set.failed(&one));
        assert!(set.failed(&one));
        let until = one.ejected_until_ms.load(Ordering::Relaxed);
        assert!(until >= set.balancer.now_ms() + 29_000);
        assert!(!set.failed(&two) && !set.failed(&two), "the last one stays");
        for _ in 0..20 {
            assert_eq!(set.choose(0, Instant::now()).unwrap().1.addr.port(), 2);
        }
        // Expired: the next ejection lasts twice as long.
        one.ejected_until_ms.store(1, Ordering::Relaxed);
        assert!(!set.failed(&one) && set.failed(&one));
        let until = one.ejected_until_ms.load(Ordering::Relaxed);
        assert!(until >= set.balancer.now_ms() + 59_000);
    }
}
