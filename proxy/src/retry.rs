//! Retry policy: which requests may be retried, on which outcomes, how long to wait, the budget
//! (tower's `TpsBudget`: a fraction of requests plus a per-second floor over a 10 s window) that
//! keeps retries from ever storming the app, and the copy of a request's headers kept for one.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use tower::retry::budget::{Budget as _, TpsBudget};

use crate::config::RetryConfig;

/// Reasons a retryable failure was not retried (metric label values).
pub mod skip {
    /// The method is not idempotent and no `Idempotency-Key` was sent.
    pub const NON_IDEMPOTENT: &str = "non_idempotent";
    /// The body was larger than the replay buffer.
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// The retry budget was spent.
    pub const BUDGET_EXHAUSTED: &str = "budget_exhausted";
}

/// Whether a request may be sent twice: idempotent methods (RFC 9110 §9.2.2) or an explicit
/// `Idempotency-Key`.
pub fn is_idempotent(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) || headers.contains_key("idempotency-key")
}

/// The retry reason for an app status, if that status is retryable.
pub fn status_reason(status: StatusCode) -> Option<&'static str> {
    match status.as_u16() {
        502 => Some("status_502"),
        503 => Some("status_503"),
        504 => Some("status_504"),
        _ => None,
    }
}

/// A request's headers kept for another attempt. The map itself goes to the app (hyper parses
/// the response into the map it sent), so a retry rebuilds one from this list: one allocation
/// and a reference count per value, where a `HeaderMap` clone also copies its index table in a
/// second allocation. Nearly every copy is dropped unused, so the copy is what must be cheap.
#[derive(Debug)]
pub struct HeaderCopy(Vec<(HeaderName, HeaderValue)>);

impl HeaderCopy {
    /// Copy every field of `headers` (repeated fields stay in order).
    pub fn of(headers: &HeaderMap) -> Self {
        let mut fields = Vec::with_capacity(headers.len());
        fields.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self(fields)
    }

    /// The headers as a map with room for `headroom` more fields.
    pub fn into_map(self, headroom: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.0.len() + headroom);
        for (name, value) in self.0 {
            map.append(name, value);
        }
        map
    }
}

/// Budget and backoff shared by all requests.
#[derive(Debug)]
pub struct Policy {
    budget: TpsBudget,
    /// Maximum retries per request.
    pub attempts: u32,
    /// Replay buffer cap.
    pub max_body: usize,
    backoff: Duration,
}

impl Policy {
    /// Build from configuration.
    pub fn new(cfg: &RetryConfig) -> Self {
        Self {
            budget: TpsBudget::new(
                Duration::from_secs(10),
                cfg.budget_min_per_sec,
                cfg.budget_ratio,
            ),
            attempts: cfg.attempts,
            max_body: cfg.max_body,
            backoff: cfg.backoff,
        }
    }

    /// Record a request (earns budget).
    pub fn deposit(&self) {
        self.budget.deposit();
    }

    /// Take budget for one retry.
    pub fn withdraw(&self) -> bool {
        self.budget.withdraw()
    }

    /// Full-jitter exponential backoff before retry `n` (0-based), capped at 1 s.
    pub fn backoff(&self, n: u32) -> Duration {
        let max = self
            .backoff
            .saturating_mul(1u32 << n.min(16))
            .min(Duration::from_secs(1));
        max.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency() {
        let h = HeaderMap::new();
        assert!(is_idempotent(&Method::GET, &h));
        assert!(is_idempotent(&Method::PUT, &h));
        assert!(!is_idempotent(&Method::POST, &h));
        assert!(!is_idempotent(&Method::PATCH, &h));
        let mut k = HeaderMap::new();
        k.insert("idempotency-key", "abc".parse().unwrap());
        assert!(is_idempotent(&Method::POST, &k));
    }

    #[test]
    fn budget_allows_floor_then_ratio() {
        let p = Policy::new(&RetryConfig {
            attempts: 2,
            max_body: 1024,
            budget_ratio: 0.2,
            budget_min_per_sec: 1,
            backoff: Duration::from_millis(10),
        });
        // The floor allows ~10 retries per 10 s window without any deposits.
        let free = (0..100).take_while(|_| p.withdraw()).count();
        assert!((1..=20).contains(&free), "floor allowed {free}");
        assert!(!p.withdraw());
        for _ in 0..50 {
            p.deposit();
        }
        let earned = (0..100).take_while(|_| p.withdraw()).count();
        assert!((8..=12).contains(&earned), "ratio allowed {earned}");
    }

    #[test]
    fn backoff_is_bounded() {
        let p = Policy::new(&RetryConfig {
            attempts: 2,
            max_body: 1024,
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
            backoff: Duration::from_millis(100),
        });
        for n in 0..20 {
            assert!(p.backoff(n) <= Duration::from_secs(1));
        }
    }
}
