//! Fuzz target: the sstable footer (`talus_format::sstable::footer::Footer::decode`) over
//! arbitrary bytes taken as the end of a whole file, through `footer::check_decode` (never panics;
//! typed errors; canonical re-encoding), which the stable test `footer_corpus_checks_clean`
//! (format/tests/sstable_corpus.rs) runs over `fuzz/corpus/sstable_footer`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = talus_format::sstable::footer::check_decode(data) {
        panic!("{violation}");
    }
});
