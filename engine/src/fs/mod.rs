//! File systems behind the [`Fs`] trait (DESIGN §9): the real one, the crash simulator and the
//! fault injector. The trait itself lives in `talus_format::fs` so decoders can read through it.

pub mod fault;
pub mod real;
pub mod sim;

pub use fault::{Fault, FaultFs, FaultRule, OpKind, Trigger};
pub use real::RealFs;
pub use sim::{CrashMode, SimFs};
pub use talus_format::fs::{create_dir_durable, write_file_atomic, DirLock, Fs, FsFile, OpenMode};
