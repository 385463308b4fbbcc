//! The `MANIFEST` file (`talus::manifest::Manifest`), P5 and P6 (reliability-testing §2.1;
//! bug classes 1, 2, 3, 7, 8; stage 3 scenario 8 "manifest roll/rewrite"):
//!
//! - apply/reopen round trips across rewrites; rejected records change nothing;
//! - every crash point of a history that crosses several rewrites, under five crash modes: the
//!   reopened state is the state after the acknowledged records, or after one more (the one in
//!   flight), never a half record; a further edit after recovery survives a second power loss
//!   (recovery made what it read durable); at every crash point, a second crash at each operation
//!   of the recovery itself;
//! - every kill point: the process dies at each file operation (unsynced data stays in the page
//!   cache), restarts, and then the power fails: what the restarted process read, and an edit it
//!   acknowledged after recovery, survive (recovery syncs the file and the directory);
//! - EIO and ENOSPC (one-shot and persistent) at every file operation the history reaches, and
//!   short writes: a failed apply is never acknowledged, the manifest refuses later edits, and a
//!   reopen after a power loss shows an acknowledged prefix;
//! - every bit flip in the file: corruption unless it hits the last record (a torn tail); every
//!   cut of the last record, zero and garbage tails: cut off, the rest loads, appends go on.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use talus::format::manifest::{scan_manifest, ManifestEdit, ManifestState, SstableState};
use talus::format::{ColumnType, ReplayPosition, Schema, SchemaRef, TableId};
use talus::fs::{write_file_atomic, CrashMode, DirLock, Fault, FaultFs, FaultRule, Fs, FsFile, OpKind, OpenMode, SimFs, Trigger};
use talus::manifest::{Manifest, ManifestOptions, MANIFEST_FILE, MANIFEST_TMP_FILE};
use talus::Error;

const DIR: &str = "/db";

fn dir() -> &'static Path {
    Path::new(DIR)
}

/// Small files, so that short histories cross several rewrites.
fn small() -> ManifestOptions {
    ManifestOptions { min_rewrite_bytes: 512 }
}

/// Never rewrites (for tests that look at the records of one file).
fn never_rewrite() -> ManifestOptions {
    ManifestOptions { min_rewrite_bytes: u64::MAX }
}

fn fresh_fs(seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    fs.create_dir_all(dir()).unwrap();
    fs
}

fn schema(name: &str) -> SchemaRef {
    Schema::builder("ks", name)
        .partition_key("p", ColumnType::Int)
        .clustering("c", ColumnType::Int)
        .regular("v", ColumnType::Blob)
        .build()
        .unwrap()
}

/// A valid history of `n` records: table creations, flushes, compactions (adds and removes in one
/// record), state changes, drops and re-creations.
fn history(n: usize, seed: u64) -> Vec<Vec<ManifestEdit>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut state = ManifestState::default();
    let (mut generation, mut segment) = (0u64, 0u64);
    let names = ["a", "b", "c"];
    let mut out = Vec::new();
    while out.len() < n {
        let tables: Vec<TableId> = state.tables.keys().copied().collect();
        let absent: Vec<&str> = names.iter().copied().filter(|n| !state.tables.contains_key(&schema(n).id)).collect();
        let roll = rng.random_range(0..100);
        let mut edits = Vec::new();
        if tables.is_empty() || (roll >= 85 && !absent.is_empty()) {
            edits.push(ManifestEdit::CreateTable(schema(absent[rng.random_range(0..absent.len())])));
        } else {
            let table = tables[rng.random_range(0..tables.len())];
            let of_table: Vec<u64> = state.sstables.iter().filter(|(_, e)| e.table == table).map(|(&g, _)| g).collect();
            if roll < 20 && of_table.len() >= 3 {
                for _ in 0..rng.random_range(1..3) {
                    generation += 1;
                    edits.push(ManifestEdit::AddSstable { table, generation, state: SstableState::Normal });
                }
                for &g in of_table.iter().take(rng.random_range(2..=of_table.len())) {
                    edits.push(ManifestEdit::RemoveSstable { generation: g });
                }
            } else if roll < 30 && !of_table.is_empty() {
                let g = of_table[rng.random_range(0..of_table.len())];
                let to = SstableState::from_code(rng.random_range(0..4)).unwrap();
                edits.push(ManifestEdit::SetState { generation: g, state: to });
            } else if roll < 35 && tables.len() >= 2 {
                segment += 1;
                edits.push(ManifestEdit::DropTable { table, truncated_at: ReplayPosition { segment, offset: rng.random() } });
            } else {
                generation += 1;
                let to = if roll % 10 == 0 { SstableState::Staging } else { SstableState::Normal };
                edits.push(ManifestEdit::AddSstable { table, generation, state: to });
            }
        }
        state.apply(&edits).unwrap();
        out.push(edits);
    }
    out
}

