//! `FaultFs`: wraps any [`Fs`] and injects faults by rule (reliability-testing §2.2, item 2).
//!
//! A [`FaultRule`] names an operation kind, an optional path fragment, when it fires ([`Trigger`]:
//! the n-th matching operation, every one from the n-th on, or with odds) and the [`Fault`]: EIO,
//! ENOSPC, a short write, a bit flip on read (transient) or in the written bytes (at rest), or a
//! lost write (a sync that reports success but syncs nothing, so a later crash of a `SimFs` below
//! drops the data).
//!
//! Thread-safety: rules and counters sit behind one mutex; handles are `Send + Sync`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use talus_format::fs::{DirLock, Fs, FsFile, OpenMode};

/// The kind of a file-system operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Opening or creating a file.
    Open,
    /// Reading from a file.
    Read,
    /// Writing to a file.
    Write,
    /// Syncing a file.
    Sync,
    /// Changing a file's length.
    SetLen,
    /// Renaming a file.
    Rename,
    /// Removing a file.
    Remove,
    /// Listing a directory.
    List,
    /// Syncing a directory.
    SyncDir,
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with EIO.
    Eio,
    /// The operation fails with ENOSPC.
    Enospc,
    /// A write stores only the first half of its bytes and says so.
    ShortWrite,
    /// A read returns its bytes with one bit flipped (the stored bytes stay intact).
    BitFlipOnRead,
    /// A write stores its bytes with one bit flipped and reports success.
    BitFlipAtRest,
    /// A sync reports success without making anything durable.
    LostWrite,
}

/// When a rule fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// Only at the n-th matching operation (1-based).
    Nth(u64),
    /// At the n-th matching operation and every one after it.
    From(u64),
    /// At each matching operation with these odds.
    Odds(f64),
}

/// One fault-injection rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// The operation kind it applies to.
    pub op: OpKind,
    /// Only paths containing this fragment (all paths if `None`).
    pub path_contains: Option<String>,
    /// When it fires.
    pub trigger: Trigger,
    /// What it does.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule on every path.
    pub fn new(op: OpKind, trigger: Trigger, fault: Fault) -> FaultRule {
        FaultRule { op, path_contains: None, trigger, fault }
    }

    /// Restricts the rule to paths containing `fragment`.
    pub fn on_paths(mut self, fragment: &str) -> FaultRule {
        self.path_contains = Some(fragment.into());
        self
    }
}

#[derive(Debug)]
struct Shared {
    rules: Vec<(FaultRule, u64)>,
    injected: u64,
    operations: std::collections::HashMap<OpKind, u64>,
    rng: SmallRng,
}

impl Shared {
    /// The fault to inject into this operation, if a rule fires.
    fn fire(&mut self, op: OpKind, path: &Path) -> Option<Fault> {
        *self.operations.entry(op).or_default() += 1;
        let path = path.to_string_lossy();
        let mut fired = None;
        for (rule, seen) in &mut self.rules {
            if rule.op != op || rule.path_contains.as_deref().is_some_and(|f| !path.contains(f)) {
                continue;
            }
            *seen += 1;
            let fires = match rule.trigger {
                Trigger::Nth(n) => *seen == n,
                Trigger::From(n) => *seen >= n,
                Trigger::Odds(p) => self.rng.random_bool(p.clamp(0.0, 1.0)),
            };
            if fires && fired.is_none() {
                fired = Some(rule.fault);
            }
        }
        if fired.is_some() {
            self.injected += 1;
        }
        fired
    }
}

/// A fault-injecting wrapper around another file system.
#[derive(Debug, Clone)]
pub struct FaultFs {
    inner: Arc<dyn Fs>,
    shared: Arc<Mutex<Shared>>,
}

fn error_of(fault: Fault, op: OpKind, path: &Path) -> Option<io::Error> {
    let (code, what) = match fault {
        Fault::Eio => (5, "EIO"),
        Fault::Enospc => (28, "ENOSPC"),
        _ => return None,
    };
    let os = io::Error::from_raw_os_error(code);
    Some(io::Error::new(os.kind(), format!("injected {what} on {op:?} of {}: {os}", path.display())))
}

