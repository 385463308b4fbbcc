//! Fuzz target: `talus_format::commitlog_segment::scan_segment` over arbitrary bytes.
//!
//! `check_scan` (`talus_format::commitlog_segment_check`) scans the input under several options
//! (expected id, `followed_by_records`, `skip_corrupt`) and checks each outcome against the
//! format's rules: no panic, every returned record re-verifies, strict scans return the contiguous
//! chain from the header or fail at the right offset, skipped regions tile the damage, record
//! bodies decode without panicking. Random bytes rarely hold a valid checksum, so the input is also
//! read as a recipe for a segment built with the real encoder (`segment_from_recipe`). The stable
//! test `fuzz_corpus_obeys_the_scan_rules` (format/tests/commitlog_segment.rs) runs the same checks
//! over `fuzz/corpus/commitlog_segment`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use talus_format::commitlog_segment_check::{check_scan, segment_from_recipe};

fuzz_target!(|data: &[u8]| {
    check_scan(data);
    check_scan(&segment_from_recipe(data));
});
