//! Stable-toolchain property tests over the same entry point as the cargo-fuzz target
//! (`agent/fuzz/fuzz_targets/parse_line.rs`), so the invariants are checked in every
//! `cargo test` run even without nightly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::format_collect,
    clippy::format_push_string
)]

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
        let d = secs / 86_400;
        let (y, m, dd) = civil(d);
        let r = secs % 86_400;
        let line = format!(
            "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{nanos:09}Z {} {tag} {msg}",
            r / 3600, r % 3600 / 60, r % 60, if err { "stderr" } else { "stdout" }
        );
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

fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}
