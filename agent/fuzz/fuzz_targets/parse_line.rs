//! Fuzzes the CRI/Docker line parser and the partial-line joiner: arbitrary bytes, split into
//! lines, must never panic, and every line must come out as exactly one record or be part of a
//! join.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrigger_agent::fuzzing::run_lines;

fuzz_target!(|data: &[u8]| {
    run_lines(data);
});
