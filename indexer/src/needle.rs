//! How `|=` needles reach the index. A needle is a substring of the line, so it need not be made of
//! whole index terms: its first and last tokens may be the tail or the head of longer words in the
//! line. This module owns the line tokenizer of format-3 partitions and turns a needle into index
//! clauses that select a superset of the lines holding it (the query verifies every candidate):
//!
//! - a token bounded by separators on both sides inside the needle is a whole word in any matching
//!   line: one term;
//! - a token at the needle's start is the end of a line word (suffix), at its end the start of a
//!   line word (prefix), a needle of one token lies anywhere inside a line word (substring): the
//!   partition's term dictionary is searched for the words that qualify, and the clause is any of
//!   them.
//!
//! Words longer than [`MAX_WORD_BYTES`] are indexed as one marker term instead of themselves (they
//! would bloat the dictionary, and tantivy drops terms past 64 KiB): a needle that could sit in such
//! a word also accepts the marker, so no line is ever lost. Format 1-2 partitions used tantivy's
//! default tokenizer, which silently drops words of 40 bytes and more; for them only interior
//! tokens shorter than that can be used, as before.

use std::collections::BTreeSet;

use tantivy::directory::OwnedBytes;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{Searcher, SegmentReader, Term};

use crate::error::Error;
use crate::term_lists::{Position, TermLists, list_body, search_list};

/// Name under which [`LineTokenizer`] is registered on format-3 indexes.
pub(crate) const LINE_TOKENIZER: &str = "tarsier_line";

/// Longest word indexed as itself; longer words become [`LONG_WORD_MARKER`].
pub(crate) const MAX_WORD_BYTES: usize = 255;

/// The term standing for every word longer than [`MAX_WORD_BYTES`]. It contains a separator, so
/// no real word can equal it.
pub(crate) const LONG_WORD_MARKER: &str = "\u{1}long";

/// Most dictionary words one edge token may expand to; past it the token adds no clause (the
/// pre-filter gets wider, the result stays exact).
const MAX_EXPANSION_TERMS: usize = 4096;

/// Words are runs of alphanumeric characters (as tantivy's `SimpleTokenizer`), lowercased one
/// character at a time (so lowercasing a word's substring gives a substring of the lowercased
/// word, which the needle expansion relies on). One pass, ASCII fast path.
#[derive(Clone, Default)]
pub(crate) struct LineTokenizer {
    token: Token,
}

/// The tokens of one text.
pub(crate) struct LineTokenStream<'a> {
    text: &'a str,
    position: usize,
    token: &'a mut Token,
}

impl Tokenizer for LineTokenizer {
    type TokenStream<'a> = LineTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> LineTokenStream<'a> {
        self.token.reset();
        LineTokenStream { text, position: 0, token: &mut self.token }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Byte offset of the next word start at or after `from`, and of its end.
fn next_word(text: &str, from: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut i = from;
    // Skip separators.
    loop {
        let b = *bytes.get(i)?;
        if b.is_ascii() {
            if b.is_ascii_alphanumeric() {
                break;
            }
            i += 1;
        } else {
            let c = text[i..].chars().next()?;
            if is_word_char(c) {
                break;
            }
            i += c.len_utf8();
        }
    }
    let start = i;
    while let Some(&b) = bytes.get(i) {
        if b.is_ascii() {
            if !b.is_ascii_alphanumeric() {
                break;
            }
            i += 1;
        } else {
            let Some(c) = text[i..].chars().next() else { break };
            if !is_word_char(c) {
                break;
            }
            i += c.len_utf8();
        }
    }
    Some((start, i))
}

/// Appends `word` lowercased character by character (no context rules such as Greek final sigma).
fn push_lowercase(out: &mut String, word: &str) {
    if word.is_ascii() {
        let start = out.len();
        out.push_str(word);
        // SAFETY-free: ASCII lowercasing in place keeps UTF-8 valid.
        out[start..].make_ascii_lowercase();
    } else {
        for c in word.chars() {
            out.extend(c.to_lowercase());
        }
    }
}

impl TokenStream for LineTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let Some((start, end)) = next_word(self.text, self.position) else {
            self.position = self.text.len();
            return false;
        };
        self.position = end;
        self.token.text.clear();
        self.token.offset_from = start;
        self.token.offset_to = end;
        self.token.position = self.token.position.wrapping_add(1);
        let word = &self.text[start..end];
        if word.len() > MAX_WORD_BYTES {
            self.token.text.push_str(LONG_WORD_MARKER);
        } else {
            push_lowercase(&mut self.token.text, word);
        }
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// Where a needle token must appear in a line word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// The whole word.
    Whole,
    /// The start of a word (the token ends the needle).
    Prefix,
    /// The end of a word (the token starts the needle).
    Suffix,
    /// Anywhere in a word (the needle is this one token).
    Inside,
}

/// A needle token and where it must appear.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NeedleWord {
    text: String,
    placement: Placement,
}

