//! Per-segment word lists, so a one-word `|=` needle finds the index words that hold it without
//! walking term dictionaries. Such a needle may lie inside any indexed word; walking a segment's
//! tantivy FST dictionary to find those words decodes a `TermInfo` per key and cost ~0.7 s per
//! million lines. Beside each segment this keeps the segment's distinct `line` words as one
//! sorted, newline-separated blob, mmap'ed and searched with memmem at memory speed.
//!
//! Layout: `<partition>/terms/<segment uuid>.terms`: the header line [`HEADER`], then one zstd
//! frame of the list body: every word of the segment's `line` dictionary followed by `\n`, in
//! dictionary order (words never hold `\n`: it is a separator for every tokenizer the partitions
//! use). zstd halves the lists (random ids dominate them; sorted, they share prefixes), which were
//! a tenth of a partition's bytes; a decompressed list is kept in the store's [`WordListCache`]
//! (`indexer.word_list_cache_bytes`, least recently used evicted) while its segment lives. Lists
//! of the first format (header `tarsier-terms 1`, the body stored plain) are still read, straight
//! from the mmap. Lifecycle:
//! - written atomically (temp file + rename) by [`TermLists::sync`] after each commit reloads the
//!   reader, for every visible segment without one: new segments of the commit and segments that
//!   merges produced since the last reload;
//! - the same call deletes the lists of segments no longer visible (merged away), and so does
//!   opening the partition (a crash between a merge and the next sync leaves one behind);
//! - deleted with the partition directory by retention.
//!
//! Segments are immutable and lose no words (nothing is deleted but whole partitions), so a list
//! stays exact for its segment's lifetime. A missing or malformed list is never an error: the
//! needle walks that segment's dictionary as before and writes the list for next time.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use tantivy::directory::{Directory, MmapDirectory, OwnedBytes};
use tantivy::index::SegmentId;
use tantivy::schema::Field;
use tantivy::{Searcher, SegmentReader};

use crate::error::Error;

/// The folder of a partition that holds the lists.
const TERMS_DIR: &str = "terms";
const EXTENSION: &str = "terms";
/// First line of every list written now: the body follows as one zstd frame.
const HEADER: &[u8] = b"tarsier-terms 2\n";
/// First line of the lists of the first format: the body follows plain.
const HEADER_PLAIN: &[u8] = b"tarsier-terms 1\n";
/// zstd level of the lists: 3 compresses a list of random ids as well as 9 (2.2x), at list
/// writing speed.
const ZSTD_LEVEL: i32 = 3;
/// Tells the partitions sharing a [`WordListCache`] apart (segment ids are unique anyway; the
/// owner says whose segments to drop when a partition syncs or closes).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// Decompressed word lists of all partitions of a store, at most `budget` bytes: past it the least
/// recently searched lists are evicted (and decompressed again when searched), and a list not
/// searched for `idle` is dropped. Without these bounds the cache held the lists of every segment
/// ever searched, and the server's heap grew with the stored logs (~70 MiB an hour at 1,000
/// lines/s in the soak benchmark): a dashboard's last-minute `|= "ERROR"` panel searches the
/// newest segments, and every segment was once the newest until merged away.
pub(crate) struct WordListCache {
    budget: usize,
    idle: Duration,
    state: Mutex<CacheState>,
    held_bytes: Gauge,
    evictions: Counter,
}

#[derive(Default)]
struct CacheState {
    lists: HashMap<SegmentId, CachedList>,
    held: usize,
    clock: u64,
}

struct CachedList {
    body: OwnedBytes,
    owner: u64,
    last_used: u64,
    used_at: Instant,
}

impl WordListCache {
    /// A cache of at most `budget` bytes (0 keeps nothing) whose lists live `idle` past their
    /// last search, reporting into `held_bytes` and `evictions`.
    pub fn new(budget: usize, idle: Duration, held_bytes: Gauge, evictions: Counter) -> Arc<WordListCache> {
        Arc::new(WordListCache { budget, idle, state: Mutex::new(CacheState::default()), held_bytes, evictions })
    }

    fn get(&self, segment: SegmentId) -> Option<OwnedBytes> {
        let mut state = self.state.lock();
        state.clock += 1;
        let now = state.clock;
        let cached = state.lists.get_mut(&segment)?;
        cached.last_used = now;
        cached.used_at = Instant::now();
        Some(cached.body.clone())
    }

