//! `SimFs`: an in-memory file system that can lose power (reliability-testing §2.2, item 1).
//!
//! Model: every file (an inode) keeps its current bytes and the bytes as of its last `sync`, plus
//! the 4 KiB blocks written since then. Every directory keeps its current entries and the entries
//! as of its last `sync_dir`. [`SimFs::crash`] builds the file system a power loss leaves behind:
//!
//! - synced bytes and synced directory entries are kept;
//! - each directory's unsynced creations, renames and removals are all kept or all undone (a
//!   journaling file system commits a directory's metadata in order), per [`CrashMode`];
//! - each unsynced block is kept, dropped or torn (a random prefix kept, the rest left old or,
//!   where nothing was durable, filled with garbage), independently of the others, so unsynced
//!   writes may land out of order. Bytes already durable are never damaged by a later torn write
//!   (the device writes sectors atomically), as in ALICE's model of appends;
//!   an unsynced size change is kept or undone, and a file may keep a grown size with zero blocks.
//!
//! A crash can also be scheduled at the k-th mutating operation ([`SimFs::crash_at`]): the state
//! at that instant is captured, and from then on every operation fails as on a machine without
//! power, so the engine under test can acknowledge nothing more.
//!
//! Everything is deterministic from the seed, except the interleaving of threads using the file
//! system. Thread-safety: one mutex guards the whole state; handles are `Send + Sync`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use talus_format::fs::{split, DirLock, Fs, FsFile, OpenMode};

/// The unit of torn and reordered writes.
pub const BLOCK: u64 = 4096;

/// What a power loss does to unsynced state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CrashMode {
    /// Every unsynced byte and directory change is lost.
    DropAll,
    /// Every unsynced byte and directory change survives (a process crash without power loss).
    KeepAll,
    /// Each unsynced block survives with probability `keep` and is torn with probability `tear`;
    /// each directory's unsynced changes survive with probability `keep`.
    Random {
        /// Odds that an unsynced block or directory change survives.
        keep: f64,
        /// Odds that an unsynced block is torn.
        tear: f64,
    },
}

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
    dirty_blocks: BTreeSet<u64>,
}

#[derive(Debug)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    dirs: BTreeSet<PathBuf>,
    /// Current entries: directory → name → inode.
    live: BTreeMap<PathBuf, BTreeMap<String, u64>>,
    /// Entries as of each directory's last sync.
    synced: BTreeMap<PathBuf, BTreeMap<String, u64>>,
    locks: BTreeSet<PathBuf>,
    rng: SmallRng,
    mutating_ops: u64,
    crash_at: Option<(u64, CrashMode)>,
    crashed: Option<SimFs>,
    /// The path of the operation the scheduled crash interrupted.
    crashed_during: Option<PathBuf>,
}

/// The simulated file system. Cloning gives another handle to the same state.
#[derive(Debug, Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn power_off() -> io::Error {
    io::Error::other("simulated power loss: the machine is off")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file", path.display()))
}

impl State {
    /// Counts a mutating operation; fails once the machine is off, and captures the crash state
    /// when the scheduled crash point is reached (the operation itself does not happen).
    fn mutating_op(&mut self, path: &Path) -> io::Result<()> {
        if self.crashed.is_some() {
            return Err(power_off());
        }
        self.mutating_ops += 1;
        if let Some((at, mode)) = self.crash_at {
            if self.mutating_ops >= at {
                self.crashed = Some(self.after_power_loss(mode));
                self.crashed_during = Some(path.to_path_buf());
                return Err(power_off());
            }
        }
        Ok(())
    }

