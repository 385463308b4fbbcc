//! Shared setup of the integration tests: a fresh engine with one table.

use talus::format::{ColumnType, Schema, SchemaRef};
use talus::{Engine, EngineOptions, Result};

/// A fresh engine in a unique temporary directory, with table `ks.t`:
/// `(pk int, ck int) v <value_type>`.
pub fn engine_with_table(tag: &str, value_type: ColumnType) -> Result<(Engine, SchemaRef)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("talus-{tag}-{}-{n}", std::process::id()));
    let engine = Engine::open(dir, EngineOptions::default())?;
    let schema = Schema::builder("ks", "t")
        .partition_key("pk", ColumnType::Int)
        .clustering("ck", ColumnType::Int)
        .regular("v", value_type)
        .build()?;
    engine.create_table(schema.clone())?;
    Ok((engine, schema))
}