/// `states[i]`: the state after the first `i` records.
fn states(history: &[Vec<ManifestEdit>]) -> Vec<ManifestState> {
    let mut state = ManifestState::default();
    let mut out = vec![state.clone()];
    for edits in history {
        state.apply(edits).unwrap();
        out.push(state.clone());
    }
    out
}

/// Opens and applies `history`; returns how many records were acknowledged, and the manifest if
/// it opened.
fn run(fs: Arc<dyn Fs>, history: &[Vec<ManifestEdit>], options: ManifestOptions) -> (usize, Option<Manifest>) {
    let Ok(mut manifest) = Manifest::open_with(fs, dir(), options) else { return (0, None) };
    for (i, edits) in history.iter().enumerate() {
        if manifest.apply(edits.clone()).is_err() {
            return (i, Some(manifest));
        }
    }
    (history.len(), Some(manifest))
}

/// Reopens on `fs` and returns which prefix of the history the state is: `acked` or `acked + 1`.
fn reopen_prefix(fs: Arc<dyn Fs>, states: &[ManifestState], acked: usize, what: &str) -> (usize, Manifest) {
    let manifest = Manifest::open_with(fs.clone(), dir(), small()).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let found = (acked..=(acked + 1).min(states.len() - 1)).find(|&j| *manifest.state() == states[j]);
    let Some(j) = found else { panic!("{what}: the state is not the one after record {acked} or {}", acked + 1) };
    assert!(!fs.exists(&dir().join(MANIFEST_TMP_FILE)).unwrap(), "{what}: {MANIFEST_TMP_FILE} left behind");
    (j, manifest)
}

/// The table a post-recovery edit creates; no history uses its name.
fn after_recovery() -> ManifestEdit {
    ManifestEdit::CreateTable(schema("after_recovery"))
}

#[test]
fn apply_and_reopen_round_trip_across_rewrites() {
    let history = history(300, 1);
    let states = states(&history);
    let fs = fresh_fs(1);
    let mut manifest = Manifest::open_with(Arc::new(fs.clone()), dir(), small()).unwrap();
    let mut largest = 0;
    for (i, edits) in history.iter().enumerate() {
        manifest.apply(edits.clone()).unwrap();
        assert_eq!(*manifest.state(), states[i + 1]);
        largest = largest.max(manifest.file_len());
        if i % 37 == 0 {
            let reopened = Manifest::open_with(Arc::new(fs.clone()), dir(), small()).unwrap();
            assert_eq!(*reopened.state(), states[i + 1], "reopen after record {i}");
        }
    }
    assert!(manifest.rewrites() >= 3, "{} rewrites", manifest.rewrites());
    assert!(largest < 16 * 1024, "the file grew to {largest} bytes");
    drop(manifest);
    for mode in [CrashMode::DropAll, CrashMode::KeepAll] {
        let reopened = Manifest::open_with(Arc::new(fs.crash(mode)), dir(), small()).unwrap();
        assert_eq!(*reopened.state(), states[history.len()]);
    }
}

