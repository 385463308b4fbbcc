//! Peer engines for side-by-side comparisons with Talus, behind one small key-value trait
//! ([`KvPeer`]), and workloads written against it ([`batchlog`]).
//!
//! Peers:
//! - [`FjallPeer`]: fjall 3 (a normal dependency).
//! - `RocksPeer`: RocksDB through the `rocksdb` crate, behind the cargo feature `rocksdb` of
//!   `talus-bench` (off by default: it compiles RocksDB's C++ for about 15 minutes and needs
//!   libclang for bindgen, Debian's `libclang-dev`).
//!
//! # Fair configuration
//!
//! [`PeerOptions`] holds what is set alike on every peer; everything else is the engine's default.
//! - Write-ahead log on, no sync per write: a write reaches the OS (fjall's journal is flushed
//!   with `PersistMode::Buffer` after each write; RocksDB writes its WAL with `sync = false`), so
//!   it survives a process crash but not a power loss. That matches Talus'
//!   `Durability::Periodic`.
//! - Block cache: [`PeerOptions::block_cache_bytes`] (64 MiB, Talus' `block_cache_bytes`).
//! - Memtable: [`PeerOptions::memtable_bytes`] per keyspace (64 MiB, Talus'
//!   `memtable_table_limit`; both peers' default too).
//! - Compression: zstd on every level for RocksDB. fjall has no zstd: it keeps its default, LZ4
//!   from level 2 on and none in levels 0 and 1.
//! - Compaction: the engines' default (leveled for both), background threads as they choose.

pub mod batchlog;
mod fjall;
#[cfg(feature = "rocksdb")]
mod rocksdb;

use std::ops::ControlFlow;
use std::path::Path;

pub use self::fjall::FjallPeer;
#[cfg(feature = "rocksdb")]
pub use self::rocksdb::RocksPeer;
use crate::BoxError;

/// What a peer operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The engine failed an operation.
    #[error("{engine}: {op} failed: {source}")]
    Engine {
        /// The engine's name.
        engine: &'static str,
        /// What was being done.
        op: String,
        /// The engine's error.
        source: BoxError,
    },
    /// The engine does not have the operation.
    #[error("{engine} does not support {op}")]
    Unsupported {
        /// The engine's name.
        engine: &'static str,
        /// The operation.
        op: &'static str,
    },
    /// No keyspace of that name was opened.
    #[error("{engine}: no keyspace {name:?} (opened: {opened:?})")]
    UnknownSpace {
        /// The engine's name.
        engine: &'static str,
        /// The name asked for.
        name: String,
        /// The keyspaces opened.
        opened: Vec<String>,
    },
    /// The peer's name is unknown or the peer is not compiled in.
    #[error("peer {name:?} is not available: {why}")]
    Unavailable {
        /// The name asked for.
        name: String,
        /// Why not.
        why: String,
    },
    /// The options cannot be used.
    #[error("{engine}: bad options: {why}")]
    Options {
        /// The engine's name.
        engine: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A file system operation around the engine failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl PeerError {
    /// An engine error of `engine` while doing `op`.
    pub fn engine(engine: &'static str, op: impl Into<String>, source: impl Into<BoxError>) -> PeerError {
        PeerError::Engine { engine, op: op.into(), source: source.into() }
    }
}

/// The visitor of [`KvPeer::scan`]: called with each key and value, it returns `Break` to stop.
pub type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'a;

/// A keyspace (fjall) or column family (RocksDB) of a peer, by its index in
/// [`PeerOptions::spaces`]; [`KvPeer::space`] finds it by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpaceId(pub usize);

/// What is configured alike on every peer (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOptions {
    /// The keyspaces to open (created when missing); at least one.
    pub spaces: Vec<String>,
    /// The block cache's capacity in bytes (default 64 MiB).
    pub block_cache_bytes: u64,
    /// The memtable size per keyspace that triggers a flush, in bytes (default 64 MiB).
    pub memtable_bytes: u64,
}

impl PeerOptions {
    /// The default options with the keyspaces `spaces`.
    pub fn with_spaces(spaces: &[&str]) -> PeerOptions {
        PeerOptions { spaces: spaces.iter().map(|s| s.to_string()).collect(), ..PeerOptions::default() }
    }
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions { spaces: vec!["default".into()], block_cache_bytes: 64 << 20, memtable_bytes: 64 << 20 }
    }
}

/// A key-value engine compared with Talus: ordered byte keys in named keyspaces.
///
/// Writes go through the write-ahead log without a sync each (see the module docs). All methods
/// take `&self`: a peer can be shared by threads.
pub trait KvPeer: Send + Sync {
    /// The engine's name, e.g. `"fjall"`.
    fn name(&self) -> &'static str;

    /// The directory the engine keeps its files in.
    fn dir(&self) -> &Path;

    /// The keyspace opened under `name`.
    fn space(&self, name: &str) -> Result<SpaceId, PeerError>;

    /// Writes `value` under `key`.
    fn put(&self, space: SpaceId, key: &[u8], value: &[u8]) -> Result<(), PeerError>;

    /// Deletes `key` (writes a point tombstone).
    fn delete(&self, space: SpaceId, key: &[u8]) -> Result<(), PeerError>;

    /// Whether [`KvPeer::delete_range`] is supported.
    fn supports_delete_range(&self) -> bool {
        false
    }

