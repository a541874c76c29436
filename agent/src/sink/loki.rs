//! Loki push encoding: `logproto.PushRequest`, snappy block format (the default), or JSON.
//! Labels: `namespace`, `pod`, `container`, `node`, `stream` and the pod's
//! `app.kubernetes.io/name`/`app` label as `app` when known; everything else goes into structured
//! metadata. Entries keep their order within each stream.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use prost::Message as _;

use crate::kube_meta::MetaStore;
use crate::proto::logproto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter};
use crate::record::{FLAG_MALFORMED, FLAG_TRUNCATED, FLAG_UNTERMINATED, Record};

/// Wire encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    Protobuf,
    Json,
}

fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Label pairs of a record's stream (sorted by name).
pub fn labels(r: &Record, node: &str, meta: &MetaStore) -> Vec<(&'static str, String)> {
    let c = &r.meta.container;
    let mut v = Vec::with_capacity(6);
    if let Some(app) = meta.app(&c.uid) {
        v.push(("app", app));
    }
    v.push(("container", c.container.clone()));
    v.push(("namespace", c.namespace.clone()));
    if !node.is_empty() {
        v.push(("node", node.to_owned()));
    }
    v.push(("pod", c.pod.clone()));
    v.push(("stream", r.stream_str().to_owned()));
    v
}

/// Loki's label-set syntax: `{a="x", b="y"}`.
pub fn label_string(pairs: &[(&'static str, String)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{k}=\"");
        escape_label(v, &mut s);
        s.push('"');
    }
    s.push('}');
    s
}

/// Structured metadata of one entry.
pub fn structured_metadata(r: &Record, meta: &MetaStore) -> Vec<(&'static str, String)> {
    let c = &r.meta.container;
    let mut v = vec![
        ("pod_uid", c.uid.clone()),
        ("restart_count", r.meta.restart.to_string()),
    ];
    if let Some(w) = meta.workload(&c.uid) {
        v.push(("workload", w));
    }
    if r.flags & FLAG_TRUNCATED != 0 {
        v.push(("truncated", "true".into()));
    }
    if r.flags & FLAG_MALFORMED != 0 {
        v.push(("malformed", "true".into()));
    }
    if r.flags & FLAG_UNTERMINATED != 0 {
        v.push(("unterminated", "true".into()));
    }
    v
}

/// A stream's labels and its records in order.
type Group<'a> = (Vec<(&'static str, String)>, Vec<&'a Record>);

/// Groups records into streams, preserving per-stream order (streams ordered by first entry).
fn group<'a>(batch: &'a [Arc<Record>], node: &str, meta: &MetaStore) -> Vec<Group<'a>> {
    let mut index: HashMap<(usize, &'static str), usize> = HashMap::new();
    let mut groups: Vec<Group<'a>> = Vec::new();
    for r in batch {
        let key = (Arc::as_ptr(&r.meta) as usize, r.stream_str());
        let i = *index.entry(key).or_insert_with(|| {
            groups.push((labels(r, node, meta), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(r);
    }
    // Records of different files of one container share labels: merge those groups in order.
    let mut merged: Vec<Group<'a>> = Vec::new();
    let mut by_labels: HashMap<String, usize> = HashMap::new();
    for (l, rs) in groups {
        let k = label_string(&l);
        if let Some(i) = by_labels.get(&k) {
            merged[*i].1.extend(rs);
        } else {
            by_labels.insert(k, merged.len());
            merged.push((l, rs));
        }
    }
    merged
}

/// Snappy-compressed protobuf body.
pub fn encode_protobuf(batch: &[Arc<Record>], node: &str, meta: &MetaStore) -> Vec<u8> {
    let streams = group(batch, node, meta)
        .into_iter()
        .map(|(l, rs)| StreamAdapter {
            labels: label_string(&l),
            entries: rs
                .into_iter()
                .map(|r| EntryAdapter {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: r.ts_ns.div_euclid(1_000_000_000),
                        nanos: r.ts_ns.rem_euclid(1_000_000_000) as i32,
                    }),
                    line: r.line.clone(),
                    structured_metadata: structured_metadata(r, meta)
                        .into_iter()
                        .map(|(name, value)| LabelPairAdapter {
                            name: name.to_owned(),
                            value,
                        })
                        .collect(),
                    parsed: Vec::new(),
                })
                .collect(),
            hash: 0,
        })
        .collect();
    let req = PushRequest {
        streams,
        format: String::new(),
    };
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// JSON body.
pub fn encode_json(batch: &[Arc<Record>], node: &str, meta: &MetaStore) -> Vec<u8> {
    let streams: Vec<serde_json::Value> = group(batch, node, meta)
        .into_iter()
        .map(|(l, rs)| {
            let stream: serde_json::Map<String, serde_json::Value> = l
                .into_iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                .collect();
            let values: Vec<serde_json::Value> = rs
                .into_iter()
                .map(|r| {
                    let sm: serde_json::Map<String, serde_json::Value> =
                        structured_metadata(r, meta)
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                            .collect();
                    serde_json::json!([r.ts_ns.to_string(), r.line, sm])
                })
                .collect();
            serde_json::json!({"stream": stream, "values": values})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "streams": streams })).unwrap_or_default()
}
