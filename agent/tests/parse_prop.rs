//! Stable-toolchain property tests over the same entry point as the cargo-fuzz target
//! (`agent/fuzz/fuzz_targets/parse_line.rs`), so the invariants are checked in every
//! `cargo test` run even without nightly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::format_collect,
    clippy::format_push_string
)]

mod common;

use std::time::Duration;

use common::rfc3339_at;
use outrigger_agent::fuzzing::run_lines;
use outrigger_agent::parse::{Stream, parse_line};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        run_lines(&data);
    }

    #[test]
    fn cri_like_bytes_never_panic(
        lines in proptest::collection::vec(
            ("(2024-0[1-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,10})?(Z|[+-][0-2][0-9]:[0-5][0-9]))?",
             "(stdout|stderr|x)?", "(P|F|P:x|F:y|)?", "[ -~]{0,40}"),
            0..30)
    ) {
        let text: String = lines.iter().map(|(a, b, c, d)| format!("{a} {b} {c} {d}\n")).collect();
        run_lines(text.as_bytes());
    }

    #[test]
    fn valid_cri_roundtrips(
        secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000, err in any::<bool>(),
        tag in "(P|F)(:[a-z]{1,3})?", msg in "[ -~]{0,100}"
    ) {
        let ts = rfc3339_at(Duration::new(u64::try_from(secs).unwrap(), nanos));
        let line = format!("{ts} {} {tag} {msg}", if err { "stderr" } else { "stdout" });
        let p = parse_line(line.as_bytes()).unwrap();
        prop_assert_eq!(p.ts_ns, secs * 1_000_000_000 + i64::from(nanos));
        prop_assert_eq!(p.stream, if err { Stream::Stderr } else { Stream::Stdout });
        prop_assert_eq!(p.partial, tag.starts_with('P'));
        prop_assert_eq!(&*p.msg, msg.as_bytes());
    }

    #[test]
    fn partial_fragments_join_back(parts in proptest::collection::vec("[a-z ]{0,30}", 1..8)) {
        let mut text = String::new();
        for (i, p) in parts.iter().enumerate() {
            let tag = if i + 1 == parts.len() { "F" } else { "P" };
            text.push_str(&format!("2024-01-01T00:00:00Z stdout {tag} {p}\n"));
        }
        let out = run_lines(text.trim_end_matches('\n').as_bytes());
        prop_assert_eq!(out.len(), 1);
        prop_assert_eq!(&out[0].line, &parts.concat());
    }
}
