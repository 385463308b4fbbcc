//! The error type of the format crate: every failure names what was wrong and where.

/// Result alias of the format crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors raised by the data model, validation and decoders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value does not fit its declared type.
    #[error("invalid {column_type} value: {reason}")]
    InvalidValue {
        /// The CQL type name.
        column_type: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A value has a different type than its column.
    #[error("column {column}: expected a {expected} value, got {found}")]
    WrongType {
        /// The column name.
        column: String,
        /// The declared type.
        expected: &'static str,
        /// The type of the value supplied.
        found: &'static str,
    },
    /// A column name that the schema does not have (or not of the expected kind).
    #[error("table {table}: unknown {kind} column {column:?}")]
    UnknownColumn {
        /// The table name.
        table: String,
        /// "regular", "static", ...
        kind: &'static str,
        /// The name supplied.
        column: String,
    },
    /// A key has the wrong number of components.
    #[error("table {table}: {key} key needs {expected} component(s), got {found}")]
    KeyArity {
        /// The table name.
        table: String,
        /// "partition" or "clustering".
        key: &'static str,
        /// How many the schema requires (or allows at most, for prefixes).
        expected: usize,
        /// How many were supplied.
        found: usize,
    },
    /// A key, value or mutation is larger than its documented limit.
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// What is too large.
        what: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A range whose start is after its end, or otherwise malformed bounds.
    #[error("invalid range: {0}")]
    InvalidRange(String),
    /// A TTL outside 1..=max_ttl or another bad write option.
    #[error("invalid write option: {0}")]
    InvalidOption(String),
    /// Bytes that do not decode: what structure, at which offset, and why.
    #[error("corrupt {structure} at offset {offset}: {reason}")]
    Corrupt {
        /// The structure being decoded.
        structure: &'static str,
        /// Byte offset within the input.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// Reading or writing a file failed (the writers of the sstable format report sink errors).
    #[error("I/O error: {0}")]
    Io(String),
    /// A fragment stream broke an ordering rule (R1.36).
    #[error("invalid fragment stream: {0}")]
    InvalidStream(String),
}
