//! Protobuf messages of the sinks: Loki `logproto` (push API), generated from the vendored
//! `push.proto` because no crate publishes it, and OTLP logs from the `opentelemetry-proto` crate.
#![allow(clippy::pedantic, missing_docs)]

/// Loki push API messages (`logproto` package).
pub mod logproto {
    include!(concat!(env!("OUT_DIR"), "/logproto.rs"));
}

/// OTLP messages (`opentelemetry.proto.*`), as prost structs.
pub use opentelemetry_proto::tonic as otlp;
