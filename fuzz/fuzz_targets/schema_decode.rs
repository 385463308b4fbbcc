//! Fuzz target: `talus_format::schema_codec::decode_schema` over arbitrary bytes.
//!
//! Decoding must never panic. A successful decode must re-encode to exactly the input (the
//! encoding is canonical) and decode again to the same schema; a failure must be a `Corrupt`
//! error of the "schema" structure with an offset inside the input. The stable test
//! `fuzz_corpus_decodes_without_panic` (format/tests/schema_codec.rs) runs the same check over
//! `fuzz/corpus/schema_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use talus_format::schema_codec::{decode_schema, encode_schema};
use talus_format::Error;

fuzz_target!(|data: &[u8]| {
    match decode_schema(data) {
        Ok(s) => {
            let mut out = Vec::new();
            encode_schema(&s, &mut out);
            assert_eq!(out, data, "re-encoding a decoded schema changed the bytes");
            // Compared through Debug: f64 options may be NaN, which `==` rejects.
            let again = decode_schema(&out).map(|t| format!("{t:?}"));
            assert_eq!(again, Ok(format!("{s:?}")));
        }
        Err(Error::Corrupt { structure: "schema", offset, .. }) => assert!(offset <= data.len()),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
});
