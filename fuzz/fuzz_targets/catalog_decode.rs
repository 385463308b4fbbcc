//! Fuzz target: `talus_format::catalog::decode_catalog` over arbitrary bytes, through
//! `catalog::check_decode` (never panics; canonical; typed errors), which the stable test
//! `fuzz_corpus_decodes_without_panic` (format/tests/catalog.rs) runs over `fuzz/corpus/catalog_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = talus_format::catalog::check_decode(data);
});
