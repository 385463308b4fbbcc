//! `talus-format`: the data model of Talus and every byte-level encoding.
//!
//! Pure code: no I/O besides byte slices. The data model follows ScyllaDB's rules, cited by number
//! from `reference/storage-semantics.md` (R0–R1) in each module.

pub mod cell;
pub mod clustering_encoding;
pub mod commitlog_segment;
#[doc(hidden)]
pub mod commitlog_segment_check;
pub mod error;
pub mod fragment;
pub mod fs;
pub mod manifest;
pub mod mutation;
pub mod mutation_codec;
pub mod partition_key;
pub mod position;
pub mod range_tombstone;
pub mod replay_position;
pub mod row;
pub mod schema;
pub mod schema_codec;
pub mod sstable;
pub mod time;
pub mod token;
pub mod tombstone;
pub mod value;

pub use cell::{Cell, ColumnId, NeverPurge, PurgeRule, RowMarker};
pub use error::{Error, Result};
pub use fragment::{Fragment, FragmentStream, StreamValidator};
pub use fs::{DirLock, Fs, FsFile, OpenMode};
pub use mutation::{Mutation, MutationBuilder, PartitionUpdate};
pub use mutation_codec::{decode_mutation, encode_mutation, MUTATION_FORMAT_VERSION};
pub use partition_key::{DecoratedKey, PartitionKey};
pub use position::{BoundKind, ClusteringPrefix, Position, PositionRef, Region};
pub use range_tombstone::{RangeTombstone, RangeTombstoneChange, RangeTombstoneList};
pub use replay_position::ReplayPosition;
pub use row::{Cells, CompactionPurpose, Row, RowTombstone, RowTombstoneFate};
pub use schema::{RangeBound, Schema, SchemaRef, TableId, TableOptions, TombstoneGcMode};
pub use schema_codec::{decode_schema, encode_schema, SCHEMA_FORMAT_VERSION};
pub use time::{GcTime, Timestamp};
pub use token::Token;
pub use tombstone::Tombstone;
pub use value::{ColumnType, Value};