impl FaultFs {
    /// Wraps `inner`; `seed` drives the odds and the bit choices.
    pub fn new(inner: Arc<dyn Fs>, seed: u64) -> FaultFs {
        FaultFs {
            inner,
            shared: Arc::new(Mutex::new(Shared {
                rules: Vec::new(),
                injected: 0,
                operations: std::collections::HashMap::new(),
                rng: SmallRng::seed_from_u64(seed),
            })),
        }
    }

    /// Adds a rule (its occurrence count starts now).
    pub fn add_rule(&self, rule: FaultRule) {
        self.shared.lock().rules.push((rule, 0));
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        self.shared.lock().rules.clear();
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.shared.lock().injected
    }

    /// How many operations of `op` passed through so far (faulty or not).
    pub fn operations(&self, op: OpKind) -> u64 {
        self.shared.lock().operations.get(&op).copied().unwrap_or(0)
    }

    /// The error to return for this operation, if a rule injects one; other faults are returned
    /// for the caller to apply.
    fn check(&self, op: OpKind, path: &Path) -> io::Result<Option<Fault>> {
        match self.shared.lock().fire(op, path) {
            Some(fault) => match error_of(fault, op, path) {
                Some(e) => Err(e),
                None => Ok(Some(fault)),
            },
            None => Ok(None),
        }
    }
}

#[derive(Debug)]
struct FaultFile {
    fs: FaultFs,
    path: PathBuf,
    inner: Arc<dyn FsFile>,
}

impl FaultFile {
    fn flip_bit(&self, buf: &mut [u8]) {
        if buf.is_empty() {
            return;
        }
        let mut shared = self.fs.shared.lock();
        let bit = shared.rng.random_range(0..buf.len() * 8);
        buf[bit / 8] ^= 1 << (bit % 8);
    }
}

impl FsFile for FaultFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let fault = self.fs.check(OpKind::Read, &self.path)?;
        let n = self.inner.read_at(buf, offset)?;
        if fault == Some(Fault::BitFlipOnRead) {
            self.flip_bit(&mut buf[..n]);
        }
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        match self.fs.check(OpKind::Write, &self.path)? {
            Some(Fault::ShortWrite) if buf.len() > 1 => self.inner.write_at(&buf[..buf.len() / 2], offset),
            Some(Fault::BitFlipAtRest) => {
                let mut flipped = buf.to_vec();
                self.flip_bit(&mut flipped);
                self.inner.write_at(&flipped, offset)
            }
            _ => self.inner.write_at(buf, offset),
        }
    }

    fn sync(&self) -> io::Result<()> {
        match self.fs.check(OpKind::Sync, &self.path)? {
            Some(Fault::LostWrite) => Ok(()),
            _ => self.inner.sync(),
        }
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.check(OpKind::SetLen, &self.path)?;
        self.inner.set_len(len)
    }
}

impl Fs for FaultFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FsFile>> {
        self.check(OpKind::Open, path)?;
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(FaultFile { fs: self.clone(), path: path.to_path_buf(), inner }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(OpKind::Rename, from)?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(OpKind::Remove, path)?;
        self.inner.remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check(OpKind::List, dir)?;
        self.inner.list(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self.check(OpKind::SyncDir, dir)? {
            Some(Fault::LostWrite) => Ok(()),
            _ => self.inner.sync_dir(dir),
        }
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        self.inner.lock_dir(dir)
    }

    /// Never maps, and deliberately does NOT forward to `inner`: readers fall back to `open` +
    /// `read_at`, so every read passes through the rules above (a mapping of the inner file would
    /// bypass read faults such as `BitFlipOnRead` and EIO).
    fn map_readonly(&self, _path: &Path) -> io::Result<Option<bytes::Bytes>> {
        Ok(None)
    }
}