#[test]
fn rejected_and_empty_records_change_nothing() {
    let fs = fresh_fs(2);
    let mut manifest = Manifest::open(Arc::new(fs.clone()), dir()).unwrap();
    let a = schema("a");
    manifest.apply(vec![ManifestEdit::CreateTable(a.clone())]).unwrap();
    let before = manifest.state().clone();
    let ops = fs.mutating_ops();
    let bad = [
        vec![ManifestEdit::CreateTable(a.clone())],
        vec![ManifestEdit::RemoveSstable { generation: 9 }],
        vec![
            ManifestEdit::AddSstable { table: a.id, generation: 1, state: SstableState::Normal },
            ManifestEdit::RemoveSstable { generation: 2 },
        ],
        vec![ManifestEdit::AddSstable { table: TableId(7), generation: 1, state: SstableState::Normal }],
    ];
    for edits in bad {
        let err = manifest.apply(edits).unwrap_err();
        assert!(matches!(err, Error::InvalidQuery(ref m) if m.contains("manifest edit rejected")), "{err}");
    }
    manifest.apply(Vec::new()).unwrap();
    assert_eq!(fs.mutating_ops(), ops, "a rejected or empty record did I/O");
    assert_eq!(*manifest.state(), before);
    assert!(manifest.failure().is_none());
    manifest.apply(vec![ManifestEdit::AddSstable { table: a.id, generation: 1, state: SstableState::Normal }]).unwrap();
    let reopened = Manifest::open(Arc::new(fs), dir()).unwrap();
    assert_eq!(reopened.state(), manifest.state());
}

#[test]
fn leftover_tmp_is_removed_and_bad_headers_are_corrupt() {
    let fs = fresh_fs(3);
    let history = history(20, 3);
    let (acked, _) = run(Arc::new(fs.clone()), &history, never_rewrite());
    assert_eq!(acked, 20);
    let tmp = dir().join(MANIFEST_TMP_FILE);
    fs.open(&tmp, OpenMode::CreateNew).unwrap().write_all_at(b"half a rewrite", 0).unwrap();
    let manifest = Manifest::open(Arc::new(fs.clone()), dir()).unwrap();
    assert_eq!(*manifest.state(), states(&history)[20]);
    assert!(!fs.exists(&tmp).unwrap());
    // The removal is durable: recovery synced the directory.
    assert!(!fs.crash(CrashMode::DropAll).exists(&tmp).unwrap());
    fs.corrupt(&dir().join(MANIFEST_FILE), 1, b"X").unwrap();
    let err = Manifest::open(Arc::new(fs), dir()).unwrap_err();
    assert!(matches!(err, Error::MetadataCorrupt { ref reason, .. } if reason.contains("offset 0")), "{err}");
}

