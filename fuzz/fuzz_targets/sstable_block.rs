//! Fuzz target: sstable data blocks (`talus_format::sstable::block::read_block` and the fragment
//! record decoder `decode_fragment`) over arbitrary bytes, through `block::check_block` (the
//! first byte picks verified blocks, blocks with a forged valid checksum, or bare records; never
//! panics; typed errors; canonical records), which the stable test `block_corpus_checks_clean`
//! (format/tests/sstable_corpus.rs) runs over `fuzz/corpus/sstable_block`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = talus_format::sstable::block::check_block(data) {
        panic!("{violation}");
    }
});
