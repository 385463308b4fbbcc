//! Peer engines for side-by-side comparisons with Talus, and Talus itself, behind one small
//! key-value trait ([`KvPeer`]), and workloads written against it ([`batchlog`], and the
//! `talus-bench` harness in [`crate::harness`]).
//!
//! Engines:
//! - [`TalusPeer`]: Talus, in two shapes ([`TalusShape`]): key-value (a partition per key) and
//!   wide (a partition per group of keys, a clustering row per key).
//! - [`FjallPeer`]: fjall 3 (a normal dependency).
//! - `RocksPeer`: RocksDB through the `rocksdb` crate, behind the cargo feature `rocksdb` of
//!   `talus-bench` (off by default: it compiles RocksDB's C++ for 15 to 45 minutes and needs
//!   libclang for bindgen, Debian's `libclang-dev`).
//!
//! # Fair configuration
//!
//! [`PeerOptions`] holds what is set alike on every engine; everything else is the engine's
//! default.
//! - Durability ([`PeerOptions::sync_writes`]). Off (the default, `--durability periodic`): a
//!   write-ahead log without a sync per write. fjall's journal is flushed to the OS with
//!   `PersistMode::Buffer` after each write and RocksDB writes its WAL with `sync = false`, so a
//!   write survives a process crash but not a power loss. Talus runs `Durability::Periodic` with
//!   [`TALUS_SYNC_PERIOD`] (100 ms): its commitlog acknowledges at once and a background thread
//!   writes and fsyncs the buffered entries every 100 ms, or sooner once 1 MiB is buffered, so a
//!   process crash can lose up to the last 100 ms (or 1 MiB) of writes, which the peers would not
//!   lose: the setting is slightly in Talus' favour. On (`--durability batch`): every write is
//!   synced before it returns: fjall persists with `PersistMode::SyncData` after each write,
//!   RocksDB writes with `sync = true`, Talus runs `Durability::Batch(0)` (group commit: writers
//!   waiting at the same time share one fsync).
//! - Block cache: [`PeerOptions::block_cache_bytes`] (64 MiB, Talus' `block_cache_bytes`).
//! - Memtable: [`PeerOptions::memtable_bytes`] per keyspace (64 MiB, Talus'
//!   `memtable_table_limit`; both peers' default too).
//! - Compression ([`PeerOptions::compression`]), the same family everywhere it can be.
//!   [`Compression::Lz4`] (the default): LZ4 on every level for Talus (its table default, as
//!   ScyllaDB's, R4.17) and RocksDB; fjall keeps its default, LZ4 from level 2 on and none in
//!   levels 0 and 1. [`Compression::Zstd`]: zstd on every level for RocksDB, zstd level 3
//!   ([`crate::ZSTD`]) for Talus; fjall has no zstd and keeps its default. [`Compression::None`]:
//!   none anywhere.
//! - Compaction: the engines' default (leveled for fjall and RocksDB, size-tiered for Talus),
//!   background threads as they choose (Talus: one compaction thread; its flusher at niceness
//!   10 and its compaction at 19, its defaults, where the peers' background threads run at the
//!   process' priority).
//! - Allocator: the binary's, mimalloc with freed memory kept in the process
//!   ([`crate::allocator`]), for every Rust engine (RocksDB allocates in C++).
//! - Bloom filters: every engine has one (RocksDB's is set to 10 bits per key; Talus' default
//!   false-positive chance is 1%, fjall's default too).

pub mod batchlog;
mod fjall;
#[cfg(feature = "rocksdb")]
mod rocksdb;
mod talus;

use std::ops::ControlFlow;
use std::path::Path;

pub use self::fjall::FjallPeer;
#[cfg(feature = "rocksdb")]
pub use self::rocksdb::RocksPeer;
pub use self::talus::{TalusPeer, TalusShape, SCAN_PAGE_ROWS, TALUS_SYNC_PERIOD, WIDE_GROUP_BITS};
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

/// Block compression of the engines' table files (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd where the engine has it (Talus at level 3, RocksDB); fjall keeps its default (LZ4
    /// from level 2).
    Zstd,
    /// LZ4 on every level (Talus' default, RocksDB); fjall keeps its default (LZ4 from level 2).
    #[default]
    Lz4,
    /// No compression.
    None,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        })
    }
}

impl std::str::FromStr for Compression {
    type Err = PeerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "zstd" => Ok(Compression::Zstd),
            "lz4" => Ok(Compression::Lz4),
            "none" => Ok(Compression::None),
            _ => Err(PeerError::Options { engine: "any", why: format!("unknown compression {s:?}: use zstd, lz4 or none") }),
        }
    }
}

/// What is configured alike on every peer (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOptions {
    /// The keyspaces to open (created when missing); at least one.
    pub spaces: Vec<String>,
    /// The block cache's capacity in bytes (default 64 MiB).
    pub block_cache_bytes: u64,
    /// The memtable size per keyspace that triggers a flush, in bytes (default 64 MiB).
    pub memtable_bytes: u64,
    /// Whether every write is synced to disk before it returns (default false: written to the
    /// log without a sync; see the module docs).
    pub sync_writes: bool,
    /// Block compression (default LZ4; see the module docs).
    pub compression: Compression,
}

