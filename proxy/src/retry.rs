//! Sending a request to the app with bounded retries: which requests may be retried, on which
//! outcomes, how long to wait, the budget (tower's `TpsBudget`: a fraction of requests plus a
//! per-second floor over a 10 s window) that keeps retries from ever storming the app, and the
//! attempt loop itself ([`send`]), which lends the request's parts to each attempt.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, Response, StatusCode, Uri};
use tokio::time::Instant;
use tower::retry::budget::{Budget as _, TpsBudget};

use crate::body::{BodyError, ReqBody};
use crate::config::RetryConfig;
use crate::metrics::Metrics;
use crate::upstream::{AppBody, RequestHead, Upstream, UpstreamError};

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

/// Whether a request may be retried, decided before its body is read.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Idempotent method or `Idempotency-Key` (see [`is_idempotent`]).
    idempotent: bool,
    /// Retries are configured and the request is not an upgrade.
    enabled: bool,
    /// Retries allowed per request.
    attempts: u32,
}

impl Plan {
    /// The replay buffer to read the body into: only when a retry is possible at all.
    pub fn replay_cap(self, policy: &Policy) -> Option<usize> {
        (self.idempotent && self.enabled).then_some(policy.max_body)
    }

    /// Whether another attempt could follow attempt `retries` (never for a request that is not
    /// idempotent: it is not retried whatever the failure).
    fn can_retry_more(self, retries: u32) -> bool {
        self.idempotent && self.enabled && retries < self.attempts
    }
}

impl Policy {
    /// The retry plan for a request (`upgrade`: it asks to switch protocols).
    pub fn plan(&self, method: &Method, headers: &HeaderMap, upgrade: bool) -> Plan {
        Plan {
            idempotent: is_idempotent(method, headers),
            enabled: self.attempts > 0 && !upgrade,
            attempts: self.attempts,
        }
    }
}

/// The retry reason for an attempt's result, or `None` when it is final (a response that is not
/// retryable, or a request body over the cap).
fn failure_reason(result: &Attempt) -> Option<&'static str> {
    match result {
        Ok(resp) => status_reason(resp.status()),
        Err(e) if e.is_no_endpoint() => None,
        Err(e) if e.is_connect() => Some("connect_error"),
        Err(e) if body_too_large(e) => None,
        Err(_) => Some("connection_error"),
    }
}

/// Whether the app request failed because the client's body went over `--max-body-bytes`.
pub fn body_too_large(e: &UpstreamError) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = src {
        if matches!(s.downcast_ref::<BodyError>(), Some(BodyError::TooLarge)) {
            return true;
        }
        src = s.source();
    }
    false
}

/// One attempt's result: the app's response (its body holds the connection it came on), or why
/// it failed.
pub type Attempt = Result<Response<AppBody>, UpstreamError>;

/// Where each attempt goes: the sidecar's one app pool, or the gateway's balancer choosing an
/// endpoint per attempt (another one after a failure). Generic rather than a trait object so the
/// sidecar's path compiles to what it was.
pub trait Targets {
    /// What an attempt holds while it runs (the gateway: the endpoint and its in-flight count).
    type Pick;
    /// The target of the next attempt; `Err(UpstreamError::NoEndpoint)` when there is none.
    fn pick(&mut self) -> Result<Self::Pick, UpstreamError>;
    /// Send one attempt of `head` and `body` to `pick` (the gateway bounds it by the rule's
    /// `backendRequest` timeout). The head is encoded before this returns.
    fn send<'s>(
        &'s self,
        pick: &'s Self::Pick,
        head: RequestHead<'_>,
        body: ReqBody,
    ) -> impl Future<Output = Attempt> + Send + 's;
    /// The attempt on `pick` ended with `result` (the balancer's latency and failure record).
    fn done(&mut self, pick: Self::Pick, result: &Attempt);
}

impl Targets for &Arc<Upstream> {
    type Pick = ();

    #[inline]
    fn pick(&mut self) -> Result<(), UpstreamError> {
        Ok(())
    }

    #[inline]
    fn send<'s>(
        &'s self,
        (): &'s (),
        head: RequestHead<'_>,
        body: ReqBody,
    ) -> impl Future<Output = Attempt> + Send + 's {
        Upstream::send_head(self, head, body)
    }

    #[inline]
    fn done(&mut self, (): (), _: &Attempt) {}
}

/// What [`send`] ends with.
pub struct Sent {
    /// The last attempt's result.
    pub result: Attempt,
    /// Retries made before it.
    pub retries: u32,
    /// When the last attempt was sent (measured only when `time_upstream` was asked for).
    pub at: Option<Instant>,
}

/// The parts of the request every attempt is built from.
pub struct Outbound<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Origin-form target.
    pub uri: &'a Uri,
    /// Request headers as they go to the app (lent to every attempt).
    pub headers: HeaderMap,
    /// The prepared body (taken by the first attempt); replayable ones are copied for each
    /// further attempt.
    pub body: Option<ReqBody>,
    /// Whether the body was read whole into the replay buffer.
    pub replayable: bool,
}

/// Sends `req` to the app, retrying failures as `plan` and the budget allow, with backoff in
/// between. Returns the last attempt's result. A function returning its future, not an
/// `async fn`: the request's parts are kept once, in the future's captures (an async fn keeps
/// each argument twice).
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
pub fn send<'a, T: Targets + 'a>(
    mut targets: T,
    policy: &'a Policy,
    metrics: &'a Metrics,
    plan: Plan,
    mut req: Outbound<'a>,
    time_upstream: bool,
) -> impl Future<Output = Sent> + 'a {
    // The request's parts are used where they were captured: moved into locals, each would take
    // a second slot in the future.
    async move {
        let mut retries = 0u32;
        loop {
            let this_body = req.body.take().unwrap_or_else(ReqBody::empty);
            let next_body = if plan.can_retry_more(retries) {
                this_body.replay()
            } else {
                None
            };
            // Lent, not moved: the attempt encodes the head at once, and the parts stay here
            // for the next attempt without a copy.
            let head = RequestHead {
                method: req.method,
                uri: req.uri,
                headers: &req.headers,
            };
            let at = time_upstream.then(Instant::now);
            let result = match targets.pick() {
                Ok(pick) => {
                    let result = targets.send(&pick, head, this_body).await;
                    targets.done(pick, &result);
                    result
                }
                Err(e) => Err(e),
            };
            let Some(reason) = failure_reason(&result) else {
                return Sent {
                    result,
                    retries,
                    at,
                };
            };
            if !plan.enabled || retries >= plan.attempts {
                return Sent {
                    result,
                    retries,
                    at,
                };
            }
            let skipped = if !plan.idempotent {
                Some(skip::NON_IDEMPOTENT)
            } else if !req.replayable || next_body.is_none() {
                Some(skip::BODY_TOO_LARGE)
            } else if !policy.withdraw() {
                Some(skip::BUDGET_EXHAUSTED)
            } else {
                None
            };
            if let Some(skipped) = skipped {
                metrics.retry_skipped(skipped);
                return Sent {
                    result,
                    retries,
                    at,
                };
            }
            metrics.retry(reason);
            // An unread error body closes its connection (its state is unknown) unless it was
            // read whole with the head.
            drop(result);
            Box::pin(tokio::time::sleep(policy.backoff(retries))).await;
            retries += 1;
            req.body = next_body;
        }
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
