//! Fuzz target: `talus_format::sstable::statistics::Statistics::decode` over arbitrary bytes,
//! through `statistics::check_decode` (never panics; canonical; typed errors), which the stable
//! test `fuzz_corpus_decodes_without_panic` (format/tests/sstable_statistics.rs) runs over
//! `fuzz/corpus/sstable_statistics`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = talus_format::sstable::statistics::check_decode(data) {
        panic!("{violation}");
    }
});
