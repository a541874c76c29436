//! The table as served: the table plus, for every weighted backend of every rule, what the
//! request path would otherwise look up per request, resolved once per table: the backend's
//! endpoint set and its metric series (the `200` counter of the rule's route and backend, the
//! route's duration histogram). Keyed by the backend entry's address in the table, which stays
//! put for as long as the table lives (it is immutable behind its `Arc`, and kept here).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::balance::{BackendSet, Balancer};
use super::metrics::{GatewayMetrics, RequestLabels, RouteLabels};
use crate::gateway::table::{Backend, Table, WeightedBackend};

/// One weighted backend of one rule, resolved.
#[derive(Debug)]
pub struct Resolved {
    /// The HTTPRoute (metric label).
    pub route: Arc<str>,
    /// `namespace/name:port`, or `invalid` (metric label).
    pub backend: Arc<str>,
    /// `Backend::Invalid`: answers 500.
    pub invalid: bool,
    /// The endpoints; `None` when the table has none for the backend (answers 503).
    pub set: Option<Arc<BackendSet>>,
    /// `outrigger_gateway_requests_total{route,backend,code="200"}`.
    pub ok: Counter,
    /// `outrigger_gateway_request_duration_seconds{route}`.
    pub duration: Histogram,
}

/// A table and its resolved backends.
#[derive(Debug, Default)]
pub struct Served {
    /// The table.
    pub table: Arc<Table>,
    resolved: HashMap<usize, Arc<Resolved>, BuildHasherDefault<AddrHasher>>,
}

impl Served {
    /// Resolve every weighted backend of `table` (after `balancer` took its endpoints).
    pub fn new(table: Arc<Table>, balancer: &Balancer, metrics: &GatewayMetrics) -> Self {
        let mut resolved = HashMap::default();
        let rules = table
            .ports
            .iter()
            .flat_map(|p| &p.listeners)
            .flat_map(|l| &l.virtual_hosts)
            .flat_map(|v| &v.rules);
        for rule in rules {
            let duration = metrics
                .duration
                .get_or_create(&RouteLabels {
                    route: rule.route.clone(),
                })
                .clone();
            for wb in &rule.backends {
                let (backend, set, invalid): (Arc<str>, _, _) = match &wb.backend {
                    Backend::Service(key) => match balancer.backend(key) {
                        Some(set) => (set.label.clone(), Some(set), false),
                        None => (key.to_string().into(), None, false),
                    },
                    Backend::Invalid => (Arc::from("invalid"), None, true),
                };
                let ok = metrics
                    .requests
                    .get_or_create(&RequestLabels {
                        route: rule.route.clone(),
                        backend: backend.clone(),
                        code: 200,
                    })
                    .clone();
                let entry = Resolved {
                    route: rule.route.clone(),
                    backend,
                    invalid,
                    set,
                    ok,
                    duration: duration.clone(),
                };
                resolved.insert(std::ptr::from_ref(wb) as usize, Arc::new(entry));
            }
        }
        Self { table, resolved }
    }

    /// The resolution of `wb`, a weighted backend of this table.
    pub fn resolved(&self, wb: &WeightedBackend) -> Option<&Arc<Resolved>> {
        self.resolved.get(&(std::ptr::from_ref(wb) as usize))
    }
}

/// Hashes the addresses that key [`Served`]: a multiply and a fold (aligned addresses have zero
/// low bits, which the fold fills), where the default hasher costs a SipHash per request.
#[derive(Debug, Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn write_usize(&mut self, n: usize) {
        let x = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 32);
    }
}