fn needle_words(needle: &str) -> Vec<NeedleWord> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some((start, end)) = next_word(needle, from) {
        from = end;
        let word = &needle[start..end];
        let bounded_left = start > 0;
        let bounded_right = end < needle.len();
        let placement = match (bounded_left, bounded_right) {
            (true, true) => Placement::Whole,
            (true, false) => Placement::Prefix,
            (false, true) => Placement::Suffix,
            (false, false) => Placement::Inside,
        };
        let mut text = String::new();
        push_lowercase(&mut text, word);
        out.push(NeedleWord { text, placement });
    }
    out
}

/// The index clauses (all must hold) that every line in `[start_ns, end_ns)` containing `needle`
/// satisfies, for a partition whose `line` field uses [`LineTokenizer`]. `lists` are the
/// partition's per-segment word lists, when it has them.
pub(crate) fn needle_clauses(
    searcher: &Searcher,
    line: Field,
    lists: Option<&TermLists>,
    needle: &str,
    (start_ns, end_ns): (i64, i64),
) -> Result<Vec<Box<dyn Query>>, Error> {
    let words = needle_words(needle);
    let term = |text: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(Term::from_field_text(line, text), IndexRecordOption::Basic))
    };
    let mut clauses: Vec<Box<dyn Query>> = Vec::new();
    let has_whole = words.iter().any(|w| w.placement == Placement::Whole);
    for word in &words {
        if word.placement == Placement::Whole {
            // A whole word longer than the limit was indexed as the marker.
            let text = if word.text.len() > MAX_WORD_BYTES { LONG_WORD_MARKER } else { word.text.as_str() };
            clauses.push(term(text));
            continue;
        }
        // Edge words cost a search of every segment's words (prefix: a dictionary range; suffix
        // and inside: the word list, or a dictionary walk without one); a whole word is selective
        // enough on its own, so edges are only expanded when none exists, except prefixes, which
        // are cheap.
        if has_whole && word.placement != Placement::Prefix {
            continue;
        }
        let Some(words) = expand(searcher, line, lists, word, (start_ns, end_ns))? else { continue };
        let mut any: Vec<(Occur, Box<dyn Query>)> = words.iter().map(|w| (Occur::Should, term(w))).collect();
        any.push((Occur::Should, term(LONG_WORD_MARKER)));
        clauses.push(Box::new(BooleanQuery::new(any)));
    }
    Ok(clauses)
}

/// The dictionary words that hold `word` where its placement says, of every segment with lines in
/// `[start_ns, end_ns)`; `None` when there are more than [`MAX_EXPANSION_TERMS`]. Suffix and
/// inside words search the segment's word list when `lists` has it, else walk its dictionary (and
/// write the list for next time). Segments outside the range are skipped: the query's time range
/// excludes their lines anyway, and a dashboard's last-minute panel would otherwise search (and
/// keep decompressed) the lists of the whole day's partition.
fn expand(
    searcher: &Searcher,
    line: Field,
    lists: Option<&TermLists>,
    word: &NeedleWord,
    (start_ns, end_ns): (i64, i64),
) -> Result<Option<BTreeSet<String>>, Error> {
    let needle = word.text.as_bytes();
    let mut found = BTreeSet::new();
    let listed = match word.placement {
        Placement::Suffix => Some(Position::Suffix),
        Placement::Inside => Some(Position::Inside),
        Placement::Prefix | Placement::Whole => None,
    };
    for segment in searcher.segment_readers() {
        if !overlaps(segment, start_ns, end_ns) {
            continue;
        }
        if let Some(position) = listed {
            let list = lists.and_then(|l| l.get(segment.segment_id()));
            let list = match (list, lists) {
                (Some(list), _) => Some(list),
                // No list yet (a partition from before lists, or a failed write): walk once to
                // write it, then search it like the others.
                (None, Some(lists)) => write_list(lists, segment, line),
                (None, None) => None,
            };
            if let Some(list) = list {
                if !search_list(list.as_slice(), needle, position, &mut found, MAX_EXPANSION_TERMS) {
                    return Ok(None);
                }
                continue;
            }
        }
        if !walk_dictionary(segment, line, word, &mut found)? {
            return Ok(None);
        }
    }
    Ok(Some(found))
}

