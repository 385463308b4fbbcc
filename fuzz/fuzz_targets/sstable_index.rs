//! Fuzz target: the sstable partition index and row index decoders
//! (`talus_format::sstable::index::decode_partition_index` / `decode_row_index`, the first byte
//! picks one) over arbitrary bytes, through `index::check_index` (never panics; typed errors
//! inside the input; canonical re-encoding), which the stable test `index_corpus_checks_clean`
//! (format/tests/sstable_corpus.rs) runs over `fuzz/corpus/sstable_index`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = talus_format::sstable::index::check_index(data) {
        panic!("{violation}");
    }
});
