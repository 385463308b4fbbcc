//! What the decoder test files share: the stored fuzz corpora (`fuzz/corpus/<target>`), read by
//! the stable suite and rewritten by each file's ignored `generate_fuzz_corpus`.

// Each test file uses the part it needs; panics are the failure reports of test helpers.
#![allow(dead_code, clippy::panic, clippy::unwrap_used)]

pub mod sample_stream;

use std::path::PathBuf;

/// The corpus directory of fuzz target `target`.
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

/// Every stored corpus file of `target`.
pub fn corpus_files(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).map(|p| std::fs::read(p).unwrap()).collect()
}

/// Seeds from valid encodings: each as `valid-NN`, and for the first six a truncated and a
/// corrupted copy.
pub fn seeds_from_valid(valid: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = valid.iter().enumerate().map(|(i, b)| (format!("valid-{i:02}"), b.clone())).collect();
    for (i, b) in valid.iter().take(6).enumerate().filter(|(_, b)| !b.is_empty()) {
        files.push((format!("truncated-{i:02}"), b[..b.len() / 2].to_vec()));
        let mut flipped = b.clone();
        let at = (i * 7 + 3) % flipped.len();
        flipped[at] ^= 0x5a;
        files.push((format!("corrupt-{i:02}"), flipped));
    }
    files
}

/// Rewrites the corpus of `target`, running `check` (the fuzz target's property) on every file.
pub fn write_corpus(target: &str, files: Vec<(String, Vec<u8>)>, check: impl Fn(&[u8])) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in files {
        check(&bytes);
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