    fn check_powered(&self) -> io::Result<()> {
        if self.crashed.is_some() {
            return Err(power_off());
        }
        Ok(())
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        self.live.get(&dir).and_then(|d| d.get(&name)).copied().ok_or_else(|| not_found(path))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut BTreeMap<String, u64>> {
        if !self.dirs.contains(dir) {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: no such directory", dir.display())));
        }
        Ok(self.live.entry(dir.to_path_buf()).or_default())
    }

    fn inode(&mut self, ino: u64) -> &mut Inode {
        self.inodes.entry(ino).or_default()
    }

    fn after_power_loss(&mut self, mode: CrashMode) -> SimFs {
        let mut live = BTreeMap::new();
        for dir in &self.dirs {
            let keep = match mode {
                CrashMode::DropAll => false,
                CrashMode::KeepAll => true,
                CrashMode::Random { keep, .. } => self.rng.random_bool(keep.clamp(0.0, 1.0)),
            };
            let source = if keep { &self.live } else { &self.synced };
            live.insert(dir.clone(), source.get(dir).cloned().unwrap_or_default());
        }
        let referenced: BTreeSet<u64> = live.values().flat_map(|d| d.values().copied()).collect();
        let mut inodes = HashMap::new();
        for ino in referenced {
            let Some(inode) = self.inodes.get(&ino) else { continue };
            let data = match mode {
                CrashMode::DropAll => inode.synced.clone(),
                CrashMode::KeepAll => inode.data.clone(),
                CrashMode::Random { keep, tear } => torn_copy(inode, keep, tear, &mut self.rng),
            };
            inodes.insert(ino, Inode { synced: data.clone(), data, dirty_blocks: BTreeSet::new() });
        }
        let seed = self.rng.random();
        powered_on(inodes, self.next_inode, self.dirs.clone(), live, seed)
    }
}

/// A running file system whose disk holds `inodes`, `dirs` and the directory entries `live`
/// (all durable), with no locks, no scheduled crash and randomness from `seed`.
fn powered_on(
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    dirs: BTreeSet<PathBuf>,
    live: BTreeMap<PathBuf, BTreeMap<String, u64>>,
    seed: u64,
) -> SimFs {
    SimFs {
        state: Arc::new(Mutex::new(State {
            inodes,
            next_inode,
            dirs,
            synced: live.clone(),
            live,
            locks: BTreeSet::new(),
            rng: SmallRng::seed_from_u64(seed),
            mutating_ops: 0,
            crash_at: None,
            crashed: None,
            crashed_during: None,
        })),
    }
}

/// The bytes of `inode` after a power loss that keeps each unsynced block with odds `keep` and
/// tears it with odds `tear`.
fn torn_copy(inode: &Inode, keep: f64, tear: f64, rng: &mut SmallRng) -> Vec<u8> {
    let mut out = inode.synced.clone();
    for &block in &inode.dirty_blocks {
        let start = block * BLOCK;
        let end = ((block + 1) * BLOCK).min(inode.data.len() as u64);
        if start >= end {
            continue;
        }
        let (start, end) = (start as usize, end as usize);
        let roll: f64 = rng.random();
        let cut = if roll < keep {
            end
        } else if roll < keep + tear {
            rng.random_range(start..end)
        } else {
            continue;
        };
        if out.len() < cut {
            out.resize(cut, 0);
        }
        out[start..cut].copy_from_slice(&inode.data[start..cut]);
        let garbage_from = cut.max(inode.synced.len());
        if garbage_from < end && rng.random_bool(0.5) {
            // The rest of a torn block holds garbage where it held nothing durable before.
            if out.len() < end {
                out.resize(end, 0);
            }
            rng.fill(&mut out[garbage_from..end]);
        }
    }
    // An unsynced size change survives or not; a grown size may survive with zero contents.
    if inode.data.len() != out.len() && rng.random_bool(keep.clamp(0.0, 1.0)) {
        out.resize(inode.data.len(), 0);
    }
    out
}

impl SimFs {
    /// An empty file system whose randomness derives from `seed`.
    pub fn new(seed: u64) -> SimFs {
        let mut dirs = BTreeSet::new();
        dirs.insert(PathBuf::from("/"));
        dirs.insert(PathBuf::new());
        powered_on(HashMap::new(), 1, dirs, BTreeMap::new(), seed)
    }

    /// The file system a power loss would leave now (this one keeps running).
    pub fn crash(&self, mode: CrashMode) -> SimFs {
        self.state.lock().after_power_loss(mode)
    }

    /// Schedules a power loss at the `k`-th mutating operation from now on (1 = the next one).
    pub fn crash_at(&self, k: u64, mode: CrashMode) {
        let mut state = self.state.lock();
        let at = state.mutating_ops + k.max(1);
        state.crash_at = Some((at, mode));
    }

    /// The state captured by a scheduled crash, once it happened.
    pub fn crashed(&self) -> Option<SimFs> {
        self.state.lock().crashed.clone()
    }

    /// The path of the operation a scheduled crash interrupted (a rename names its target).
    pub fn crashed_during(&self) -> Option<PathBuf> {
        self.state.lock().crashed_during.clone()
    }