/// Scales the enumerated histories: `TALUS_CRASH_SCALE` (default 3), as in `crash_points.rs`.
fn scale() -> usize {
    std::env::var("TALUS_CRASH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(1)
}

/// Every crash point of a history crossing several rewrites, and of the recovery after it.
#[test]
fn every_crash_point_leaves_an_acknowledged_prefix() {
    let history = history(100 * scale(), 4);
    let states = states(&history);
    let dry = fresh_fs(0);
    let (acked, manifest) = run(Arc::new(dry.clone()), &history, small());
    assert_eq!(acked, history.len());
    let rewrites = manifest.map(|m| m.rewrites()).unwrap_or(0);
    assert!(rewrites >= 2, "the history crosses only {rewrites} rewrite(s)");
    let ops = dry.mutating_ops();
    let (mut points, mut double, mut beyond_acked) = (0u64, 0u64, 0u64);
    for (mode_name, mode) in talus_tests::fixture::crash_modes() {
        for k in 1..=ops {
            let seed = k * 31 + mode_name.len() as u64;
            let fs = fresh_fs(seed);
            fs.crash_at(k, mode);
            let (acked, _) = run(Arc::new(fs.clone()), &history, small());
            let crashed = fs.crashed().unwrap_or_else(|| panic!("{mode_name}: no crash at operation {k} of {ops}"));
            points += 1;
            let what = format!("{mode_name}, crash at operation {k} ({acked} acknowledged)");

            // Crash again at each operation of the recovery, then recover for real.
            let probe = crashed.crash(CrashMode::KeepAll);
            let before = probe.mutating_ops();
            let (found, _) = reopen_prefix(Arc::new(probe.clone()), &states, acked, &what);
            for m in 1..=probe.mutating_ops() - before {
                let again = crashed.crash(CrashMode::KeepAll);
                again.crash_at(m, mode);
                assert!(Manifest::open_with(Arc::new(again.clone()), dir(), small()).is_err());
                let twice = again.crashed().unwrap();
                double += 1;
                let (j, _) = reopen_prefix(Arc::new(twice), &states, acked, &format!("{what}, again at recovery operation {m}"));
                assert!(j >= found, "{what}: a crash during recovery lost record {found}");
            }

            let (j, mut manifest) = reopen_prefix(Arc::new(crashed.clone()), &states, acked, &what);
            beyond_acked += (j > acked) as u64;
            // What recovery read is durable: an edit after it survives a power loss with it.
            manifest.apply(vec![after_recovery()]).unwrap();
            let mut expected = states[j].clone();
            expected.apply(&[after_recovery()]).unwrap();
            let lost = Manifest::open_with(Arc::new(crashed.crash(CrashMode::DropAll)), dir(), small()).unwrap();
            assert_eq!(*lost.state(), expected, "{what}: the edit after recovery did not survive a power loss");
        }
    }
    eprintln!(
        "manifest: {points} crash points over {ops} operations x 5 modes ({rewrites} rewrites), {double} crashes during recovery, \
         {beyond_acked} recoveries kept the record in flight"
    );
    assert!(points >= 5 * 300, "{points} crash points");
}

const KINDS: [OpKind; 7] = [OpKind::Open, OpKind::Read, OpKind::Write, OpKind::Sync, OpKind::SetLen, OpKind::Rename, OpKind::SyncDir];

/// EIO and ENOSPC at every operation the history reaches, one-shot and persistent (P6).
#[test]
fn io_errors_at_every_operation_fail_stop() {
    let history = history(100, 5);
    let states = states(&history);
    let counting = FaultFs::new(Arc::new(fresh_fs(5)), 5);
    let (acked, manifest) = run(Arc::new(counting.clone()), &history, small());
    assert!(acked == history.len() && manifest.unwrap().rewrites() >= 2);
    let mut injected = 0;
    for kind in KINDS {
        for n in 1..=counting.operations(kind) {
            for (fault, trigger) in [(Fault::Eio, Trigger::Nth(n)), (Fault::Enospc, Trigger::Nth(n)), (Fault::Eio, Trigger::From(n))] {
                let what = format!("{fault:?} at {trigger:?} of {kind:?}");
                let sim = fresh_fs(n);
                let faulty = FaultFs::new(Arc::new(sim.clone()), n);
                faulty.add_rule(FaultRule::new(kind, trigger, fault));
                let (acked, manifest) = run(Arc::new(faulty.clone()), &history, small());
                injected += faulty.injected();
                assert_eq!(faulty.injected() > 0, acked < history.len(), "{what}: {acked} acknowledged");
                if let Some(mut manifest) = manifest.filter(|_| acked < history.len()) {
                    assert!(manifest.failure().is_some(), "{what}: not failed");
                    assert!(*manifest.state() == states[acked] || *manifest.state() == states[acked + 1], "{what}");
                    faulty.clear_rules();
                    let err = manifest.apply(history[acked].clone()).unwrap_err();
                    assert!(matches!(err, Error::Io { .. }), "{what}: {err}");
                }
                for mode in [CrashMode::DropAll, CrashMode::KeepAll] {
                    reopen_prefix(Arc::new(sim.crash(mode)), &states, acked, &format!("{what}, {mode:?}"));
                }
            }
        }
    }
    eprintln!("manifest: {injected} injected I/O errors");
    assert!(injected >= 500, "{injected}");
}

/// A short write is not an error: the rest is written, and the record is whole.
#[test]
fn short_writes_are_completed() {
    let history = history(60, 6);
    let sim = fresh_fs(6);
    let faulty = FaultFs::new(Arc::new(sim.clone()), 6);
    faulty.add_rule(FaultRule::new(OpKind::Write, Trigger::From(1), Fault::ShortWrite));
    let (acked, _) = run(Arc::new(faulty.clone()), &history, small());
    assert_eq!(acked, history.len());
    let reopened = Manifest::open(Arc::new(sim.crash(CrashMode::DropAll)), dir()).unwrap();
    assert_eq!(*reopened.state(), states(&history)[history.len()]);
    // A short write followed by ENOSPC fails the record.
    let sim = fresh_fs(7);
    let faulty = FaultFs::new(Arc::new(sim.clone()), 7);
    let mut manifest = Manifest::open(Arc::new(faulty.clone()), dir()).unwrap();
    manifest.apply(history[0].clone()).unwrap();
    faulty.add_rule(FaultRule::new(OpKind::Write, Trigger::Nth(1), Fault::ShortWrite));
    faulty.add_rule(FaultRule::new(OpKind::Write, Trigger::Nth(2), Fault::Enospc));
    assert!(manifest.apply(history[1].clone()).is_err());
    assert!(manifest.apply(history[1].clone()).is_err());
    reopen_prefix(Arc::new(sim.crash(CrashMode::KeepAll)), &states(&history), 1, "short write then ENOSPC");
}

/// The bytes of a manifest holding `n` records of `history` (never rewritten), and the offset of
/// each record.
fn manifest_bytes(history: &[Vec<ManifestEdit>]) -> (Vec<u8>, Vec<usize>) {
    let fs = fresh_fs(8);
    let (acked, _) = run(Arc::new(fs.clone()), history, never_rewrite());
    assert_eq!(acked, history.len());
    let bytes = fs.open(&dir().join(MANIFEST_FILE), OpenMode::Existing).unwrap().read_all().unwrap();
    let offsets = scan_manifest(&bytes).unwrap().offsets;
    (bytes, offsets)
}

/// A file system holding a manifest with these bytes.
fn fs_with(bytes: &[u8]) -> SimFs {
    let fs = fresh_fs(9);
    write_file_atomic(&fs, &dir().join(MANIFEST_FILE), bytes).unwrap();
    fs
}

#[test]
fn bit_flips_before_the_last_record_are_corruption() {
    let history = history(24, 10);
    let states = states(&history);
    let (bytes, offsets) = manifest_bytes(&history);
    let last = *offsets.last().unwrap();
    let mut flips = 0;
    for bit in 0..bytes.len() * 8 {
        let at = bit / 8;
        let fs = fs_with(&bytes);
        fs.corrupt(&dir().join(MANIFEST_FILE), at as u64, &[bytes[at] ^ (1 << (bit % 8))]).unwrap();
        let opened = Manifest::open(Arc::new(fs.clone()), dir());
        flips += 1;
        if at < last {
            // The record holding the byte, or the header field (magic, version, reserved).
            let start = offsets.iter().rposition(|&o| o <= at).map_or_else(|| [0, 0, 0, 0, 4, 5, 5, 5][at], |r| offsets[r]);
            match opened {
                Err(Error::MetadataCorrupt { file, reason }) => {
                    assert!(file.ends_with(MANIFEST_FILE) && reason.contains(&format!("offset {start}")), "bit {bit}: {reason}");
                }
                other => panic!("bit {bit} (byte {at}): expected MetadataCorrupt, got {other:?}"),
            }
        } else {
            // The last record is indistinguishable from a write that never completed.
            let manifest = opened.unwrap_or_else(|e| panic!("bit {bit}: {e}"));
            assert_eq!(*manifest.state(), states[history.len() - 1], "bit {bit}");
            assert_eq!(manifest.file_len(), last as u64);
        }
    }
    eprintln!("manifest: {flips} bit flips");
}

#[test]
fn torn_last_records_are_cut_and_appends_continue() {
    let history = history(24, 11);
    let states = states(&history);
    let (bytes, offsets) = manifest_bytes(&history);
    let last = *offsets.last().unwrap();
    let mut tails: Vec<Vec<u8>> = (last + 1..bytes.len()).map(|cut| bytes[..cut].to_vec()).collect();
    for n in [1, 23, 24, 25, 300, 5000] {
        for fill in [0u8, 0xff] {
            let mut b = bytes.clone();
            b.extend(std::iter::repeat_n(fill, n));
            tails.push(b);
        }
        let mut b = bytes[..last + 10].to_vec();
        b.extend((0..n).map(|i| (i * 89 % 253) as u8));
        tails.push(b);
    }
    for (i, tail) in tails.iter().enumerate() {
        let fs = fs_with(tail);
        let mut manifest = Manifest::open_with(Arc::new(fs.clone()), dir(), never_rewrite()).unwrap();
        let expected = if tail.starts_with(&bytes) { history.len() } else { history.len() - 1 };
        assert_eq!(*manifest.state(), states[expected], "tail {i}");
        let valid = if expected == history.len() { bytes.len() } else { last };
        assert_eq!(manifest.file_len(), valid as u64, "tail {i}");
        let on_disk = fs.crash(CrashMode::DropAll).open(&dir().join(MANIFEST_FILE), OpenMode::Existing).unwrap().len().unwrap();
        assert_eq!(on_disk, valid as u64, "tail {i}: the torn tail was not cut durably");
        // The cut is durable, and a record appended after it loads.
        manifest.apply(vec![after_recovery()]).unwrap();
        let mut with = states[expected].clone();
        with.apply(&[after_recovery()]).unwrap();
        let reopened = Manifest::open(Arc::new(fs.crash(CrashMode::DropAll)), dir()).unwrap();
        assert_eq!(*reopened.state(), with, "tail {i}");
    }
}

/// A process that dies at a mutating file operation: that operation and every later one fail,
/// while the `SimFs` below keeps what its page cache holds until a power loss.
#[derive(Debug, Clone)]
struct KillFs {
    inner: SimFs,
    /// Mutating operations left before the process dies.
    left: Arc<AtomicU64>,
    dead: Arc<AtomicBool>,
}

impl KillFs {
    fn new(inner: SimFs, allowed: u64) -> KillFs {
        KillFs { inner, left: Arc::new(AtomicU64::new(allowed)), dead: Arc::new(AtomicBool::new(false)) }
    }

    fn alive(&self) -> io::Result<()> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(io::Error::other("killed"));
        }
        Ok(())
    }

    fn mutating(&self) -> io::Result<()> {
        self.alive()?;
        if self.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            self.dead.store(true, Ordering::SeqCst);
            return Err(io::Error::other("killed"));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct KillFile {
    fs: KillFs,
    inner: Arc<dyn FsFile>,
}

impl FsFile for KillFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.fs.alive()?;
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.fs.mutating()?;
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.fs.mutating()?;
        self.inner.sync()
    }
    fn len(&self) -> io::Result<u64> {
        self.fs.alive()?;
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.mutating()?;
        self.inner.set_len(len)
    }
}

