//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several gateway replicas
//! (all serving traffic) only one writes status. A small acquire/renew loop: the lease lasts
//! 15 s and is renewed every 5 s; a holder that has not renewed within the lease duration is
//! replaced. Every update carries the Lease's resourceVersion, so two replicas racing for it
//! cannot both win. A replica that cannot renew (API unreachable) stops calling itself leader
//! before its lease can expire, so two writers never overlap.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

/// Lease duration.
pub const LEASE: Duration = Duration::from_secs(15);
/// Renew period.
pub const RENEW: Duration = Duration::from_secs(5);

/// This replica's identity: `POD_NAME`, else the hostname.
pub fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("outrigger-gateway-{}", std::process::id()))
}

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// We hold the lease.
    Held,
    /// Someone else does.
    Other(String),
}

/// Try once to acquire or renew.
async fn attempt(api: &Api<Lease>, name: &str, me: &str) -> Result<Outcome, kube::Error> {
    let now = Timestamp::now();
    let lease_secs = i32::try_from(LEASE.as_secs()).unwrap_or(15);
    let Some(mut lease) = api.get_opt(name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(me.to_owned()),
                lease_duration_seconds: Some(lease_secs),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        api.create(&PostParams::default(), &lease).await?;
        return Ok(Outcome::Held);
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if !holder.is_empty() && holder != me {
        let duration =
            SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(lease_secs)));
        let expires = spec
            .renew_time
            .as_ref()
            .map(|t| t.0)
            .and_then(|t| t.checked_add(duration).ok());
        if expires.is_some_and(|e| e > now) {
            return Ok(Outcome::Other(holder));
        }
    }
    if holder != me {
        spec.holder_identity = Some(me.to_owned());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(lease_secs);
    // `replace` sends the resourceVersion we read: a concurrent writer makes this fail (409).
    api.replace(name, &PostParams::default(), &lease).await?;
    Ok(Outcome::Held)
}

/// The Lease to hold and who holds it.
#[derive(Debug, Clone)]
pub struct Election {
    /// Lease namespace.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity ([`identity`] in the binary).
    pub identity: String,
}

/// Run the election until `shutdown`, publishing whether we lead on `leader`. On shutdown a
/// leader gives the lease up so another replica takes over at once.
pub async fn run(
    client: Client,
    election: Election,
    leader: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let Election {
        namespace,
        name,
        identity: me,
    } = election;
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_renew: Option<Instant> = None;
    loop {
        let started = Instant::now();
        // A hung API call must not keep us leader past our lease: one attempt gets one renew
        // period, and leadership is re-judged after it either way.
        let result = tokio::time::timeout(RENEW, attempt(&api, &name, &me)).await;
        match result {
            Err(_) => {
                tracing::warn!(lease = %format!("{namespace}/{name}"), "gateway controller: lease update timed out");
            }
            Ok(Ok(Outcome::Held)) => {
                if !*leader.borrow() {
                    tracing::info!(identity = %me, lease = %format!("{namespace}/{name}"), "gateway controller: became leader");
                }
                last_renew = Some(started);
            }
            Ok(Ok(Outcome::Other(holder))) => {
                if *leader.borrow() {
                    tracing::info!(holder = %holder, "gateway controller: lost the lease");
                }
                last_renew = None;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %format!("{namespace}/{name}"), "gateway controller: lease update failed");
            }
        }
        // Keep a margin of one renew period below the lease duration.
        let leading = last_renew.is_some_and(|t| t.elapsed() < LEASE.saturating_sub(RENEW));
        leader.send_if_modified(|l| std::mem::replace(l, leading) != leading);
        tokio::select! {
            () = tokio::time::sleep(RENEW) => {}
            () = &mut shutdown => break,
        }
    }
    if *leader.borrow() {
        leader.send_replace(false);
        if let Err(e) = release(&api, &name, &me).await {
            tracing::warn!(error = %e, "gateway controller: could not release the lease");
        }
    }
}

async fn release(api: &Api<Lease>, name: &str, me: &str) -> Result<(), kube::Error> {
    let mut lease = api.get(name).await?;
    if let Some(spec) = lease
        .spec
        .as_mut()
        .filter(|s| s.holder_identity.as_deref() == Some(me))
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        api.replace(name, &PostParams::default(), &lease).await?;
    }
    Ok(())
}
