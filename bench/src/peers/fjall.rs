//! fjall 3 as a [`KvPeer`].

use std::ops::Bound;
use std::path::{Path, PathBuf};

use fjall::config::CompressionPolicy;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{check_spaces, find_space, Compression, KvPeer, PeerError, PeerOptions, SpaceId, Visitor};

const NAME: &str = "fjall";

/// fjall 3: one [`Database`] with a keyspace per [`PeerOptions::spaces`] entry.
///
/// Configuration (see [`super`] for the common rules): block cache
/// [`PeerOptions::block_cache_bytes`], `max_memtable_size` [`PeerOptions::memtable_bytes`], the
/// journal flushed to the OS after every write (fjall's default, `manual_journal_persist =
/// false`) and, with [`PeerOptions::sync_writes`], persisted with `PersistMode::SyncData` after
/// every write; LZ4 compression from level 2 (fjall's default, kept for [`Compression::Lz4`] and
/// [`Compression::Zstd`]: it has no zstd), none with [`Compression::None`]; leveled compaction,
/// default worker threads. fjall has no range delete.
pub struct FjallPeer {
    dir: PathBuf,
    sync_writes: bool,
    // Field order matters: the keyspaces are dropped before the database.
    spaces: Vec<Keyspace>,
    names: Vec<String>,
    db: Database,
}

impl std::fmt::Debug for FjallPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallPeer").field("dir", &self.dir).field("spaces", &self.names).finish_non_exhaustive()
    }
}

impl FjallPeer {
    /// Opens (creating it if needed) a fjall database in `dir` with the keyspaces of `options`.
    pub fn open(dir: &Path, options: &PeerOptions) -> Result<FjallPeer, PeerError> {
        check_spaces(NAME, options)?;
        let db = Database::builder(dir)
            .cache_size(options.block_cache_bytes)
            .open()
            .map_err(|e| PeerError::engine(NAME, format!("opening {}", dir.display()), e))?;
        let mut spaces = Vec::with_capacity(options.spaces.len());
        for name in &options.spaces {
            let create = || {
                let create = KeyspaceCreateOptions::default().max_memtable_size(options.memtable_bytes);
                match options.compression {
                    // fjall has no zstd; its default is the LZ4 family (none in levels 0 and 1).
                    Compression::Zstd | Compression::Lz4 => create,
                    Compression::None => create.data_block_compression_policy(CompressionPolicy::disabled()),
                }
            };
            spaces.push(db.keyspace(name, create).map_err(|e| PeerError::engine(NAME, format!("opening keyspace {name:?}"), e))?);
        }
        Ok(FjallPeer { dir: dir.to_path_buf(), sync_writes: options.sync_writes, spaces, names: options.spaces.clone(), db })
    }

    /// The fjall database (for measurements beyond the trait).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Syncs the journal when every write must be durable.
    fn persist(&self, op: &'static str) -> Result<(), PeerError> {
        if self.sync_writes {
            self.db.persist(PersistMode::SyncData).map_err(|e| PeerError::engine(NAME, op, e))?;
        }
        Ok(())
    }

    fn ks(&self, space: SpaceId) -> Result<&Keyspace, PeerError> {
        self.spaces.get(space.0).ok_or_else(|| PeerError::UnknownSpace {
            engine: NAME,
            name: format!("#{}", space.0),
            opened: self.names.clone(),
        })
    }
}

impl KvPeer for FjallPeer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn space(&self, name: &str) -> Result<SpaceId, PeerError> {
        find_space(NAME, &self.names, name)
    }

    fn put(&self, space: SpaceId, key: &[u8], value: &[u8]) -> Result<(), PeerError> {
        self.ks(space)?.insert(key, value).map_err(|e| PeerError::engine(NAME, "put", e))?;
        self.persist("put")
    }

    fn delete(&self, space: SpaceId, key: &[u8]) -> Result<(), PeerError> {
        self.ks(space)?.remove(key).map_err(|e| PeerError::engine(NAME, "delete", e))?;
        self.persist("delete")
    }

    fn get(&self, space: SpaceId, key: &[u8]) -> Result<Option<Vec<u8>>, PeerError> {
        let value = self.ks(space)?.get(key).map_err(|e| PeerError::engine(NAME, "get", e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn scan(&self, space: SpaceId, start: &[u8], end: Option<&[u8]>, visit: &mut Visitor<'_>) -> Result<u64, PeerError> {
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let mut visited = 0;
        for guard in self.ks(space)?.range::<&[u8], _>((Bound::Included(start), upper)) {
            let (key, value) = guard.into_inner().map_err(|e| PeerError::engine(NAME, "scan", e))?;
            visited += 1;
            if visit(&key, &value).is_break() {
                break;
            }
        }
        Ok(visited)
    }

    fn space_bytes(&self, space: SpaceId) -> Result<u64, PeerError> {
        Ok(self.ks(space)?.disk_space())
    }

    fn flush(&self) -> Result<(), PeerError> {
        for ks in &self.spaces {
            ks.rotate_memtable_and_wait().map_err(|e| PeerError::engine(NAME, "flush", e))?;
        }
        Ok(())
    }

    fn compact(&self) -> Result<(), PeerError> {
        for ks in &self.spaces {
            ks.major_compact().map_err(|e| PeerError::engine(NAME, "major compaction", e))?;
        }
        Ok(())
    }
}
