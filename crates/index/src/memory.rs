//! Process memory settings for a long-running index: on Linux with glibc,
//! [`limit_malloc_arenas`] keeps malloc from holding on to freed memory
//! (two arenas instead of one per thread, blocks of 128 KiB and more mapped
//! and returned to the OS when freed, free memory trimmed past 128 KiB).
//! Measured with bench/index.sh (300 peers × 1000 files): peak RSS 996 MiB
//! with glibc's defaults, 169 MiB with these, at the same join rate.
//!
//! This module changes nothing but the C allocator's settings and does
//! nothing on other platforms; the binary decides whether to call it.

/// Applies the settings above; call it once, early (before the index starts).
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: libc::c_int = 128 * 1024;
        // SAFETY: mallopt only changes allocator parameters; it is safe to
        // call at any time from any thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
            libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
        }
    }
}
