//! The inspection tools of the `talus` binary: `sstable dump|stats|verify`, `commitlog dump` and
//! `manifest dump`.
//!
//! Every tool reads files read-only through `std` (sstables through a read-only memory map), never
//! takes the engine's directory lock and never writes anything, so it can run next to a live
//! engine. Failures are one line naming the file and what is wrong, never a panic.
//!
//! Exit codes: 0 success; 1 the data is damaged or not what was asked for (corrupt at an offset,
//! not an sstable, partition absent, problems found by `verify`); 2 usage and I/O errors (missing
//! file, unreadable directory, bad argument).

mod commitlog;
mod common;
mod manifest;
mod sstable;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// `talus sstable ...`
#[derive(Subcommand)]
pub enum SstableCommand {
    /// Print every fragment of an sstable as one JSON line (like `scylla sstable dump-data`).
    Dump {
        /// The sstable file.
        file: PathBuf,
        /// Only the partition with this key (hex of the legacy-form key bytes).
        #[arg(long)]
        partition: Option<String>,
    },
    /// Print the footer, the statistics and the counts of an sstable as pretty JSON.
    Stats {
        /// The sstable file.
        file: PathBuf,
    },
    /// Check sstables: checksums, index structures and a full scan (exit 1 when problems are found).
    Verify {
        /// The sstable files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `talus commitlog ...`
#[derive(Subcommand)]
pub enum CommitlogCommand {
    /// Print the records, end state and corrupt regions of commitlog segments.
    Dump {
        /// An engine directory, its `commitlog` directory, or one segment file.
        path: PathBuf,
        /// Decode and summarize the mutations of every record.
        #[arg(long)]
        mutations: bool,
    },
}

/// `talus manifest ...`
#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Print every manifest record with its offset and edits, then the resulting state.
    Dump {
        /// An engine directory or a `MANIFEST` file.
        path: PathBuf,
    },
}

/// A failure of a tool: the one-line message and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// 1: damaged or unexpected data; 2: usage or I/O error.
    pub code: u8,
    /// What went wrong, naming the file.
    pub message: String,
}

impl CliError {
    /// A usage or I/O error (exit code 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError { code: 2, message: message.into() }
    }

    /// Damaged or unexpected data (exit code 1).
    pub fn data(message: impl Into<String>) -> CliError {
        CliError { code: 1, message: message.into() }
    }
}

/// The result of a tool.
pub type CliResult<T = ()> = Result<T, CliError>;

fn finish(result: CliResult<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Runs `talus sstable <command>`.
pub fn run_sstable(command: SstableCommand) -> ExitCode {
    finish(match command {
        SstableCommand::Dump { file, partition } => sstable::dump(&file, partition.as_deref()).map(|()| ExitCode::SUCCESS),
        SstableCommand::Stats { file } => sstable::stats(&file).map(|()| ExitCode::SUCCESS),
        SstableCommand::Verify { files } => Ok(verify::verify_files(&files)),
    })
}

/// Runs `talus commitlog <command>`.
pub fn run_commitlog(command: CommitlogCommand) -> ExitCode {
    finish(match command {
        CommitlogCommand::Dump { path, mutations } => commitlog::dump(&path, mutations),
    })
}

/// Runs `talus manifest <command>`.
pub fn run_manifest(command: ManifestCommand) -> ExitCode {
    finish(match command {
        ManifestCommand::Dump { path } => manifest::dump(&path),
    })
}