impl PeerOptions {
    /// The default options with the keyspaces `spaces`.
    pub fn with_spaces(spaces: &[&str]) -> PeerOptions {
        PeerOptions { spaces: spaces.iter().map(|s| s.to_string()).collect(), ..PeerOptions::default() }
    }
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            spaces: vec!["default".into()],
            block_cache_bytes: 64 << 20,
            memtable_bytes: 64 << 20,
            sync_writes: false,
            compression: Compression::Lz4,
        }
    }
}

/// A key-value engine compared with Talus (or Talus itself): ordered byte keys in named keyspaces.
///
/// Writes go through the write-ahead log, synced or not as [`PeerOptions::sync_writes`] says (see
/// the module docs). All methods take `&self`: a peer can be shared by threads.
///
/// Order: the peers keep keys in byte order. Talus orders partitions by token (a hash of the
/// key), so a full scan visits keys in that order, and the shapes differ in what else they can do
/// (see [`TalusPeer`]).
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
    /// the keyspace) in key order, until it returns `Break`; returns how many it visited. A full
    /// scan is `start` empty and `end` `None` (Talus visits it in token order).
    fn scan(&self, space: SpaceId, start: &[u8], end: Option<&[u8]>, visit: &mut Visitor<'_>) -> Result<u64, PeerError>;

    /// Calls `visit` with the first `n` live keys and values at or after `key` (fewer at the end
    /// of the keyspace), until it returns `Break`; returns how many it visited. Peers: in key
    /// order (a [`KvPeer::scan`] from `key`); Talus' key-value shape: in token order from the
    /// token of `key`.
    fn seek(&self, space: SpaceId, key: &[u8], n: u64, visit: &mut Visitor<'_>) -> Result<u64, PeerError> {
        if n == 0 {
            return Ok(0);
        }
        let mut left = n;
        self.scan(space, key, None, &mut |k, v| {
            left -= 1;
            if visit(k, v).is_break() || left == 0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
    }

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

/// The engines this crate knows, Talus in each of its shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// Talus, key-value shape ([`TalusShape::KeyValue`]).
    Talus,
    /// Talus, wide-partition shape ([`TalusShape::Wide`]).
    TalusWide,
    /// fjall 3.
    Fjall,
    /// RocksDB (needs the cargo feature `rocksdb`).
    RocksDb,
}

impl PeerKind {
    /// Every kind, compiled in or not.
    pub const ALL: [PeerKind; 4] = [PeerKind::Talus, PeerKind::TalusWide, PeerKind::Fjall, PeerKind::RocksDb];

    /// The name: `talus`, `talus-wide`, `fjall` or `rocksdb`.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Talus => "talus",
            PeerKind::TalusWide => "talus-wide",
            PeerKind::Fjall => "fjall",
            PeerKind::RocksDb => "rocksdb",
        }
    }

    /// The engine's name without the shape: `talus`, `fjall` or `rocksdb`.
    pub fn engine(self) -> &'static str {
        match self {
            PeerKind::Talus | PeerKind::TalusWide => "talus",
            PeerKind::Fjall => "fjall",
            PeerKind::RocksDb => "rocksdb",
        }
    }

    /// The data shape: `kv` (a key per partition; every peer), or `wide` (Talus' wide shape).
    pub fn shape(self) -> &'static str {
        match self {
            PeerKind::TalusWide => TalusShape::Wide.name(),
            PeerKind::Talus | PeerKind::Fjall | PeerKind::RocksDb => TalusShape::KeyValue.name(),
        }
    }

    /// Whether this is Talus (in either shape).
    pub fn is_talus(self) -> bool {
        matches!(self, PeerKind::Talus | PeerKind::TalusWide)
    }

    /// Whether this build can open the engine.
    pub fn compiled(self) -> bool {
        match self {
            PeerKind::Talus | PeerKind::TalusWide | PeerKind::Fjall => true,
            PeerKind::RocksDb => cfg!(feature = "rocksdb"),
        }
    }

    /// Whether the engine has range deletes.
    pub fn supports_delete_range(self) -> bool {
        matches!(self, PeerKind::RocksDb | PeerKind::TalusWide)
    }

    /// The kinds this build can open.
    pub fn available() -> Vec<PeerKind> {
        PeerKind::ALL.into_iter().filter(|k| k.compiled()).collect()
    }

    /// Opens (creating it if needed) the engine in `dir` with `options`.
    pub fn open(self, dir: &Path, options: &PeerOptions) -> Result<Box<dyn KvPeer>, PeerError> {
        match self {
            PeerKind::Talus => Ok(Box::new(TalusPeer::open(dir, options, TalusShape::KeyValue)?)),
            PeerKind::TalusWide => Ok(Box::new(TalusPeer::open(dir, options, TalusShape::Wide)?)),
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
