//! The allocator setting of the binaries that run engines side by side (`talus-bench`,
//! `talus`): both allocate with mimalloc, the same allocator for every Rust engine of a run
//! (Talus and fjall; RocksDB allocates in C++ with the system allocator).
//!
//! [`keep_freed_memory`] turns mimalloc's purging off: memory freed by one engine (a flushed
//! memtable) stays in the process for the next allocations instead of going back to the OS a
//! second later (mimalloc v3's default) and being faulted in (and zeroed) again. On this
//! project's 2-core VM a page faulted in costs far more than on bare metal (a 1M-key
//! `fillrandom` spent a third of its writer's time in the kernel zeroing fresh huge pages), and
//! how much of it a run paid varied from run to run; with purging off both Talus and fjall fill
//! faster and steadier. A process
//! embedding an engine would make the same choice for its own allocator; it is a property of the
//! process, set before any engine opens, the same for every engine measured.

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc v3's
/// `include/mimalloc.h`): milliseconds before freed memory is returned to the OS, -1 for never.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process (see the module docs). Call first thing in `main`, before
/// any thread starts (mimalloc's option setters are not thread-safe). An explicit
/// `MIMALLOC_PURGE_DELAY` in the environment wins.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` writes one of mimalloc's option words; it is called before the
    // process starts any thread, so nothing reads the option concurrently.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
    };
}

#[cfg(test)]
mod tests {
    /// The option's position is the one mimalloc reads as the purge delay: its default (v3's
    /// `src/options.c`) is 1000 ms.
    #[test]
    fn purge_delay_option_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: a read of an option word.
        #[allow(unsafe_code)]
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}
