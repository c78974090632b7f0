//! The `tarsier` binary's library half: the top-level configuration file and the wiring that
//! starts each role (`run`, `server`, `agent`) from the library crates. No business logic lives
//! here; it connects the collector, the stores and the HTTP layer and owns the shutdown order.

pub mod app;
pub mod cli;
pub mod config;
pub mod local_sink;
pub mod logging;
pub mod redact;
pub mod reload;
pub mod snapshot;

/// mimalloc instead of glibc's malloc: scraping and ingest allocate many small label strings and
/// free large per-batch buffers, and glibc then spends a large share of the CPU consolidating its
/// free lists (`malloc_consolidate` was 12% of a scrape profile). Feature `mimalloc` (default).
/// Measured (scrape-peers, 120 s, 10 node_exporters): glibc 7.05 CPU-s / 44 MiB peak RSS,
/// mimalloc 4.02 / 91, mimalloc with immediate purging ([`tune_allocator`]) 4.86 / 66.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tunes the allocator for a long-running process; call first thing in `main`. Environment
/// variables (`MIMALLOC_PURGE_DELAY`, `MIMALLOC_ALLOW_THP`) still win.
///
/// - Freed pages go back to the OS at once instead of after a delay (1 s in mimalloc 3): a third
///   less peak RSS for a fifth more CPU (figures above); an agent on every node is judged by both.
/// - Transparent huge pages are turned off for the process. mimalloc `madvise`s its arenas for
///   huge pages, so every 2 MiB region it touches is backed whole and purging 64 KiB inside one
///   frees nothing. tantivy starts new indexing and doc-store threads on every commit, so the
///   live heap wanders across the arena: in the 12-minute `soak` (logs only, 1,000 lines/s) the
///   server's RssAnon rose 50 -> 86 MiB with 20-46 MiB of it in huge pages, against 26 -> 43 MiB
///   (flat from minute 5) without them; heaptrack put the live heap at 29 MiB.
pub fn tune_allocator() {
    #[cfg(feature = "mimalloc")]
    {
        /// Indices in mimalloc 3's `mi_option_e` (the Rust bindings do not name these).
        const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;
        // SAFETY: sets documented options by their enum values; mimalloc reads options atomically.
        // Only when an option holds its default, so a renumbered enum is left alone.
        unsafe {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none()
                && matches!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 10 | 1000)
            {
                libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
            }
            if std::env::var_os("MIMALLOC_ALLOW_THP").is_none()
                && libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP) == 1
            {
                libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
                // mimalloc applies the option at its start, before `main`: its first arena is
                // already advised. The process-wide flag covers existing mappings too.
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
            }
        }
    }
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    #[test]
    fn tune_allocator_purges_at_once_without_huge_pages() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        super::tune_allocator();
        // SAFETY: reads an option.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(15) }, 0, "purge_delay is option 15 and now 0");
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(43) }, 0, "allow_thp is option 43 and now 0");
            #[cfg(target_os = "linux")]
            // SAFETY: reads the calling process's THP flag.
            assert_eq!(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }, 1, "THP is off for the process");
        }
    }
}
