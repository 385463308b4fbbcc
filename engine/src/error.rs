//! The engine's error type: every failure says what and where.

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// Result alias of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Engine errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A data-model, validation or decoding error.
    #[error(transparent)]
    Format(#[from] talus_format::Error),
    /// No table with this name or id.
    #[error("unknown table {0}")]
    UnknownTable(String),
    /// A table with this name already exists.
    #[error("table {0} already exists")]
    TableExists(String),
    /// A mutation was built against a different version of the table's schema.
    #[error("mutation for table {table} does not match its schema: {reason}")]
    SchemaMismatch {
        /// The table.
        table: String,
        /// What differs.
        reason: String,
    },
    /// A malformed query.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// An I/O error with the path it concerns.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The commitlog failed (a write or sync error) and refuses writes until the engine is reopened (P6).
    #[error("commitlog failed, writes are refused until the engine is reopened: {0}")]
    CommitlogFailed(String),
    /// A commitlog entry larger than half a segment (R3.8).
    #[error("commitlog entry of {size} bytes exceeds the limit of {limit} bytes (half a segment)")]
    EntryTooLarge {
        /// Encoded size of the entry.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Corruption found while replaying the commitlog.
    #[error("corrupt commitlog segment {file} at offset {offset}: {reason}")]
    CommitlogCorrupt {
        /// The segment file.
        file: String,
        /// Byte offset of the corrupt region.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A corrupt engine metadata file (the manifest).
    #[error("corrupt {file}: {reason}")]
    MetadataCorrupt {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A corrupt or unreadable sstable; it was quarantined (left out of reads from then on).
    #[error("corrupt sstable {file} at offset {offset}: {reason}; the sstable is quarantined")]
    SstableCorrupt {
        /// The sstable file.
        file: String,
        /// Byte offset of the failure.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A compaction cannot run as asked: an input is unknown, not eligible (staging, quarantined)
    /// or already being compacted.
    #[error("compaction of {table} refused: {reason}")]
    CompactionRefused {
        /// The table.
        table: String,
        /// Why.
        reason: String,
    },
    /// A compaction was abandoned (engine shutdown); its inputs are untouched and its partial
    /// outputs removed.
    #[error("compaction of {0} abandoned at shutdown")]
    CompactionAbandoned(String),
    /// Invalid engine options.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A batchlog entry or batch that cannot be logged or decoded (what and where).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// A batch replay that the replayer refused or failed; the entry stays for a later replay.
    #[error("batch replay failed: {0}")]
    ReplayFailed(String),
}
