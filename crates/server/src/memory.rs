//! The server's memory allocator and what it says about itself at `/metrics`.
//!
//! On Linux with glibc the server allocates through jemalloc. glibc keeps freed memory in
//! per-thread arenas and hands little of it back, so a long-running server with connections and
//! sessions coming and going grows for a long time before it settles (a soak run kept climbing
//! for half an hour); jemalloc returns unused pages to the system after a few seconds, so resident
//! memory follows what is really in use. SQLite allocates through the C library, so both heaps are
//! reported.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One reading of the process's heaps, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    /// Bytes the server's own allocations (Rust code) hold.
    pub allocated: u64,
    /// Pages the allocator holds in memory for them, in use or waiting to be returned.
    pub resident: u64,
    /// Bytes held through the C library's malloc (SQLite, TLS, the system's libraries).
    pub c_malloc_in_use: u64,
}

/// Reads the heaps; `None` where the platform does not say.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap() -> Option<Heap> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc's statistics are a snapshot refreshed by advancing the epoch.
    epoch::advance().ok()?;
    // SAFETY: mallinfo2 only reads glibc's arena counters; it has no preconditions.
    let c = unsafe { libc::mallinfo2() };
    Some(Heap {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
        c_malloc_in_use: (c.uordblks + c.hblkhd) as u64,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap() -> Option<Heap> {
    None
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::heap;

    #[test]
    fn allocations_show_in_the_heap_reading() {
        let before = heap().expect("jemalloc statistics");
        let block = vec![7u8; 64 << 20];
        let during = heap().expect("jemalloc statistics");
        assert!(
            during.allocated >= before.allocated + (60 << 20),
            "{before:?} → {during:?}"
        );
        assert!(during.resident >= during.allocated / 2, "{during:?}");
        drop(std::hint::black_box(block));
        let after = heap().expect("jemalloc statistics");
        assert!(
            after.allocated + (60 << 20) <= during.allocated,
            "{during:?} → {after:?}"
        );
    }
}
