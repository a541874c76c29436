//! AdmissionReview in, AdmissionReview out. Any review that parses gets `allowed: true`: the
//! injector never blocks a pod for its own problems (it logs and counts them and lets the pod
//! through unchanged). Only bodies that are not an `admission.k8s.io/v1` review at all are
//! refused, as HTTP 400.

use k8s_openapi::api::core::v1::Pod;
use kube_core::DynamicObject;
use kube_core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND, Operation,
};

use crate::config::ProxySpec;
use crate::inject::{Decision, Mode, decide};
use crate::metrics::Metrics;

/// The body is not a usable AdmissionReview (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON, or not the AdmissionReview shape.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(String),
    /// Serializing the response failed (should not happen).
    #[error("encoding response: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Outcome of one review, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// `injected`, `skipped` or `error`.
    pub result: &'static str,
    /// Skip or error reason; `none` when injected.
    pub reason: &'static str,
}

impl Outcome {
    const fn new(result: &'static str, reason: &'static str) -> Self {
        Self { result, reason }
    }
}

/// Decide on `req` and build the (always allowing) response.
fn respond(
    req: &AdmissionRequest<DynamicObject>,
    mode: Mode,
    proxy: &ProxySpec,
) -> (AdmissionResponse, Outcome) {
    let allow = AdmissionResponse::from(req);
    let is_pod_create = req.kind.group.is_empty()
        && req.kind.kind == "Pod"
        && req.sub_resource.is_none()
        && req.operation == Operation::Create;
    if !is_pod_create {
        return (allow, Outcome::new("skipped", "not_pod_create"));
    }
    let Some(obj) = &req.object else {
        return (allow, Outcome::new("error", "no_object"));
    };
    let pod: Pod = match serde_json::to_value(obj).and_then(serde_json::from_value) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(uid = %req.uid, error = %e, "pod object does not decode; admitting unchanged");
            return (allow, Outcome::new("error", "bad_object"));
        }
    };
    match decide(&pod, mode, proxy) {
        Ok(Decision::Inject(patch, warnings)) => match allow.clone().with_patch(patch) {
            Ok(mut r) => {
                if !warnings.is_empty() {
                    r.warnings = Some(warnings);
                }
                (r, Outcome::new("injected", "none"))
            }
            Err(e) => {
                tracing::error!(uid = %req.uid, error = %e, "serializing patch; admitting unchanged");
                (allow, Outcome::new("error", "patch"))
            }
        },
        Ok(Decision::Skip(reason)) => (allow, Outcome::new("skipped", reason.as_str())),
        Err(e) => {
            tracing::warn!(uid = %req.uid, error = %e, "cannot inject; admitting unchanged");
            (allow, Outcome::new("error", e.reason()))
        }
    }
}

/// Handle one request body: parse, decide, count, log, encode the response review.
pub fn handle(
    body: &[u8],
    mode: Mode,
    proxy: &ProxySpec,
    metrics: &Metrics,
) -> Result<(Vec<u8>, Outcome), ReviewError> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| ReviewError::Malformed(e.to_string()))?;
    if review.types.api_version != META_API_VERSION_V1 || review.types.kind != META_KIND {
        return Err(ReviewError::Malformed(format!(
            "want {META_API_VERSION_V1} {META_KIND}, got {:?} {:?}",
            review.types.api_version, review.types.kind
        )));
    }
    let req: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| ReviewError::Malformed("no request".to_owned()))?;
    if req.uid.is_empty() {
        return Err(ReviewError::Malformed("request.uid is empty".to_owned()));
    }
    let (response, outcome) = respond(&req, mode, proxy);
    let name = req
        .object
        .as_ref()
        .and_then(|o| {
            o.metadata
                .name
                .clone()
                .or_else(|| o.metadata.generate_name.clone())
        })
        .unwrap_or_else(|| req.name.clone());
    tracing::info!(
        uid = %req.uid,
        namespace = req.namespace.as_deref().unwrap_or(""),
        pod = %name,
        dry_run = req.dry_run,
        mode = ?mode,
        result = outcome.result,
        reason = outcome.reason,
        "admission review"
    );
    metrics.admission(outcome.result, outcome.reason);
    Ok((encode(response)?, outcome))
}

/// Serialize the response review. kube-core writes `patch` as a JSON array of byte values;
/// the API documents (and every other webhook sends) the base64 string form of `[]byte`, so
/// the patch is re-encoded that way.
fn encode(response: AdmissionResponse) -> Result<Vec<u8>, serde_json::Error> {
    use base64::Engine as _;
    let raw_patch = response.patch.clone();
    let mut v = serde_json::to_value(response.into_review())?;
    if let (Some(raw), Some(resp)) = (raw_patch, v.get_mut("response")) {
        resp["patch"] =
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(raw));
    }
    serde_json::to_vec(&v)
}
