//! Fuzz target: `talus_format::mutation_codec::decode_mutation` over arbitrary bytes.
//!
//! Decoding must never panic. A successful decode must re-encode to exactly the input (the
//! encoding is canonical) and decode again to the same mutation; a failure must be a `Corrupt`
//! error of the "mutation" structure with an offset inside the input. The stable test
//! `fuzz_corpus_decodes_without_panic` (format/tests/mutation_codec.rs) runs the same check over
//! `fuzz/corpus/mutation_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use talus_format::mutation_codec::{decode_mutation, encode_mutation};
use talus_format::Error;

fuzz_target!(|data: &[u8]| {
    match decode_mutation(data) {
        Ok(m) => {
            let mut out = Vec::new();
            encode_mutation(&m, &mut out);
            assert_eq!(out, data, "re-encoding a decoded mutation changed the bytes");
            assert_eq!(decode_mutation(&out), Ok(m));
        }
        Err(Error::Corrupt { structure: "mutation", offset, .. }) => assert!(offset <= data.len()),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
});
