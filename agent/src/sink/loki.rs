//! Loki push encoding: `logproto.PushRequest`, snappy block format (the default), or JSON.
//! Labels: `namespace`, `pod`, `container`, `node`, `stream` and the pod's
//! `app.kubernetes.io/name`/`app` label as `app` when known; everything else goes into structured
//! metadata. Entries keep their order within each stream.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::kube_meta::MetaStore;
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

fn varint_len(v: u64) -> usize {
    prost::encoding::encoded_len_varint(v)
}

/// Length of a length-delimited field (key + length prefix + payload) with a 1-byte key.
fn ld_len(payload: usize) -> usize {
    1 + varint_len(payload as u64) + payload
}

fn put_ld(buf: &mut Vec<u8>, field: u32, payload_len: usize) {
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(payload_len as u64, buf);
}

/// Encoded size of a proto3 string field (empty strings are not encoded).
fn str_len(s: &str) -> usize {
    if s.is_empty() { 0 } else { ld_len(s.len()) }
}

fn put_str(buf: &mut Vec<u8>, field: u32, s: &str) {
    if s.is_empty() {
        return;
    }
    put_ld(buf, field, s.len());
    buf.extend_from_slice(s.as_bytes());
}

fn split_ts(ts_ns: i64) -> (i64, i32) {
    (
        ts_ns.div_euclid(1_000_000_000),
        ts_ns.rem_euclid(1_000_000_000) as i32,
    )
}

/// Encoded size of a `google.protobuf.Timestamp` body.
fn ts_body_len(secs: i64, nanos: i32) -> usize {
    let mut n = 0;
    if secs != 0 {
        n += 1 + varint_len(secs as u64);
    }
    if nanos != 0 {
        n += 1 + varint_len(i64::from(nanos) as u64);
    }
    n
}

fn pair_body_len(name: &str, value: &str) -> usize {
    str_len(name) + str_len(value)
}

