//! The engine's error type: every failure says what and where.

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
}
