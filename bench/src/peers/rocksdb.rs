//! RocksDB as a [`KvPeer`] (cargo feature `rocksdb`).

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, Cache, ColumnFamily, ColumnFamilyDescriptor, CompactOptions, DBCompressionType, Options,
    ReadOptions, WriteOptions, DB,
};

use super::{check_spaces, find_space, Compression, KvPeer, PeerError, PeerOptions, SpaceId, Visitor};

const NAME: &str = "rocksdb";

/// RocksDB (the `rocksdb` crate): one database with a column family per
/// [`PeerOptions::spaces`] entry.
///
/// Configuration (see [`super`] for the common rules): one LRU block cache of
/// [`PeerOptions::block_cache_bytes`] shared by the column families, `write_buffer_size`
/// [`PeerOptions::memtable_bytes`], LZ4 or zstd on every level as [`PeerOptions::compression`] says, the
/// WAL on with `sync = false` (the default `WriteOptions`; `sync = true` with
/// [`PeerOptions::sync_writes`]), a bloom filter of 10 bits per key (not RocksDB's default, but fjall
/// and Talus have one), RocksDB's defaults otherwise (leveled compaction, 2 background jobs,
/// block-based tables of 4 KiB blocks). A manual compaction (`compact`) does not report errors:
/// the crate's `compact_range_cf_opt` has no result.
pub struct RocksPeer {
    dir: PathBuf,
    names: Vec<String>,
    write: WriteOptions,
    db: DB,
}

impl std::fmt::Debug for RocksPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksPeer").field("dir", &self.dir).field("spaces", &self.names).finish_non_exhaustive()
    }
}

impl RocksPeer {
    /// Opens (creating it if needed) a RocksDB database in `dir` with the column families of
    /// `options`.
    pub fn open(dir: &Path, options: &PeerOptions) -> Result<RocksPeer, PeerError> {
        check_spaces(NAME, options)?;
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_block_cache(&Cache::new_lru_cache(usize::try_from(options.block_cache_bytes).unwrap_or(usize::MAX)));
        let mut cf_options = Options::default();
        cf_options.set_compression_type(match options.compression {
            Compression::Zstd => DBCompressionType::Zstd,
            Compression::None => DBCompressionType::None,
            Compression::Lz4 => DBCompressionType::Lz4,
        });
        cf_options.set_write_buffer_size(usize::try_from(options.memtable_bytes).unwrap_or(usize::MAX));
        cf_options.set_block_based_table_factory(&table);
        let mut db_options = cf_options.clone();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        let families = options.spaces.iter().map(|name| ColumnFamilyDescriptor::new(name, cf_options.clone()));
        let db = DB::open_cf_descriptors(&db_options, dir, families)
            .map_err(|e| PeerError::engine(NAME, format!("opening {}", dir.display()), e))?;
        let mut write = WriteOptions::default();
        write.set_sync(options.sync_writes);
        Ok(RocksPeer { dir: dir.to_path_buf(), names: options.spaces.clone(), write, db })
    }

    /// The RocksDB handle (for measurements beyond the trait).
    pub fn database(&self) -> &DB {
        &self.db
    }

    fn cf(&self, space: SpaceId) -> Result<&ColumnFamily, PeerError> {
        let unknown = || PeerError::UnknownSpace { engine: NAME, name: format!("#{}", space.0), opened: self.names.clone() };
        let name = self.names.get(space.0).ok_or_else(unknown)?;
        self.db.cf_handle(name).ok_or_else(unknown)
    }
}

impl KvPeer for RocksPeer {
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
        self.db.put_cf_opt(self.cf(space)?, key, value, &self.write).map_err(|e| PeerError::engine(NAME, "put", e))
    }

    fn delete(&self, space: SpaceId, key: &[u8]) -> Result<(), PeerError> {
        self.db.delete_cf_opt(self.cf(space)?, key, &self.write).map_err(|e| PeerError::engine(NAME, "delete", e))
    }

    fn supports_delete_range(&self) -> bool {
        true
    }

    fn delete_range(&self, space: SpaceId, start: &[u8], end: &[u8]) -> Result<(), PeerError> {
        self.db.delete_range_cf_opt(self.cf(space)?, start, end, &self.write).map_err(|e| PeerError::engine(NAME, "delete_range", e))
    }

    fn get(&self, space: SpaceId, key: &[u8]) -> Result<Option<Vec<u8>>, PeerError> {
        let value = self.db.get_pinned_cf(self.cf(space)?, key).map_err(|e| PeerError::engine(NAME, "get", e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn scan(&self, space: SpaceId, start: &[u8], end: Option<&[u8]>, visit: &mut Visitor<'_>) -> Result<u64, PeerError> {
        let mut read = ReadOptions::default();
        if let Some(end) = end {
            read.set_iterate_upper_bound(end);
        }
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(space)?, read);
        iter.seek(start);
        let mut visited = 0;
        while iter.valid() {
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else { break };
            visited += 1;
            if visit(key, value).is_break() {
                break;
            }
            iter.next();
        }
        iter.status().map_err(|e| PeerError::engine(NAME, "scan", e))?;
        Ok(visited)
    }

    fn space_bytes(&self, space: SpaceId) -> Result<u64, PeerError> {
        let bytes = self.db.property_int_value_cf(self.cf(space)?, "rocksdb.total-sst-files-size");
        Ok(bytes.map_err(|e| PeerError::engine(NAME, "reading total-sst-files-size", e))?.unwrap_or(0))
    }

    fn flush(&self) -> Result<(), PeerError> {
        for name in &self.names {
            let cf = self.db.cf_handle(name).ok_or_else(|| PeerError::engine(NAME, "flush", format!("no column family {name:?}")))?;
            self.db.flush_cf(cf).map_err(|e| PeerError::engine(NAME, "flush", e))?;
        }
        Ok(())
    }

    fn compact(&self) -> Result<(), PeerError> {
        let mut options = CompactOptions::default();
        options.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        options.set_exclusive_manual_compaction(true);
        for name in &self.names {
            let cf = self.db.cf_handle(name).ok_or_else(|| PeerError::engine(NAME, "compact", format!("no column family {name:?}")))?;
            self.db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &options);
        }
        Ok(())
    }
}