/// Whether `segment` may hold lines in `[start_ns, end_ns)` (true when its timestamps cannot be read).
fn overlaps(segment: &SegmentReader, start_ns: i64, end_ns: i64) -> bool {
    match segment.fast_fields().i64("ts") {
        Ok(ts) => segment.num_docs() > 0 && ts.max_value() >= start_ns && ts.min_value() < end_ns,
        Err(_) => true,
    }
}

/// Builds and writes the word list of `segment`; `None` (logged) when it cannot.
fn write_list(lists: &TermLists, segment: &SegmentReader, line: Field) -> Option<OwnedBytes> {
    let body = match list_body(segment, line) {
        Ok(Some(body)) => body,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(segment = %segment.segment_id().short_uuid_string(), error = %e, "cannot list segment words");
            return None;
        }
    };
    if let Err(e) = lists.write(segment.segment_id(), &body) {
        tracing::warn!(segment = %segment.segment_id().short_uuid_string(), error = %e, "cannot write word list");
    }
    Some(OwnedBytes::new(body))
}

/// Adds the dictionary words of `segment` that hold `word` where its placement says to `found`;
/// `false` past [`MAX_EXPANSION_TERMS`].
fn walk_dictionary(
    segment: &SegmentReader,
    line: Field,
    word: &NeedleWord,
    found: &mut BTreeSet<String>,
) -> Result<bool, Error> {
    let needle = word.text.as_bytes();
    let finder = memchr::memmem::Finder::new(needle);
    let inverted = segment.inverted_index(line).map_err(|e| Error::index("read line terms", e))?;
    let dictionary = inverted.terms();
    let mut stream = if word.placement == Placement::Prefix {
        let mut end = needle.to_vec();
        end.push(0xff);
        dictionary.range().ge(needle).lt(&end).into_stream()
    } else {
        dictionary.stream()
    }
    .map_err(|e| Error::io("walk line terms", e))?;
    while stream.advance() {
        let key = stream.key();
        let hit = match word.placement {
            Placement::Prefix => key.starts_with(needle),
            Placement::Suffix => key.ends_with(needle),
            Placement::Inside => finder.find(key).is_some(),
            Placement::Whole => key == needle,
        };
        if hit && let Ok(text) = std::str::from_utf8(key) {
            found.insert(text.to_string());
            if found.len() > MAX_EXPANSION_TERMS {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Tokens of a `|=` needle usable on format 1-2 partitions (tantivy's default tokenizer): those
/// bounded by a separator inside the needle on both sides and shorter than the 40 bytes that
/// tokenizer keeps.
pub(crate) fn legacy_needle_terms(needle: &str) -> Vec<String> {
    const LEGACY_MAX_TOKEN_BYTES: usize = 40;
    needle_words(needle)
        .into_iter()
        .filter(|w| w.placement == Placement::Whole && w.text.len() < LEGACY_MAX_TOKEN_BYTES)
        .map(|w| w.text)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<(String, usize, usize)> {
        let mut tokenizer = LineTokenizer::default();
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token();
            out.push((t.text.clone(), t.offset_from, t.offset_to));
        }
        out
    }

    #[test]
    fn words_are_alphanumeric_runs_lowercased() {
        assert_eq!(
            tokens("GET /api/v1 200 Größe ÉTÉ_x"),
            vec![
                ("get".to_string(), 0, 3),
                ("api".to_string(), 5, 8),
                ("v1".to_string(), 9, 11),
                ("200".to_string(), 12, 15),
                ("größe".to_string(), 16, 23),
                ("été".to_string(), 24, 29),
                ("x".to_string(), 30, 31),
            ]
        );
        assert!(tokens("  ...  ").is_empty());
    }

    #[test]
    fn long_words_become_the_marker() {
        let long = "a".repeat(MAX_WORD_BYTES + 1);
        let edge = "b".repeat(MAX_WORD_BYTES);
        let got = tokens(&format!("x {long} {edge}"));
        assert_eq!(got[1].0, LONG_WORD_MARKER);
        assert_eq!(got[2].0, edge);
    }

    #[test]
    fn matches_tantivy_simple_tokenizer_on_word_boundaries() {
        use tantivy::tokenizer::SimpleTokenizer;
        let text = "level=ERROR msg=\"connexion refusée\" id=7f3a-ΣΑΣ ünïcödé 42x";
        let mut simple = SimpleTokenizer::default();
        let mut stream = simple.token_stream(text);
        let mut expected = Vec::new();
        while stream.advance() {
            let t = stream.token();
            expected.push((t.offset_from, t.offset_to));
        }
        let got: Vec<(usize, usize)> = tokens(text).into_iter().map(|(_, a, b)| (a, b)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn needle_word_placements() {
        let placements = |n: &str| needle_words(n).into_iter().map(|w| (w.text, w.placement)).collect::<Vec<_>>();
        assert_eq!(placements("Needle42"), vec![("needle42".into(), Placement::Inside)]);
        assert_eq!(
            placements("ab cd-ef"),
            vec![("ab".into(), Placement::Suffix), ("cd".into(), Placement::Whole), ("ef".into(), Placement::Prefix)]
        );
        assert_eq!(placements(" ab "), vec![("ab".into(), Placement::Whole)]);
        assert_eq!(legacy_needle_terms("a bb c"), vec!["bb".to_string()]);
    }

    mod lists {
        use std::collections::BTreeSet;

        use model::{Labels, LogRecord, TenantId};
        use proptest::prelude::*;

        use super::super::*;
        use crate::config::IndexerConfig;
        use crate::partition::Partition;
        use crate::term_lists::WordListCache;

        const ALL_TIME: (i64, i64) = (i64::MIN, i64::MAX);

        fn word_lists() -> std::sync::Arc<WordListCache> {
            WordListCache::new(64 << 20, std::time::Duration::from_secs(3600), Default::default(), Default::default())
        }

        /// A segment whose lines all lie outside the query's range lends no words (its list is
        /// not even read), so a last-minute panel does not search a day of segments.
        #[test]
        fn segments_outside_the_range_are_not_searched() {
            let dir = tempfile::tempdir().unwrap();
            let tenant = TenantId::default_tenant();
            let config = IndexerConfig::default();
            let partition =
                Partition::create(&dir.path().join("p"), &tenant, 0, i64::MAX, config.store_settings(), &word_lists())
                    .unwrap();
            for (n, (ts, line)) in [(1_000, "old alpha1 line"), (5_000, "new alpha2 line")].into_iter().enumerate() {
                let record =
                    LogRecord { timestamp_ns: ts, labels: Labels::from_pairs([("a", "b")]), line: line.into() };
                partition.add(vec![record], config.writer_settings()).unwrap();
                partition.commit(n as u64 + 1).unwrap();
            }
            let searcher = partition.searcher();
            assert_eq!(searcher.segment_readers().len(), 2);
            let word = NeedleWord { text: "lpha".into(), placement: Placement::Inside };
            let expand_in = |range| -> Vec<String> {
                let found = expand(&searcher, partition.fields.line, partition.term_lists(), &word, range).unwrap();
                found.unwrap().into_iter().collect()
            };
            assert_eq!(expand_in(ALL_TIME), ["alpha1", "alpha2"]);
            assert_eq!(expand_in((4_000, 6_000)), ["alpha2"]);
            assert_eq!(expand_in((1_000, 1_001)), ["alpha1"]);
            assert_eq!(expand_in((1_001, 5_000)), Vec::<String>::new(), "the end is exclusive");
        }

        /// Every word the tokenizer makes of `lines`.
        fn all_words(lines: &[String]) -> BTreeSet<String> {
            let mut tokenizer = LineTokenizer::default();
            let mut words = BTreeSet::new();
            for line in lines {
                let mut stream = tokenizer.token_stream(line);
                while stream.advance() {
                    words.insert(stream.token().text.clone());
                }
            }
            words
        }

        fn brute_force(lines: &[String], word: &NeedleWord) -> Option<BTreeSet<String>> {
            let found: BTreeSet<String> = all_words(lines)
                .into_iter()
                .filter(|w| match word.placement {
                    Placement::Suffix => w.ends_with(&word.text),
                    _ => w.contains(&word.text),
                })
                .collect();
            (found.len() <= MAX_EXPANSION_TERMS).then_some(found)
        }

        /// The expansion through the word lists, through the dictionary walk, and by a scan of
        /// every word; all three must agree.
        fn check(partition: &Partition, lines: &[String], word: &NeedleWord) -> Result<(), TestCaseError> {
            let searcher = partition.searcher();
            let lists = partition.term_lists();
            prop_assert!(lists.is_some());
            let listed = expand(&searcher, partition.fields.line, lists, word, ALL_TIME).unwrap();
            let walked = expand(&searcher, partition.fields.line, None, word, ALL_TIME).unwrap();
            prop_assert_eq!(&listed, &walked, "{:?}", word);
            prop_assert_eq!(listed, brute_force(lines, word), "{:?}", word);
            Ok(())
        }

        fn needle_word() -> impl Strategy<Value = NeedleWord> {
            ("[abcé]{1,3}", prop::bool::ANY).prop_map(|(text, suffix)| NeedleWord {
                text,
                placement: if suffix { Placement::Suffix } else { Placement::Inside },
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

            /// Random lines in several commits (so several segments, merged two at a time), then
            /// a closed writer (merges done) and a reopen (a restart), then lists deleted: the
            /// lists path always finds exactly the walk's and a scan's words, and lists follow
            /// the segments.
            #[test]
            fn word_lists_expand_like_the_walk_and_a_scan(
                batches in prop::collection::vec(prop::collection::vec("[abcé ]{1,12}", 1..30), 1..6),
                words in prop::collection::vec(needle_word(), 1..6),
            ) {
                let dir = tempfile::tempdir().unwrap();
                let tenant = TenantId::default_tenant();
                let config = IndexerConfig { merge_min_segments: 2, ..IndexerConfig::default() };
                let path = dir.path().join("p");
                let partition =
                    Partition::create(&path, &tenant, 0, i64::MAX, config.store_settings(), &word_lists()).unwrap();
                let mut lines = Vec::new();
                for (n, batch) in batches.iter().enumerate() {
                    let records = batch
                        .iter()
                        .map(|line| LogRecord { timestamp_ns: 1, labels: Labels::from_pairs([("a", "b")]), line: line.clone() })
                        .collect();
                    partition.add(records, config.writer_settings()).unwrap();
                    partition.commit(n as u64 + 1).unwrap();
                    lines.extend(batch.iter().cloned());
                    let segments = partition.searcher().segment_readers().len();
                    prop_assert_eq!(partition.term_lists().unwrap().count(), segments);
                    for word in &words {
                        check(&partition, &lines, word)?;
                    }
                }
                partition.close_writer(batches.len() as u64).unwrap();
                let segments = partition.searcher().segment_readers().len();
                prop_assert_eq!(partition.term_lists().unwrap().count(), segments, "merged-away lists deleted");
                drop(partition);
                let partition = Partition::open_existing(&path, &tenant, &word_lists()).unwrap().unwrap();
                for word in &words {
                    check(&partition, &lines, word)?;
                }
                // Lists gone (the process keeps the decompressed ones of live segments, so the
                // walk-back shows after a restart).
                drop(partition);
                std::fs::remove_dir_all(path.join("terms")).unwrap();
                std::fs::create_dir(path.join("terms")).unwrap();
                let partition = Partition::open_existing(&path, &tenant, &word_lists()).unwrap().unwrap();
                for word in &words {
                    check(&partition, &lines, word)?;
                }
                prop_assert_eq!(partition.term_lists().unwrap().count(), segments, "lists written back by the walk");
            }
        }
    }
}
