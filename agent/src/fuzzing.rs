//! Shared entry point for the cargo-fuzz target and the stable property test: feeds arbitrary
//! bytes, split on `\n`, through the line parser and the partial-line assembler exactly as the
//! reader does, and checks the invariants that must hold for any input.

use std::path::Path;
use std::sync::Arc;

use file_tailer::{ContainerInfo, Event, Line};

use crate::assemble::Assembler;
use crate::metrics::Metrics;
use crate::parse::parse_line;
use crate::record::{ByteBudget, Record};

/// Runs `data` through parse + assemble. Panics if an invariant breaks: commit offsets never
/// decrease and never pass the input, and the number of records is bounded by the lines.
pub fn run_lines(data: &[u8]) -> Vec<Record> {
    let metrics = Arc::new(Metrics::default());
    let budget = ByteBudget::new(usize::MAX);
    let mut asm = Assembler::new(4096, budget, metrics);
    let mut out = Vec::new();
    let container = Arc::new(ContainerInfo {
        namespace: "ns".into(),
        pod: "pod".into(),
        uid: "uid".into(),
        container: "c".into(),
    });
    asm.handle(
        Event::Opened {
            file: 1,
            container,
            restart: 0,
            path: Path::new("/x/0.log"),
        },
        &mut out,
    );
    let mut start = 0u64;
    let mut lines = 0;
    for l in data.split(|b| *b == b'\n') {
        let _ = parse_line(l);
        let end = start + l.len() as u64 + 1;
        asm.handle(
            Event::Line(Line {
                file: 1,
                start,
                end,
                data: l,
                truncated: false,
            }),
            &mut out,
        );
        start = end;
        lines += 1;
    }
    asm.handle(
        Event::Eof {
            file: 1,
            offset: start,
        },
        &mut out,
    );
    // No next file will continue a join cut at the end: ship it now.
    asm.expire(std::time::Duration::ZERO, &mut out);
    assert!(out.len() <= lines);
    let mut last = 0;
    for r in &out {
        assert!(r.commit >= last, "commit offsets must not go back");
        assert!(r.commit <= start, "commit past the input");
        assert!(r.line.len() <= 4096 || r.flags & crate::record::FLAG_MALFORMED != 0);
        last = r.commit;
    }
    if let Some(r) = out.last() {
        assert_eq!(r.commit, start, "after EOF everything is committable");
    }
    out
}
