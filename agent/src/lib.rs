//! outrigger-agent: node agent that tails kubelet container logs and ships them to Loki and/or
//! OTLP with end-to-end acknowledgement, and exposes node and self metrics.

pub mod assemble;
pub mod config;
pub mod fuzzing;
pub mod kube_meta;
#[cfg(feature = "kube")]
pub mod kube_watch;
pub mod metrics;
pub mod node;
pub mod parse;
pub mod pipeline;
pub mod proto;
pub mod record;
pub mod server;
pub mod sink;