impl Fs for KillFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.mutating()?;
        self.inner.create_dir_all(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FsFile>> {
        if mode == OpenMode::Existing {
            self.alive()?
        } else {
            self.mutating()?
        }
        Ok(Arc::new(KillFile { fs: self.clone(), inner: self.inner.open(path, mode)? }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mutating()?;
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.mutating()?;
        self.inner.remove_file(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.alive()?;
        self.inner.list(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.mutating()?;
        self.inner.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        self.alive()?;
        self.inner.lock_dir(dir)
    }
}

/// Every kill point, then a restart, then a power loss (bug classes 1 and 8): the state the
/// restarted process recovered, and an edit it acknowledged, survive the power loss.
#[test]
fn every_kill_point_then_power_loss_keeps_what_recovery_saw() {
    let history = history(40 * scale(), 12);
    let states = states(&history);
    let dry = KillFs::new(fresh_fs(12), u64::MAX);
    let (acked, manifest) = run(Arc::new(dry.clone()), &history, small());
    assert!(acked == history.len() && manifest.unwrap().rewrites() >= 2);
    let ops = u64::MAX - dry.left.load(Ordering::SeqCst);
    let mut points = 0;
    for k in 1..=ops {
        for (mode_name, mode) in talus_tests::fixture::crash_modes() {
            let sim = fresh_fs(k);
            let killed = KillFs::new(sim.clone(), k - 1);
            let (acked, _) = run(Arc::new(killed.clone()), &history, small());
            assert!(killed.dead.load(Ordering::SeqCst), "no kill at operation {k}");
            points += 1;
            let what = format!("killed at operation {k} ({acked} acknowledged), then {mode_name}");
            // The restarted process recovers from the page cache; then the power fails.
            let (j, recovered) = reopen_prefix(Arc::new(sim.clone()), &states, acked, &what);
            drop(recovered);
            let after_loss = Manifest::open_with(Arc::new(sim.crash(mode)), dir(), small()).unwrap();
            assert_eq!(*after_loss.state(), states[j], "{what}: the recovered state did not survive");
            let mut restarted = Manifest::open_with(Arc::new(sim.clone()), dir(), small()).unwrap();
            restarted.apply(vec![after_recovery()]).unwrap();
            let mut expected = states[j].clone();
            expected.apply(&[after_recovery()]).unwrap();
            let after_loss = Manifest::open_with(Arc::new(sim.crash(mode)), dir(), small()).unwrap();
            assert_eq!(*after_loss.state(), expected, "{what}: the edit after recovery did not survive");
        }
    }
    eprintln!("manifest: {points} kill points over {ops} operations x 5 power-loss modes");
}
