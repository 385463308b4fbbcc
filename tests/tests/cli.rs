//! The `talus` inspection tools, run as a process against an engine directory written through the
//! public API: `sstable dump|stats|verify`, `commitlog dump`, `manifest dump`, their exit codes
//! (0 clean, 1 damaged data, 2 usage or I/O errors) and one-line error messages.
//!
//! The binary belongs to package `talus-cli`, so Cargo does not hand this package its path
//! (`CARGO_BIN_EXE_talus`); [`talus_bin`] builds it with the cargo running the tests (a no-op
//! when it is up to date) into the same target directory and profile as this test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value as Json;
use talus::format::Mutation;
use talus::format::{ColumnType, RangeBound, Schema, Timestamp, Value};
use talus::Engine;
use talus_tests::fixture::test_options;

const PARTITIONS: i32 = 3;
const ROWS: i32 = 5;
/// Rows of the one wide partition (key `WIDE`), spread over several blocks with a row index.
const WIDE_ROWS: i32 = 1000;
const WIDE: i32 = 100;

/// The `talus` binary, built once per test process.
fn talus_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // <target dir>/<profile dir>/deps/<this test>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let mut build = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        build.args(["build", "--quiet", "--package", "talus-cli", "--bin", "talus", "--target-dir"]).arg(target_dir);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(other) => {
                build.args(["--profile", other]);
            }
        }
        let status = build.status().expect("running cargo build");
        let bin = profile_dir.join(format!("talus{}", std::env::consts::EXE_SUFFIX));
        assert!(status.success() || bin.exists(), "cargo build of the talus binary failed: {status}");
        bin
    })
}

