//! The case-file runner shared by the data-driven tests (`datadriven.rs`, `pick.rs`), in the style
//! of Pebble's datadriven package. A case is
//!
//! ```text
//! # comment lines citing the rule
//! <command> [args]
//! <input lines>
//! ----
//! <expected output>
//! <blank line>
//! ```
//!
//! `TALUS_REWRITE=1` rewrites a file's expectations with what the code does; expectations state
//! what the RULES say, so review such a diff against them.

// Helpers outside `#[test]` functions panic on purpose: they are assertions.
#![allow(clippy::panic, clippy::unwrap_used, dead_code)]

use std::path::PathBuf;

/// One case of a file.
pub struct Case {
    /// 1-based line of the command.
    pub line: usize,
    /// The comment lines before it.
    pub header: Vec<String>,
    /// The command line.
    pub command: String,
    /// The input lines.
    pub input: Vec<String>,
    /// The expected output lines.
    pub expected: Vec<String>,
}

fn parse_file(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    let mut header = Vec::new();
    while let Some((n, line)) = lines.next() {
        if line.trim().is_empty() {
            // Keep blank lines inside a header block (e.g. after a file preamble).
            if !header.is_empty() {
                header.push(String::new());
            }
            continue;
        }
        if line.starts_with('#') {
            header.push(line.to_string());
            continue;
        }
        let mut case =
            Case { line: n + 1, header: std::mem::take(&mut header), command: line.to_string(), input: vec![], expected: vec![] };
        for (_, l) in lines.by_ref() {
            if l == "----" {
                break;
            }
            case.input.push(l.to_string());
        }
        while let Some((_, l)) = lines.peek() {
            if l.trim().is_empty() {
                break;
            }
            case.expected.push(l.to_string());
            lines.next();
        }
        cases.push(case);
    }
    cases
}

fn render(cases: &[Case], outputs: &[Vec<String>]) -> String {
    let mut s = String::new();
    for (i, (case, out)) in cases.iter().zip(outputs).enumerate() {
        if i > 0 {
            s.push('\n');
        }
        for l in case.header.iter().chain([&case.command]).chain(&case.input) {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str("----\n");
        for l in out {
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}

/// Runs every case of `tests/<dir>/<name>` through `run_case` and compares (or rewrites).
pub fn run_file(dir: &str, name: &str, run_case: impl Fn(&Case) -> Vec<String>) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", dir, name].iter().collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases = parse_file(&text);
    assert!(!cases.is_empty(), "{name}: no cases");
    let outputs: Vec<Vec<String>> = cases.iter().map(run_case).collect();
    if std::env::var_os("TALUS_REWRITE").is_some_and(|v| v == "1") {
        std::fs::write(&path, render(&cases, &outputs)).unwrap();
        return;
    }
    let mut failures = Vec::new();
    for (case, actual) in cases.iter().zip(&outputs) {
        if *actual != case.expected {
            failures.push(format!(
                "{name}:{}: {}\n{}\n{}\n--- expected\n{}\n--- actual\n{}\n",
                case.line,
                case.header.iter().rev().find(|l| !l.is_empty()).map_or("(no header)", String::as_str),
                case.command,
                case.input.join("\n"),
                case.expected.join("\n"),
                actual.join("\n"),
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Checks that `tests/<dir>` holds exactly the `listed` case files.
pub fn check_listed(dir: &str, listed: &[&str]) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", dir].iter().collect();
    let mut found: Vec<String> = std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    found.sort();
    let mut listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "case files in {} and the test's list differ", path.display());
}

/// One `#[test]` per case file of `tests/<dir>`, run through `run_case`, and a test that the list
/// is complete.
#[macro_export]
macro_rules! case_files {
    ($dir:literal, $run_case:expr; $($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                casefile::run_file($dir, $file, $run_case);
            }
        )*

        #[test]
        fn every_case_file_is_listed() {
            casefile::check_listed($dir, &[$($file),*]);
        }
    };
}