/// Snappy-compressed `logproto.PushRequest`. Encoded straight from the records with prost's
/// wire primitives, to avoid copying every line into intermediate message structs; the tests
/// hold it byte-equal to prost's generated `PushRequest` built from the same batch.
pub fn encode_protobuf(batch: &[Arc<Record>], node: &str, meta: &MetaStore) -> Vec<u8> {
    let groups = group(batch, node, meta);
    let mut raw: Vec<u8> = Vec::with_capacity(batch.iter().map(|r| r.line.len() + 96).sum());
    for (l, rs) in groups {
        let labels = label_string(&l);
        // Sizes first (protobuf needs each length before its payload). Entries of one file
        // without flags share one structured-metadata set.
        let mut sets: Vec<(Vec<(&'static str, String)>, usize)> = Vec::new();
        let mut entry_set: Vec<usize> = Vec::with_capacity(rs.len());
        let mut entry_lens: Vec<usize> = Vec::with_capacity(rs.len());
        let mut stream_len = str_len(&labels);
        let mut shared: Option<(usize, usize)> = None;
        for r in &rs {
            let key = Arc::as_ptr(&r.meta) as usize;
            let set = match shared {
                Some((k, i)) if r.flags == 0 && k == key => i,
                _ => {
                    let sm = structured_metadata(r, meta);
                    let len: usize = sm.iter().map(|(n, v)| ld_len(pair_body_len(n, v))).sum();
                    sets.push((sm, len));
                    if r.flags == 0 {
                        shared = Some((key, sets.len() - 1));
                    }
                    sets.len() - 1
                }
            };
            let (secs, nanos) = split_ts(r.ts_ns);
            let e = ld_len(ts_body_len(secs, nanos)) + str_len(&r.line) + sets[set].1;
            stream_len += ld_len(e);
            entry_lens.push(e);
            entry_set.push(set);
        }
        put_ld(&mut raw, 1, stream_len);
        put_str(&mut raw, 1, &labels);
        for ((r, e), set) in rs.iter().zip(entry_lens).zip(entry_set) {
            put_ld(&mut raw, 2, e);
            let (secs, nanos) = split_ts(r.ts_ns);
            put_ld(&mut raw, 1, ts_body_len(secs, nanos));
            if secs != 0 {
                prost::encoding::int64::encode(1, &secs, &mut raw);
            }
            if nanos != 0 {
                prost::encoding::int32::encode(2, &nanos, &mut raw);
            }
            put_str(&mut raw, 2, &r.line);
            for (n, v) in &sets[set].0 {
                put_ld(&mut raw, 3, pair_body_len(n, v));
                put_str(&mut raw, 1, n);
                put_str(&mut raw, 2, v);
            }
        }
    }
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

fn json_str(buf: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

fn json_map(buf: &mut Vec<u8>, pairs: &[(&'static str, String)]) {
    buf.push(b'{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        json_str(buf, k);
        buf.push(b':');
        json_str(buf, v);
    }
    buf.push(b'}');
}

/// JSON body (`{"streams":[{"stream":{…},"values":[["<ns>","<line>",{…}]]}]}`), written
/// directly without building a value tree.
pub fn encode_json(batch: &[Arc<Record>], node: &str, meta: &MetaStore) -> Vec<u8> {
    let mut buf: Vec<u8> = Vec::with_capacity(batch.iter().map(|r| r.line.len() + 128).sum());
    buf.extend_from_slice(b"{\"streams\":[");
    for (gi, (l, rs)) in group(batch, node, meta).into_iter().enumerate() {
        if gi > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"stream\":");
        json_map(&mut buf, &l);
        buf.extend_from_slice(b",\"values\":[");
        for (i, r) in rs.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"[\"");
            buf.extend_from_slice(r.ts_ns.to_string().as_bytes());
            buf.extend_from_slice(b"\",");
            json_str(&mut buf, &r.line);
            buf.push(b',');
            json_map(&mut buf, &structured_metadata(r, meta));
            buf.push(b']');
        }
        buf.extend_from_slice(b"]}");
    }
    buf.extend_from_slice(b"]}");
    buf
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use file_tailer::ContainerInfo;

    use prost::Message as _;

    use super::*;
    use crate::parse::Stream;
    use crate::proto::logproto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter};
    use crate::record::{BudgetGuard, FileMeta};

    /// The same request built with prost's generated messages, the reference for the direct encoder.
    fn encode_protobuf_messages(batch: &[Arc<Record>], node: &str, meta: &MetaStore) -> Vec<u8> {
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
        PushRequest {
            streams,
            format: String::new(),
        }
        .encode_to_vec()
    }

    fn rec(
        meta: &Arc<FileMeta>,
        ts_ns: i64,
        stream: Option<Stream>,
        line: &str,
        flags: u8,
    ) -> Arc<Record> {
        Arc::new(Record {
            file: 1,
            commit: 0,
            also: Vec::new(),
            ts_ns,
            stream,
            line: line.into(),
            flags,
            meta: meta.clone(),
            read_ns: 0,
            guard: BudgetGuard::none(),
        })
    }

    /// A file of container `[namespace, pod, uid, container]`.
    fn file(
        [namespace, pod, uid, container]: [&str; 4],
        restart: u32,
        path: &str,
    ) -> Arc<FileMeta> {
        Arc::new(FileMeta {
            container: Arc::new(ContainerInfo {
                namespace: namespace.into(),
                pod: pod.into(),
                uid: uid.into(),
                container: container.into(),
            }),
            restart,
            path: path.into(),
        })
    }

    #[test]
    fn direct_encoder_matches_prost_messages() {
        let m1 = file(["ns", "p\"q", "u-1", "c"], 3, "/x");
        let m2 = file(["other", "p2", "u-2", "c2"], 0, "/y");
        let batch = vec![
            rec(
                &m1,
                1_700_000_000_123_456_789,
                Some(Stream::Stdout),
                "hello",
                0,
            ),
            rec(&m1, 0, Some(Stream::Stdout), "", FLAG_TRUNCATED),
            rec(&m2, -5, None, "raw ünïcode", FLAG_MALFORMED),
            rec(
                &m1,
                1_700_000_000_000_000_000,
                Some(Stream::Stderr),
                &"x".repeat(300),
                0,
            ),
            rec(
                &m1,
                1_700_000_000_000_000_001,
                Some(Stream::Stdout),
                "again",
                0,
            ),
        ];
        let store = MetaStore::default();
        let direct = snap::raw::Decoder::new()
            .decompress_vec(&encode_protobuf(&batch, "node-1", &store))
            .unwrap();
        assert_eq!(direct, encode_protobuf_messages(&batch, "node-1", &store));
    }
}