    /// Deletes every key in `start..end` with one range tombstone, where the engine has them.
    fn delete_range(&self, space: SpaceId, start: &[u8], end: &[u8]) -> Result<(), PeerError> {
        let _ = (space, start, end);
        Err(PeerError::Unsupported { engine: self.name(), op: "delete_range" })
    }

    /// The value under `key`.
    fn get(&self, space: SpaceId, key: &[u8]) -> Result<Option<Vec<u8>>, PeerError>;

    /// Calls `visit` with each live key and value in `start..end` (`end: None`: to the end of
    /// the keyspace) in key order, until it returns `Break`; returns how many it visited.
    fn scan(&self, space: SpaceId, start: &[u8], end: Option<&[u8]>, visit: &mut Visitor<'_>) -> Result<u64, PeerError>;

    /// Writes every keyspace's memtable to a table file and waits for it.
    fn flush(&self) -> Result<(), PeerError>;

    /// Compacts every keyspace fully (a major compaction into the last level, dropping
    /// tombstones and what they cover), and waits for it.
    fn compact(&self) -> Result<(), PeerError>;

    /// The bytes of the table files (sstables) of `space`, as the engine counts them (not its
    /// log or metadata).
    fn space_bytes(&self, space: SpaceId) -> Result<u64, PeerError>;

    /// The bytes of all files in [`KvPeer::dir`] (logs, tables, metadata), by their length: a
    /// preallocated log counts in full (fjall's journal is 64 MiB from the start).
    fn bytes_on_disk(&self) -> Result<u64, PeerError> {
        dir_size(self.dir())
    }
}

/// The peer engines this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// fjall 3.
    Fjall,
    /// RocksDB (needs the cargo feature `rocksdb`).
    RocksDb,
}

impl PeerKind {
    /// Every peer kind, compiled in or not.
    pub const ALL: [PeerKind; 2] = [PeerKind::Fjall, PeerKind::RocksDb];

    /// The peer's name: `fjall` or `rocksdb`.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Fjall => "fjall",
            PeerKind::RocksDb => "rocksdb",
        }
    }

    /// Whether this build can open the peer.
    pub fn compiled(self) -> bool {
        match self {
            PeerKind::Fjall => true,
            PeerKind::RocksDb => cfg!(feature = "rocksdb"),
        }
    }

    /// Whether the peer has range deletes.
    pub fn supports_delete_range(self) -> bool {
        matches!(self, PeerKind::RocksDb)
    }

    /// The peers this build can open.
    pub fn available() -> Vec<PeerKind> {
        PeerKind::ALL.into_iter().filter(|k| k.compiled()).collect()
    }

    /// Opens (creating it if needed) the peer in `dir` with `options`.
    pub fn open(self, dir: &Path, options: &PeerOptions) -> Result<Box<dyn KvPeer>, PeerError> {
        match self {
            PeerKind::Fjall => Ok(Box::new(FjallPeer::open(dir, options)?)),
            #[cfg(feature = "rocksdb")]
            PeerKind::RocksDb => Ok(Box::new(RocksPeer::open(dir, options)?)),
            #[cfg(not(feature = "rocksdb"))]
            PeerKind::RocksDb => Err(PeerError::Unavailable {
                name: self.name().into(),
                why: "built without the cargo feature `rocksdb` of talus-bench".into(),
            }),
        }
    }
}

impl std::fmt::Display for PeerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PeerKind {
    type Err = PeerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PeerKind::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(s)).ok_or_else(|| PeerError::Unavailable {
            name: s.into(),
            why: format!("unknown peer; known: {}", PeerKind::ALL.map(PeerKind::name).join(", ")),
        })
    }
}

/// The bytes of all files under `dir`, recursively (a file removed meanwhile counts as 0).
pub fn dir_size(dir: &Path) -> Result<u64, PeerError> {
    let io_err = |source| PeerError::Io { what: format!("measuring {}", dir.display()), source };
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        match entry.metadata() {
            Ok(meta) if meta.is_dir() => total += dir_size(&entry.path())?,
            Ok(meta) => total += meta.len(),
            // The engine removed the file (a finished compaction) between listing and stat.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(total)
}

/// The index of `name` in `names`, or the error naming what was opened.
fn find_space(engine: &'static str, names: &[String], name: &str) -> Result<SpaceId, PeerError> {
    names.iter().position(|n| n == name).map(SpaceId).ok_or_else(|| PeerError::UnknownSpace {
        engine,
        name: name.into(),
        opened: names.to_vec(),
    })
}

/// Fails when `options` opens no keyspace, one twice, or one whose name is not 1 to 255 ASCII
/// letters, digits, `_`, `-` or `.`.
fn check_spaces(engine: &'static str, options: &PeerOptions) -> Result<(), PeerError> {
    let bad = |why: String| Err(PeerError::Options { engine, why });
    let mut names: Vec<&String> = options.spaces.iter().collect();
    names.sort();
    names.dedup();
    if names.is_empty() || names.len() != options.spaces.len() {
        return bad(format!("the keyspaces must be distinct and at least one: {:?}", options.spaces));
    }
    let valid = |n: &str| (1..=255).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if let Some(name) = names.iter().find(|n| !valid(n)) {
        return bad(format!("keyspace name {name:?}: use 1 to 255 ASCII letters, digits, '_', '-' or '.'"));
    }
    Ok(())
}
