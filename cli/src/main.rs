//! The `talus` command-line tool.
//!
//! `talus demo` opens an embedded engine in a temporary directory, writes rows, deletes a range,
//! a row and a partition, and prints what each query returns together with the query statistics;
//! then it reopens the directory and reports what the commitlog replay recovered.
//!
//! `talus bench` runs the benchmarks of `talus-bench`, with the same options.
//!
//! `talus sstable dump|stats|verify`, `talus commitlog dump` and `talus manifest dump` inspect the
//! files of an engine directory read-only (see the `inspect` module).

use std::process::ExitCode;

/// mimalloc, as in `talus-bench`: the engine allocates small objects on one thread (writers) and
/// frees them on another (a flushed memtable is dropped by the flusher); glibc's allocator
/// serializes that on an arena lock. Freed memory stays in the process
/// ([`talus_bench::allocator`]).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use talus::format::{ColumnType, GcTime, Mutation, RangeBound, Schema, SchemaRef, Timestamp, Value};
use talus::{Engine, EngineOptions, Query, QueryResult};

mod batchlog_demo;
mod inspect;

#[derive(Parser)]
#[command(name = "talus", version, about = "Talus storage engine tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: a storage node's batchlog in both layouts, replay cost against history.
    BatchlogDemo(batchlog_demo::DemoArgs),
    /// The benchmarks of `talus-bench` (same options): Talus and its peers, workload by workload.
    Bench(talus_bench::cli::BenchArgs),
    /// Write, delete and query an embedded engine, printing every step.
    Demo {
        /// Partitions to write.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Rows per partition.
        #[arg(long, default_value_t = 8)]
        rows: i32,
    },
    /// Inspect sstable files: dump fragments, show statistics, verify.
    Sstable {
        #[command(subcommand)]
        command: inspect::SstableCommand,
    },
    /// Inspect commitlog segment files.
    Commitlog {
        #[command(subcommand)]
        command: inspect::CommitlogCommand,
    },
    /// Inspect the MANIFEST of an engine directory.
    Manifest {
        #[command(subcommand)]
        command: inspect::ManifestCommand,
    },
}

fn main() -> ExitCode {
    talus_bench::allocator::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BatchlogDemo(args) => {
            return match batchlog_demo::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Bench(args) => {
            return match talus_bench::cli::run(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Demo { partitions, rows } => demo(partitions, rows),
        Command::Sstable { command } => return inspect::run_sstable(command),
        Command::Commitlog { command } => return inspect::run_commitlog(command),
        Command::Manifest { command } => return inspect::run_manifest(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_result(schema: &Schema, label: &str, result: &QueryResult) -> talus::Result<()> {
    println!("-- {label}");
    for partition in &result.partitions {
        let key = partition.key.key.decode(&schema.partition_key_types())?;
        for row in &partition.rows {
            let ck = schema.decode_clustering(&row.clustering)?;
            let cells: Vec<String> = row
                .cells
                .iter()
                .filter_map(|(id, bytes)| {
                    let def = schema.column_by_id(*id)?;
                    let value = Value::deserialize(def.ty, bytes).ok()?;
                    Some(format!("{}={value:?}", def.name))
                })
                .collect();
            println!("   pk={key:?} ck={ck:?} {}", cells.join(" "));
        }
    }
    let s = &result.stats;
    println!(
        "   [{} live rows; tombstones seen: {} partition, {} range changes, {} row, {} cell; {} dead rows]",
        s.live_rows,
        s.compaction.partition_tombstones,
        s.compaction.range_tombstone_changes,
        s.compaction.row_tombstones,
        s.compaction.dead_cells,
        s.compaction.dead_rows
    );
    Ok(())
}

fn demo(partitions: i32, rows: i32) -> talus::Result<()> {
    let dir = std::env::temp_dir().join(format!("talus-demo-{}", std::process::id()));
    let engine = Engine::open(&dir, EngineOptions::default())?;
    println!("opened an embedded engine in {}", dir.display());
    let schema: SchemaRef = Schema::builder("demo", "events")
        .partition_key("sensor", ColumnType::Int)
        .clustering("seq", ColumnType::Int)
        .regular("reading", ColumnType::Double)
        .regular("note", ColumnType::Text)
        .build()?;
    engine.create_table(schema.clone())?;
    let now = GcTime::now();
    for p in 0..partitions {
        let mut builder = Mutation::builder(&schema, &[Value::Int(p)]).now(now);
        for r in 0..rows {
            let ts = Timestamp::now();
            builder = builder
                .insert(&[Value::Int(r)], ts)
                .set(&[Value::Int(r)], "reading", Value::Double(f64::from(p * 100 + r) / 10.0), ts)
                .set(&[Value::Int(r)], "note", Value::Text(format!("p{p} r{r}")), ts);
        }
        engine.apply(&builder.build()?)?;
    }
    println!("wrote {partitions} partitions x {rows} rows");
    let table = schema.full_name();
    print_result(&schema, "partition 0", &engine.query(&Query::partition(&schema, &[Value::Int(0)])?)?)?;

    let delete = Mutation::builder(&schema, &[Value::Int(0)])
        .now(now)
        .delete_range(RangeBound::Inclusive(vec![Value::Int(2)]), RangeBound::Exclusive(vec![Value::Int(6)]), Timestamp::now())
        .delete_row(&[Value::Int(7)], Timestamp::now())
        .build()?;
    engine.apply(&delete)?;
    print_result(
        &schema,
        "partition 0 after DELETE seq >= 2 AND seq < 6, and DELETE seq = 7",
        &engine.query(&Query::partition(&schema, &[Value::Int(0)])?)?,
    )?;

    if partitions > 1 {
        engine.apply(&Mutation::builder(&schema, &[Value::Int(1)]).now(now).delete_partition(Timestamp::now()).build()?)?;
    }
    print_result(&schema, "full scan after deleting partition 1", &engine.query(&talus::scan_all(&table))?)?;
    let stats = engine.memtable_stats(&table)?;
    println!("memtable: {} partitions, ~{} bytes", stats.partitions, stats.memory_bytes);
    let before = engine.query(&talus::scan_all(&table))?.stats.live_rows;
    drop(engine);

    // Every write above was acknowledged after its commitlog fsync: reopening replays the log.
    let engine = Engine::open(&dir, EngineOptions::default())?;
    let report = engine.recovery_report();
    let after = engine.query(&talus::scan_all(&table))?.stats.live_rows;
    println!(
        "reopened: replayed {} commitlog entries from {} segment(s), recovered to {}; {after} live rows (before: {before})",
        report.entries_replayed,
        report.segments_replayed,
        report.recovered_to.map_or("nothing".to_string(), |p| p.to_string()),
    );
    drop(engine);
    std::fs::remove_dir_all(&dir).map_err(|source| talus::Error::Io { path: dir.display().to_string(), source })?;
    Ok(())
}
