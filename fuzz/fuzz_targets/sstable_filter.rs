//! Fuzz target: `talus_format::sstable::bloom::BloomFilter::decode` over arbitrary bytes, through
//! `bloom::check_decode` (never panics; canonical; typed errors), which the stable test
//! `fuzz_corpus_decodes_without_panic` (format/tests/sstable_filter.rs) runs over
//! `fuzz/corpus/sstable_filter`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = talus_format::sstable::bloom::check_decode(data) {
        panic!("{violation}");
    }
});