    fn insert(&self, owner: u64, segment: SegmentId, body: &OwnedBytes) {
        if body.len() > self.budget {
            return;
        }
        let mut state = self.state.lock();
        state.clock += 1;
        let last_used = state.clock;
        state.held += body.len();
        let cached = CachedList { body: body.clone(), owner, last_used, used_at: Instant::now() };
        if let Some(previous) = state.lists.insert(segment, cached) {
            state.held -= previous.body.len();
        }
        while state.held > self.budget {
            let Some(oldest) = state.lists.iter().min_by_key(|(_, list)| list.last_used).map(|(id, _)| *id) else {
                break;
            };
            if let Some(evicted) = state.lists.remove(&oldest) {
                state.held -= evicted.body.len();
                self.evictions.inc();
            }
        }
        self.held_bytes.set(state.held as i64);
    }

    /// Drops the lists of `owner` whose segment `keep` refuses, and every list idle at `now`.
    fn retain(&self, owner: u64, keep: impl Fn(&SegmentId) -> bool, now: Instant) {
        let mut state = self.state.lock();
        let (mut freed, mut expired) = (0, 0);
        state.lists.retain(|id, list| {
            if list.owner == owner && !keep(id) {
                freed += list.body.len();
                return false;
            }
            if now.saturating_duration_since(list.used_at) >= self.idle {
                freed += list.body.len();
                expired += 1;
                return false;
            }
            true
        });
        state.held -= freed;
        self.evictions.inc_by(expired);
        self.held_bytes.set(state.held as i64);
    }

    /// Bytes held (tests).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.state.lock().held
    }
}

/// The word lists of one partition.
pub(crate) struct TermLists {
    path: PathBuf,
    dir: MmapDirectory,
    /// Decompressed lists, shared with the store's other partitions.
    cache: Arc<WordListCache>,
    owner: u64,
}

impl Drop for TermLists {
    fn drop(&mut self) {
        self.cache.retain(self.owner, |_| false, Instant::now());
    }
}

/// What one [`TermLists::sync`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SyncCounts {
    pub written: usize,
    pub deleted: usize,
}

fn file_name(segment: SegmentId) -> String {
    format!("{}.{EXTENSION}", segment.uuid_string())
}

impl TermLists {
    /// Opens (creating) the lists folder of the partition in `partition_dir` and deletes the lists
    /// of segments `searcher` does not have.
    pub fn open(partition_dir: &Path, searcher: &Searcher, cache: Arc<WordListCache>) -> Result<TermLists, Error> {
        let path = partition_dir.join(TERMS_DIR);
        fs::create_dir_all(&path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        let dir = MmapDirectory::open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), std::io::Error::other(e.to_string())))?;
        let lists = TermLists { path, dir, cache, owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed) };
        lists.delete_stale(searcher)?;
        Ok(lists)
    }

    /// The list of `segment`: its words, each followed by `\n`; `None` when there is no
    /// well-formed list.
    pub fn get(&self, segment: SegmentId) -> Option<OwnedBytes> {
        if let Some(body) = self.cache.get(segment) {
            return Some(body);
        }
        let bytes = self.dir.open_read(Path::new(&file_name(segment))).ok()?.read_bytes().ok()?;
        let body = if bytes.as_slice().starts_with(HEADER_PLAIN) {
            bytes.slice(HEADER_PLAIN.len()..bytes.len())
        } else if bytes.as_slice().starts_with(HEADER) {
            let body = zstd::stream::decode_all(&bytes.as_slice()[HEADER.len()..]).ok()?;
            let body = OwnedBytes::new(body);
            self.cache.insert(self.owner, segment, &body);
            body
        } else {
            return None;
        };
        if !body.is_empty() && body.as_slice().last() != Some(&b'\n') {
            return None;
        }
        Some(body)
    }

    /// Writes the list of `segment` from `body` (words each followed by `\n`).
    pub fn write(&self, segment: SegmentId, body: &[u8]) -> Result<(), Error> {
        let name = file_name(segment);
        let compressed =
            zstd::bulk::compress(body, ZSTD_LEVEL).map_err(|e| Error::io(format!("compress term list {name}"), e))?;
        let mut content = Vec::with_capacity(HEADER.len() + compressed.len());
        content.extend_from_slice(HEADER);
        content.extend_from_slice(&compressed);
        self.dir.atomic_write(Path::new(&name), &content).map_err(|e| Error::io(format!("write term list {name}"), e))
    }

    /// Brings the lists in line with `searcher` (freshly reloaded): writes the missing ones from the
    /// segments' dictionaries of field `line`, deletes those of segments it no longer has.
    pub fn sync(&self, searcher: &Searcher, line: Field) -> Result<SyncCounts, Error> {
        let mut counts = SyncCounts::default();
        for segment in searcher.segment_readers() {
            if self.path.join(file_name(segment.segment_id())).exists() {
                continue;
            }
            if let Some(body) = list_body(segment, line)? {
                self.write(segment.segment_id(), &body)?;
                counts.written += 1;
            }
        }
        counts.deleted = self.delete_stale(searcher)?;
        Ok(counts)
    }

    fn delete_stale(&self, searcher: &Searcher) -> Result<usize, Error> {
        let live_ids: HashSet<SegmentId> = searcher.segment_readers().iter().map(|s| s.segment_id()).collect();
        self.cache.retain(self.owner, |id| live_ids.contains(id), Instant::now());
        let live: HashSet<String> = live_ids.iter().map(|id| file_name(*id)).collect();
        let entries = fs::read_dir(&self.path).map_err(|e| Error::io(format!("list {}", self.path.display()), e))?;
        let mut deleted = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // `.tmp*` files are atomic writes in flight (or left by a crash: a query-time write
            // may be running, so they are left alone; they are small next to the lists).
            if name.starts_with(".tmp") || !name.ends_with(&format!(".{EXTENSION}")) || live.contains(name) {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("delete term list {name}"), e)),
            }
        }
        Ok(deleted)
    }

    /// Number of lists on disk (tests).
    #[cfg(test)]
    pub fn count(&self) -> usize {
        fs::read_dir(&self.path)
            .map(|d| {
                d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(&format!(".{EXTENSION}"))).count()
            })
            .unwrap_or(0)
    }
}

