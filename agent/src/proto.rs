//! Generated protobuf messages: Loki `logproto` (push API) and OTLP logs. The module nesting
//! mirrors the proto packages because prost's generated code refers to siblings via `super::`.
#![allow(clippy::pedantic, missing_docs)]

/// Loki push API messages (`logproto` package).
pub mod logproto {
    include!(concat!(env!("OUT_DIR"), "/logproto.rs"));
}

/// OTLP messages (subset needed for logs).
pub mod opentelemetry {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.common.v1.rs"
                ));
            }
        }
        pub mod resource {
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.resource.v1.rs"
                ));
            }
        }
        pub mod logs {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.logs.v1.rs"));
            }
        }
        pub mod collector {
            pub mod logs {
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.collector.logs.v1.rs"
                    ));
                }
            }
        }
    }
}
