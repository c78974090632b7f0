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

/// Hands the executable's file pages back to the kernel once start-up is over; returns the bytes
/// advised. Reading the config, opening the stores and building the router run code that is not
/// needed again, and the kernel maps each page of the binary with its neighbours (fault-around,
/// 64 KiB), so after start-up ~23 MiB of the ~37 MiB release binary's text and rodata were
/// resident: more than half of the peak RSS of `scrape-peers`. `MADV_PAGEOUT` is a reclaim hint
/// that keeps the contents (the pages are re-read from the file if touched), so only what runs
/// later comes back. Mappings of the binary holding written (copy-on-write) pages, i.e. the
/// relocated `.data.rel.ro`, are left alone, as are writable ones. Linux 5.4+; elsewhere a no-op.
pub fn release_startup_pages() -> usize {
    #[cfg(target_os = "linux")]
    {
        let (Ok(exe), Ok(smaps)) = (std::fs::read_link("/proc/self/exe"), std::fs::read_to_string("/proc/self/smaps"))
        else {
            return 0;
        };
        let exe = exe.to_string_lossy();
        let mut ranges = Vec::new();
        let mut candidate: Option<(usize, usize)> = None;
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or("");
            if let Some((start, end)) = first.split_once('-')
                && let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16))
            {
                let perms = fields.next().unwrap_or("");
                // "start-end perms offset dev inode   path", single spaces up to the path.
                let path = line.splitn(6, ' ').nth(5).map(str::trim);
                candidate = (!perms.contains('w') && path == Some(exe.as_ref())).then_some((start, end));
            } else if first == "Anonymous:"
                && let Some(range) = candidate.take()
                && fields.next() == Some("0")
            {
                ranges.push(range);
            }
        }
        let mut released = 0;
        for (start, end) in ranges {
            // SAFETY: the range is one of this process's read-only mappings of its own executable
            // without private copies; MADV_PAGEOUT only reclaims, the contents stay the file's.
            if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) } == 0 {
                released += end - start;
            }
        }
        released
    }
    #[cfg(not(target_os = "linux"))]
    0
}

#[cfg(all(test, target_os = "linux"))]
mod page_tests {
    #[test]
    fn start_up_pages_of_the_binary_are_released_and_code_still_runs() {
        let released = super::release_startup_pages();
        assert!(released > 1 << 20, "the test binary's text and rodata are advised, got {released} bytes");
        // Code and constants of the advised mappings come back from the file.
        assert!(format!("{:?}", super::config::Config::default()).contains("data_dir"));
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
