//! outrigger-injector: a mutating admission webhook that adds outrigger-proxy to annotated pods
//! (or pods in labelled namespaces) as a Kubernetes native sidecar.

pub mod config;
pub mod inject;
pub mod metrics;
pub mod review;
pub mod server;
pub mod tls;
