//! Fuzz target: `talus_format::manifest::scan_manifest` over arbitrary bytes, through
//! `manifest::check_decode` (never panics; canonical re-encoding of the valid prefix; torn tail
//! vs corruption; replay and snapshot of the records; typed errors), which the stable test
//! `fuzz_corpus_decodes_without_panic` (format/tests/manifest.rs) runs over
//! `fuzz/corpus/manifest_decode`. The input is also framed as the payload of one record with
//! correct checksums, so mutations reach the edit decoder behind the checksums.

#![no_main]

use libfuzzer_sys::fuzz_target;
use talus_format::manifest::{check_decode, encode_header, encode_raw_record, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = check_decode(data) {
        panic!("manifest_decode: {violation}");
    }
    let mut framed = Vec::with_capacity(HEADER_LEN + 24 + data.len());
    encode_header(&mut framed);
    encode_raw_record(data, HEADER_LEN as u64, &mut framed);
    if let Err(violation) = check_decode(&framed) {
        panic!("manifest_decode (framed payload): {violation}");
    }
});