/// The list body of `segment`'s `line` dictionary; `None` if a word holds `\n` (cannot be listed).
pub(crate) fn list_body(segment: &SegmentReader, line: Field) -> Result<Option<Vec<u8>>, Error> {
    let inverted = segment.inverted_index(line).map_err(|e| Error::index("read line terms", e))?;
    let dictionary = inverted.terms();
    let mut body = Vec::new();
    let mut stream = dictionary.stream().map_err(|e| Error::io("walk line terms", e))?;
    while stream.advance() {
        let key = stream.key();
        if memchr::memchr(b'\n', key).is_some() {
            return Ok(None);
        }
        body.extend_from_slice(key);
        body.push(b'\n');
    }
    Ok(Some(body))
}

/// Where a searched word must sit in a listed word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// At the end.
    Suffix,
    /// Anywhere.
    Inside,
}

/// Adds to `found` the listed words of `body` that hold `needle` where `position` says. Returns
/// `false` as soon as `found` holds more than `limit` words. `needle` must be non-empty and hold no
/// `\n`.
pub(crate) fn search_list(
    body: &[u8],
    needle: &[u8],
    position: Position,
    found: &mut BTreeSet<String>,
    limit: usize,
) -> bool {
    debug_assert!(!needle.is_empty() && memchr::memchr(b'\n', needle).is_none());
    let pattern: Vec<u8> = match position {
        Position::Inside => needle.to_vec(),
        Position::Suffix => [needle, b"\n"].concat(),
    };
    let finder = memchr::memmem::Finder::new(&pattern);
    let mut from = 0;
    while let Some(offset) = finder.find(&body[from..]) {
        let at = from + offset;
        let start = memchr::memrchr(b'\n', &body[..at]).map_or(0, |p| p + 1);
        let end = at + memchr::memchr(b'\n', &body[at..]).unwrap_or(body.len() - at);
        if let Ok(word) = std::str::from_utf8(&body[start..end]) {
            found.insert(word.to_string());
            if found.len() > limit {
                return false;
            }
        }
        from = end + 1;
        if from >= body.len() {
            break;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(words: &[&str], needle: &str, position: Position) -> Vec<String> {
        let body: Vec<u8> = words.iter().flat_map(|w| [w.as_bytes(), b"\n"].concat()).collect();
        let mut found = BTreeSet::new();
        assert!(search_list(&body, needle.as_bytes(), position, &mut found, usize::MAX));
        found.into_iter().collect()
    }

    #[test]
    fn finds_words_holding_the_needle_once_each() {
        let words = ["abab", "b", "bab", "ba", "xab"];
        assert_eq!(search(&words, "ab", Position::Inside), ["abab", "bab", "xab"]);
        assert_eq!(search(&words, "ab", Position::Suffix), ["abab", "bab", "xab"]);
        assert_eq!(search(&words, "b", Position::Suffix), ["abab", "b", "bab", "xab"]);
        assert_eq!(search(&words, "ba", Position::Suffix), ["ba"]);
        assert_eq!(search(&words, "zz", Position::Inside), Vec::<String>::new());
        assert_eq!(search(&[], "a", Position::Inside), Vec::<String>::new());
    }

    fn lists_in(dir: &Path, cache: &Arc<WordListCache>) -> TermLists {
        TermLists { path: dir.to_path_buf(), dir: MmapDirectory::open(dir).unwrap(), cache: cache.clone(), owner: 7 }
    }

    fn cache(budget: usize) -> Arc<WordListCache> {
        WordListCache::new(budget, Duration::from_secs(60), Gauge::default(), Counter::default())
    }

    #[test]
    fn the_cache_stays_within_its_budget_evicting_the_least_recently_searched() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(2000);
        let lists = lists_in(dir.path(), &cache);
        let body = |i: u32| -> Vec<u8> { (0..100u32).flat_map(|w| format!("w{i}x{w:05}\n").into_bytes()).collect() };
        let ids: Vec<SegmentId> = (0..4).map(|_| SegmentId::generate_random()).collect();
        for (i, id) in ids.iter().enumerate() {
            lists.write(*id, &body(i as u32)).unwrap();
        }
        let one = body(0).len();
        assert!(one * 2 <= 2000 && one * 3 > 2000, "two lists fit, three do not: {one}");
        lists.get(ids[0]).unwrap();
        lists.get(ids[1]).unwrap();
        lists.get(ids[0]).unwrap(); // 0 is now more recent than 1
        lists.get(ids[2]).unwrap(); // evicts 1
        assert_eq!(cache.held(), 2 * one);
        assert_eq!(cache.evictions.get(), 1);
        assert_eq!(cache.held_bytes.get(), (2 * one) as i64);
        let state = cache.state.lock();
        assert!(state.lists.contains_key(&ids[0]) && state.lists.contains_key(&ids[2]));
        drop(state);
        assert_eq!(lists.get(ids[1]).unwrap().as_slice(), &body(1)[..], "an evicted list is read again");
        cache.retain(0, |_| true, Instant::now());
        assert_eq!(cache.held(), 2 * one, "nothing is idle yet");
        lists.get(ids[3]).unwrap(); // evicts 2 (1 came back and evicted 0)
        cache.state.lock().lists.get_mut(&ids[1]).unwrap().used_at -= Duration::from_secs(61);
        cache.retain(0, |_| true, Instant::now());
        assert_eq!(cache.held(), one, "a list unused for `idle` is dropped");
        assert_eq!(cache.evictions.get(), 4);
        lists.get(ids[2]).unwrap();
        drop(lists);
        assert_eq!(cache.held(), 0, "a closed partition's lists leave the cache");
        assert_eq!(cache.held_bytes.get(), 0);
    }

    #[test]
    fn lists_are_compressed_and_lists_of_the_first_format_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let lists = lists_in(dir.path(), &cache(1 << 20));
        // Sorted random ids, as the lists mostly hold.
        let mut words: Vec<String> = (0..5000u32).map(|i| format!("{:08x}", i.wrapping_mul(2_654_435_761))).collect();
        words.sort();
        let body: Vec<u8> = words.iter().flat_map(|w| format!("{w}\n").into_bytes()).collect();
        let compressed = SegmentId::generate_random();
        lists.write(compressed, &body).unwrap();
        let on_disk = fs::read(dir.path().join(file_name(compressed))).unwrap();
        assert!(
            on_disk.starts_with(HEADER) && on_disk.len() < body.len() * 2 / 3,
            "{} of {} bytes",
            on_disk.len(),
            body.len()
        );
        assert_eq!(lists.get(compressed).unwrap().as_slice(), &body[..]);
        assert_eq!(lists.get(compressed).unwrap().as_slice(), &body[..], "again, from the cache");

        let plain = SegmentId::generate_random();
        fs::write(dir.path().join(file_name(plain)), [HEADER_PLAIN, &body[..]].concat()).unwrap();
        assert_eq!(lists.get(plain).unwrap().as_slice(), &body[..]);

        let broken = SegmentId::generate_random();
        fs::write(dir.path().join(file_name(broken)), [HEADER, b"not zstd"].concat()).unwrap();
        assert!(lists.get(broken).is_none(), "a broken list is no list: the needle walks the dictionary");
        fs::write(dir.path().join(file_name(broken)), b"tarsier-terms 9\nword\n").unwrap();
        assert!(lists.get(broken).is_none(), "an unknown format is no list");
    }

    #[test]
    fn stops_past_the_limit() {
        let body = b"a1\na2\na3\n";
        let mut found = BTreeSet::new();
        assert!(!search_list(body, b"a", Position::Inside, &mut found, 2));
        let mut found = BTreeSet::new();
        assert!(search_list(body, b"a", Position::Inside, &mut found, 3));
        assert_eq!(found.len(), 3);
    }
}