fn talus(args: &[&str]) -> Output {
    Command::new(talus_bin()).args(args).output().expect("running talus")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A directory under the system temp dir, removed on drop (kept when `TALUS_CLI_KEEP` is set).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("talus-cli-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("TALUS_CLI_KEEP").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An engine directory with table `ks.t`: `PARTITIONS` partitions of `ROWS` rows, a static cell
/// and a range tombstone in partition 0, and a wide partition of `WIDE_ROWS` rows, flushed into
/// one sstable; then one more write that stays in the commitlog; then table `ks.gone`, created,
/// written and dropped. Returns the sstable's path and generation.
fn engine_dir(dir: &Path) -> (PathBuf, u64) {
    let engine = Engine::open(dir, test_options()).unwrap();
    let schema = Schema::builder("ks", "t")
        .partition_key("pk", ColumnType::Int)
        .clustering("ck", ColumnType::Int)
        .static_column("s", ColumnType::Text)
        .regular("v", ColumnType::Text)
        .build()
        .unwrap();
    engine.create_table(schema.clone()).unwrap();
    for p in 0..PARTITIONS {
        let ts = Timestamp::now();
        let mut m = Mutation::builder(&schema, &[Value::Int(p)]);
        for r in 0..ROWS {
            m = m.insert(&[Value::Int(r)], ts).set(&[Value::Int(r)], "v", Value::Text(format!("p{p} r{r}")), ts);
        }
        engine.apply(&m.build().unwrap()).unwrap();
    }
    let ts = Timestamp::now();
    let mut wide = Mutation::builder(&schema, &[Value::Int(WIDE)]);
    for r in 0..WIDE_ROWS {
        wide = wide.set(&[Value::Int(r)], "v", Value::Text(format!("wide row {r} of partition {WIDE}")), ts);
    }
    engine.apply(&wide.build().unwrap()).unwrap();
    let delete = Mutation::builder(&schema, &[Value::Int(0)])
        .set_static("s", Value::Text("static".into()), ts)
        .delete_range(RangeBound::Inclusive(vec![Value::Int(10)]), RangeBound::Exclusive(vec![Value::Int(20)]), ts)
        .build()
        .unwrap();
    engine.apply(&delete).unwrap();
    let report = engine.flush("ks.t").unwrap();
    assert_eq!(report.generations.len(), 1, "{report:?}");
    let m = Mutation::builder(&schema, &[Value::Int(7)]).set(&[Value::Int(1)], "v", Value::Text("late".into()), Timestamp::now());
    engine.apply(&m.build().unwrap()).unwrap();
    let generation = report.generations[0];
    // A table created, written and dropped: the manifest keeps its truncation position.
    let gone = Schema::builder("ks", "gone").partition_key("pk", ColumnType::Int).regular("v", ColumnType::Int).build().unwrap();
    engine.create_table(gone.clone()).unwrap();
    engine.apply(&Mutation::builder(&gone, &[Value::Int(1)]).set(&[], "v", Value::Int(1), Timestamp::now()).build().unwrap()).unwrap();
    engine.drop_table("ks.gone").unwrap();
    drop(engine);
    (dir.join("sst").join(talus::sstable_set::sstable_file_name(generation)), generation)
}

fn json_lines(text: &str) -> Vec<Json> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

fn count(lines: &[Json], kind: &str) -> usize {
    lines.iter().filter(|l| l["type"] == kind).count()
}

#[test]
fn tools_read_an_engine_directory() {
    let tmp = TempDir::new("read");
    let dir = tmp.0.join("db");
    let (sst, generation) = engine_dir(&dir);
    let sst_arg = sst.to_str().unwrap();

    // dump: every fragment a JSON line.
    let out = talus(&["sstable", "dump", sst_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(count(&lines, "partition-start"), PARTITIONS as usize + 1);
    assert_eq!(count(&lines, "partition-end"), PARTITIONS as usize + 1);
    assert_eq!(count(&lines, "clustering-row"), (PARTITIONS * ROWS + WIDE_ROWS) as usize);
    assert_eq!(count(&lines, "static-row"), 1);
    assert_eq!(count(&lines, "range-tombstone-change"), 2);
    let rtc = lines.iter().find(|l| l["type"] == "range-tombstone-change").unwrap();
    assert_eq!(rtc["position"]["weight"], -1);
    assert_eq!(rtc["position"]["prefix"]["value"], serde_json::json!([10]));
    assert!(rtc["tombstone"]["timestamp"].is_i64());
    let row = lines.iter().find(|l| l["type"] == "clustering-row").unwrap();
    assert!(row["marker"]["timestamp"].is_i64(), "{row}");
    assert_eq!(row["cells"][0]["name"], "v", "{row}");
    let start = &lines[0];
    assert_eq!(start["type"], "partition-start");
    assert!(start["key"]["raw"].is_string() && start["token"].is_string(), "{start}");
    assert_eq!(start["key"]["value"].as_array().map(Vec::len), Some(1), "{start}");

    // dump --partition: only that partition (pk 0 = int 0, legacy form 00000000).
    let out = talus(&["sstable", "dump", sst_arg, "--partition", "00000000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(count(&lines, "partition-start"), 1);
    assert_eq!(lines[0]["key"]["value"], serde_json::json!([0]));
    assert_eq!(count(&lines, "clustering-row"), ROWS as usize);
    let out = talus(&["sstable", "dump", sst_arg, "--partition", &format!("{WIDE:08x}")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&json_lines(&stdout(&out)), "clustering-row"), WIDE_ROWS as usize);
    let out = talus(&["sstable", "dump", sst_arg, "--partition", "000000ff"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("no partition"), "{}", stderr(&out));
    let out = talus(&["sstable", "dump", sst_arg, "--partition", "xyz"]);
    assert_eq!(out.status.code(), Some(2));

    // stats: pretty JSON with the footer, statistics and counts.
    let out = talus(&["sstable", "stats", sst_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(stats["partition_count"], PARTITIONS + 1);
    assert_eq!(stats["statistics"]["counts"]["partitions"], PARTITIONS + 1);
    assert_eq!(stats["statistics"]["counts"]["rows"], PARTITIONS * ROWS + WIDE_ROWS);
    assert_eq!(stats["statistics"]["table_name"], "ks.t");
    assert_eq!(stats["footer"]["file_id"], generation);
    assert!(stats["block_count"].as_u64().unwrap() > 1, "{stats}");
    assert!(stats["statistics"]["commitlog_interval"]["end"]["segment"].is_u64(), "{stats}");
    assert_eq!(stats["file_size"], std::fs::metadata(&sst).unwrap().len());

    // commitlog dump: segments, records and the tables they touched.
    let out = talus(&["commitlog", "dump", dir.to_str().unwrap(), "--mutations"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("segment ") && text.contains("tables: ks.t"), "{text}");
    assert!(text.contains("ks.t key (7)"), "{text}");
    assert!(text.contains("end: "), "{text}");

    // manifest dump: the table, the sstable and the final state.
    let out = talus(&["manifest", "dump", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("create table ks.t"), "{text}");
    assert!(text.contains(&format!("add sstable {generation} ")), "{text}");
    assert!(text.contains(&format!("  sstable {generation} (")), "{text}");
    assert!(text.contains("  table ks.t"), "{text}");
    assert!(text.contains("drop table ks.gone") && text.contains("truncation of ks.gone: "), "{text}");
}

#[test]
fn verify_finds_a_flipped_byte_and_errors_name_the_file() {
    let tmp = TempDir::new("verify");
    let (sst, _) = engine_dir(&tmp.0.join("db"));
    let sst_arg = sst.to_str().unwrap();
    let out = talus(&["sstable", "verify", sst_arg]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(": OK"), "{}", stdout(&out));

    // Flip a byte in the middle of the data blocks of a copy (same name: the generation check holds).
    let stats: Json = serde_json::from_str(&stdout(&talus(&["sstable", "stats", sst_arg]))).unwrap();
    let data_end = stats["footer"]["data"]["length"].as_u64().unwrap();
    let copy_dir = tmp.0.join("copy");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join(sst.file_name().unwrap());
    let mut bytes = std::fs::read(&sst).unwrap();
    bytes[(data_end / 2) as usize] ^= 0x40;
    std::fs::write(&copy, &bytes).unwrap();
    let out = talus(&["sstable", "verify", sst_arg, copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("{}: OK", sst.display())), "{text}");
    assert!(text.contains(&format!("{}: sstable data block at offset ", copy.display())), "{text}");
    assert!(text.contains(&format!("{}: FAILED", copy.display())), "{text}");
    // Dumping the damaged copy fails with the offset, not a panic.
    let out = talus(&["sstable", "dump", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("at offset") && !stderr(&out).contains("panicked"), "{}", stderr(&out));

    // A missing file: exit 2, a message naming it.
    let missing = tmp.0.join("missing.sst");
    for args in
        [vec!["sstable", "verify"], vec!["sstable", "dump"], vec!["sstable", "stats"], vec!["manifest", "dump"], vec!["commitlog", "dump"]]
    {
        let mut args = args.clone();
        args.push(missing.to_str().unwrap());
        let out = talus(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let all = stdout(&out) + &stderr(&out);
        assert!(all.contains(&missing.display().to_string()) && all.contains("no such file"), "{args:?}: {all}");
        assert_eq!(all.lines().count(), 1, "{args:?}: {all}");
    }

    // Not an sstable: exit 1, one line.
    let junk = tmp.0.join("junk.sst");
    std::fs::write(&junk, b"hello, this is not an sstable at all").unwrap();
    let out = talus(&["sstable", "stats", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a Talus sstable"), "{}", stderr(&out));
    let out = talus(&["manifest", "dump", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("bad magic"), "{}", stderr(&out));
}
