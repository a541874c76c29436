//! OTLP/HTTP logs encoding (`ExportLogsServiceRequest`, binary protobuf). One `ResourceLogs` per
//! container file with Kubernetes resource attributes per the OTel semantic conventions
//! (`k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`, `k8s.container.name`,
//! `k8s.container.restart_count`, `k8s.node.name`, plus the workload name when known); each line
//! is a `LogRecord` with `log.iostream` and `log.file.path` attributes.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message as _;

use crate::kube_meta::MetaStore;
use crate::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::otlp::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use crate::proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use crate::proto::otlp::resource::v1::Resource;
use crate::record::{FLAG_MALFORMED, FLAG_TRUNCATED, Record};

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

/// Binary protobuf body.
pub fn encode(batch: &[Arc<Record>], node: &str, meta: &MetaStore) -> Vec<u8> {
    let mut index: HashMap<usize, usize> = HashMap::new();
    let mut out: Vec<ResourceLogs> = Vec::new();
    for r in batch {
        let key = Arc::as_ptr(&r.meta) as usize;
        let i = *index.entry(key).or_insert_with(|| {
            let c = &r.meta.container;
            let mut attrs = vec![
                s("k8s.namespace.name", c.namespace.clone()),
                s("k8s.pod.name", c.pod.clone()),
                s("k8s.pod.uid", c.uid.clone()),
                s("k8s.container.name", c.container.clone()),
                kv(
                    "k8s.container.restart_count",
                    any_value::Value::IntValue(i64::from(r.meta.restart)),
                ),
            ];
            if !node.is_empty() {
                attrs.push(s("k8s.node.name", node));
            }
            if let Some((kind, name)) = meta.owner(&c.uid) {
                let key = match kind.as_str() {
                    "Deployment" => "k8s.deployment.name",
                    "StatefulSet" => "k8s.statefulset.name",
                    "DaemonSet" => "k8s.daemonset.name",
                    "Job" => "k8s.job.name",
                    "CronJob" => "k8s.cronjob.name",
                    "ReplicaSet" => "k8s.replicaset.name",
                    _ => "k8s.workload.name",
                };
                attrs.push(s(key, name));
            }
            if let Some(app) = meta.app(&c.uid) {
                attrs.push(s("service.name", app));
            }
            out.push(ResourceLogs {
                resource: Some(Resource {
                    attributes: attrs,
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "outrigger-agent".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..InstrumentationScope::default()
                    }),
                    log_records: Vec::new(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            });
            out.len() - 1
        });
        let mut attributes = vec![
            s("log.iostream", r.stream_str()),
            s("log.file.path", r.meta.path.clone()),
        ];
        if r.flags & FLAG_TRUNCATED != 0 {
            attributes.push(kv("log.truncated", any_value::Value::BoolValue(true)));
        }
        if r.flags & FLAG_MALFORMED != 0 {
            attributes.push(kv("log.malformed", any_value::Value::BoolValue(true)));
        }
        out[i].scope_logs[0].log_records.push(LogRecord {
            time_unix_nano: r.ts_ns.max(0) as u64,
            observed_time_unix_nano: r.read_ns.max(0) as u64,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(r.line.clone())),
            }),
            attributes,
            ..LogRecord::default()
        });
    }
    ExportLogsServiceRequest { resource_logs: out }.encode_to_vec()
}
