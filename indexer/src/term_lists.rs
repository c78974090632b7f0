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
//! a tenth of a partition's bytes; a list is decompressed once and kept in memory while its
//! segment lives, within [`CACHE_BUDGET_BYTES`] for the process (past it, each search
//! decompresses). Lists of the first format (header `tarsier-terms 1`, the body stored plain) are
//! still read, straight from the mmap. Lifecycle:
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
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

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
/// Decompressed lists all partitions keep in memory at most. A million lines of varied logs
/// list ~20 MB of words.
const CACHE_BUDGET_BYTES: usize = 256 << 20;
/// Bytes the caches of all partitions hold.
static CACHED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The word lists of one partition.
pub(crate) struct TermLists {
    path: PathBuf,
    dir: MmapDirectory,
    /// Decompressed lists of live segments (dropped with their segment).
    cache: Mutex<HashMap<SegmentId, OwnedBytes>>,
}

impl Drop for TermLists {
    fn drop(&mut self) {
        let held: usize = self.cache.get_mut().values().map(OwnedBytes::len).sum();
        CACHED_BYTES.fetch_sub(held, Ordering::Relaxed);
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
    pub fn open(partition_dir: &Path, searcher: &Searcher) -> Result<TermLists, Error> {
        let path = partition_dir.join(TERMS_DIR);
        fs::create_dir_all(&path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        let dir = MmapDirectory::open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), std::io::Error::other(e.to_string())))?;
        let lists = TermLists { path, dir, cache: Mutex::new(HashMap::new()) };
        lists.delete_stale(searcher)?;
        Ok(lists)
    }

    /// The list of `segment`: its words, each followed by `\n`; `None` when there is no
    /// well-formed list.
    pub fn get(&self, segment: SegmentId) -> Option<OwnedBytes> {
        if let Some(body) = self.cache.lock().get(&segment) {
            return Some(body.clone());
        }
        let bytes = self.dir.open_read(Path::new(&file_name(segment))).ok()?.read_bytes().ok()?;
        let body = if bytes.as_slice().starts_with(HEADER_PLAIN) {
            bytes.slice(HEADER_PLAIN.len()..bytes.len())
        } else if bytes.as_slice().starts_with(HEADER) {
            let body = zstd::stream::decode_all(&bytes.as_slice()[HEADER.len()..]).ok()?;
            let body = OwnedBytes::new(body);
            self.remember(segment, &body);
            body
        } else {
            return None;
        };
        if !body.is_empty() && body.as_slice().last() != Some(&b'\n') {
            return None;
        }
        Some(body)
    }

    /// Keeps a decompressed list while the budget allows.
    fn remember(&self, segment: SegmentId, body: &OwnedBytes) {
        let len = body.len();
        let reserved = CACHED_BYTES.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
            (held + len <= CACHE_BUDGET_BYTES).then_some(held + len)
        });
        if reserved.is_ok()
            && let Some(previous) = self.cache.lock().insert(segment, body.clone())
        {
            CACHED_BYTES.fetch_sub(previous.len(), Ordering::Relaxed);
        }
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
        self.cache.lock().retain(|id, body| {
            let keep = live_ids.contains(id);
            if !keep {
                CACHED_BYTES.fetch_sub(body.len(), Ordering::Relaxed);
            }
            keep
        });
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

    fn lists_in(dir: &Path) -> TermLists {
        TermLists { path: dir.to_path_buf(), dir: MmapDirectory::open(dir).unwrap(), cache: Mutex::new(HashMap::new()) }
    }

    #[test]
    fn lists_are_compressed_and_lists_of_the_first_format_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let lists = lists_in(dir.path());
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