    /// Mutating operations (writes, syncs, size changes, creations, renames, removals) so far.
    pub fn mutating_ops(&self) -> u64 {
        self.state.lock().mutating_ops
    }

    /// Overwrites bytes of a file directly, as if the medium changed them (no sync needed, no
    /// operation counted): for corruption tests.
    pub fn corrupt(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock();
        let ino = state.lookup(path)?;
        let inode = state.inode(ino);
        let end = offset as usize + bytes.len();
        for data in [&mut inode.data, &mut inode.synced] {
            if data.len() < end {
                data.resize(end, 0);
            }
            data[offset as usize..end].copy_from_slice(bytes);
        }
        Ok(())
    }
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    /// The path it was opened by (names the operation a scheduled crash interrupts).
    path: PathBuf,
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut state = self.state.lock();
        state.check_powered()?;
        let data = &state.inode(self.ino).data;
        let Some(available) = data.len().checked_sub(offset as usize) else { return Ok(0) };
        let n = available.min(buf.len());
        buf[..n].copy_from_slice(&data[offset as usize..offset as usize + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let mut state = self.state.lock();
        state.mutating_op(&self.path)?;
        let inode = state.inode(self.ino);
        let end = offset as usize + buf.len();
        if inode.data.len() < end {
            inode.data.resize(end, 0);
        }
        inode.data[offset as usize..end].copy_from_slice(buf);
        if !buf.is_empty() {
            inode.dirty_blocks.extend(offset / BLOCK..=(end as u64 - 1) / BLOCK);
        }
        Ok(buf.len())
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.state.lock();
        state.mutating_op(&self.path)?;
        let inode = state.inode(self.ino);
        inode.synced = inode.data.clone();
        inode.dirty_blocks.clear();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut state = self.state.lock();
        state.check_powered()?;
        Ok(state.inode(self.ino).data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        state.mutating_op(&self.path)?;
        let inode = state.inode(self.ino);
        let old = inode.data.len() as u64;
        if len > old {
            inode.dirty_blocks.extend(old / BLOCK..len.div_ceil(BLOCK));
        }
        inode.data.resize(len as usize, 0);
        Ok(())
    }
}

#[derive(Debug)]
struct SimDirLock {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
}

impl DirLock for SimDirLock {}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.dir);
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.check_powered()?;
        // Directories are durable once created (the engine creates them before any data).
        for ancestor in path.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FsFile>> {
        let mut state = self.state.lock();
        state.check_powered()?;
        let existing = state.lookup(path).ok();
        let ino = match (existing, mode) {
            (Some(ino), OpenMode::Existing | OpenMode::CreateOrOpen) => ino,
            (Some(_), OpenMode::CreateNew) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{}: file exists", path.display())))
            }
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (None, OpenMode::CreateOrOpen | OpenMode::CreateNew) => {
                state.mutating_op(path)?;
                let (dir, name) = split(path)?;
                let ino = state.next_inode;
                state.next_inode += 1;
                state.dir_mut(&dir)?.insert(name, ino);
                state.inodes.insert(ino, Inode::default());
                ino
            }
        };
        Ok(Arc::new(SimFile { state: self.state.clone(), ino, path: path.to_path_buf() }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.mutating_op(to)?;
        let ino = state.lookup(from)?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        state.dir_mut(&to_dir)?;
        state.dir_mut(&from_dir)?.remove(&from_name);
        state.dir_mut(&to_dir)?.insert(to_name, ino);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.mutating_op(path)?;
        state.lookup(path)?;
        let (dir, name) = split(path)?;
        state.dir_mut(&dir)?.remove(&name);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state.lock();
        state.check_powered()?;
        if !state.dirs.contains(dir) {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: no such directory", dir.display())));
        }
        Ok(state.live.get(dir).map(|d| d.keys().cloned().collect()).unwrap_or_default())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.mutating_op(dir)?;
        let entries = state.dir_mut(dir)?.clone();
        state.synced.insert(dir.to_path_buf(), entries);
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        let mut state = self.state.lock();
        state.check_powered()?;
        if !state.locks.insert(dir.to_path_buf()) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, format!("{} is locked by another engine", dir.display())));
        }
        Ok(Box::new(SimDirLock { state: self.state.clone(), dir: dir.to_path_buf() }))
    }
}
