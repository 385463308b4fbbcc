//! Shared setup of the integration tests: a fresh engine with one table.

use std::sync::Arc;

use talus::commitlog::CommitlogOptions;
use talus::format::{ColumnType, Schema, SchemaRef};
use talus::fs::{CrashMode, SimFs};
use talus::{Engine, EngineOptions, Result};

/// Options for engines of semantic tests: small commitlog segments.
pub fn test_options() -> EngineOptions {
    EngineOptions {
        commitlog: CommitlogOptions { segment_size: 1 << 20, ..CommitlogOptions::default() },
        background_flush: false,
        background_compaction: false,
        // Tests that turn background work on wait for it with deadlines while other tests keep
        // both cores busy: at the default niceness it could starve there.
        flush_niceness: 0,
        compaction_niceness: 0,
        ..EngineOptions::default()
    }
}

/// A fresh engine on a fresh in-memory file system (`SimFs`).
pub fn sim_engine(seed: u64) -> Result<Engine> {
    Engine::open_with_fs(Arc::new(SimFs::new(seed)), "/db", test_options())
}

/// A fresh engine on its own in-memory file system, with table `ks.t`:
/// `(pk int, ck int) v <value_type>`.
pub fn engine_with_table(tag: &str, value_type: ColumnType) -> Result<(Engine, SchemaRef)> {
    let engine = sim_engine(tag.len() as u64)?;
    let schema = Schema::builder("ks", "t")
        .partition_key("pk", ColumnType::Int)
        .clustering("ck", ColumnType::Int)
        .regular("v", value_type)
        .build()?;
    engine.create_table(schema.clone())?;
    Ok((engine, schema))
}

/// The crash modes of the crash-point campaigns, named for their reports: drop all unsynced data,
/// keep all of it, and three odds of random loss and tearing.
pub fn crash_modes() -> [(&'static str, CrashMode); 5] {
    [
        ("drop_all", CrashMode::DropAll),
        ("keep_all", CrashMode::KeepAll),
        ("random_tearing", CrashMode::Random { keep: 0.5, tear: 0.25 }),
        ("mostly_lost", CrashMode::Random { keep: 0.1, tear: 0.5 }),
        ("mostly_kept", CrashMode::Random { keep: 0.9, tear: 0.05 }),
    ]
}
