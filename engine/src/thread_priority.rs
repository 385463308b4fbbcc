//! Background threads' priority: flushes and compactions run at a higher niceness than the
//! threads that embed the engine ([`crate::EngineOptions::flush_niceness`],
//! [`crate::EngineOptions::compaction_niceness`]), as ScyllaDB gives its memtable-flush and
//! compaction scheduling groups fewer shares than statements.
//!
//! On Linux the niceness is a per-thread attribute, inherited by the threads a thread starts, so
//! a flush's or compaction's helper threads (block compression, read-ahead) run at it too.
//!
//! Thread-safety: affects only the calling thread.

/// Starts a background thread named `name` that raises its niceness to `niceness` (see
/// [`run_in_background`]), then runs `work`.
pub(crate) fn spawn_background<T: Send + 'static>(
    name: String,
    niceness: u8,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new().name(name).spawn(move || {
        // Not fatal: the thread then runs at the engine's priority.
        let _ = run_in_background(niceness);
        work()
    })
}

/// Raises the calling thread's niceness to `niceness` (1 to 19, as validated; 0 leaves it
/// alone). Failure is returned, not fatal: the thread then simply runs at the engine's priority.
fn run_in_background(niceness: u8) -> std::io::Result<()> {
    if niceness == 0 {
        return Ok(());
    }
    set_niceness(i32::from(niceness))
}

#[cfg(target_os = "linux")]
fn set_niceness(niceness: i32) -> std::io::Result<()> {
    // SAFETY: setpriority takes plain integers and touches no memory of ours; with PRIO_PROCESS
    // and who = 0 Linux applies it to the calling thread only (niceness is per thread there).
    #[allow(unsafe_code)]
    let status = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, niceness) };
    if status == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_niceness(_niceness: i32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A background thread started at niceness 10 runs at it (or at the process' own, when
    /// that is already higher), and a thread it starts inherits it.
    #[cfg(target_os = "linux")]
    #[test]
    fn background_niceness_is_set_and_inherited() {
        let read = || std::fs::read_to_string("/proc/thread-self/stat").ok().and_then(|s| nice_of(&s));
        let own = read();
        let (inside, child) = spawn_background("talus-test".into(), 10, move || (read(), std::thread::spawn(read).join().ok().flatten()))
            .ok()
            .and_then(|thread| thread.join().ok())
            .unwrap_or((None, None));
        let own = own.unwrap_or(0);
        assert_eq!(inside, Some(own.max(10)));
        assert_eq!(child, inside);
    }

    /// Field 19 of `/proc/<pid>/task/<tid>/stat`: the niceness.
    #[cfg(target_os = "linux")]
    fn nice_of(stat: &str) -> Option<i64> {
        stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
    }
}
