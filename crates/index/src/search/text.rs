//! The text index over the names of online files: one tantivy document per
//! title (a file id with one of its names), keyed by the title's ordinal in
//! the [`Catalogue`](super::catalogue::Catalogue), with fields for whole
//! words, word prefixes, substring grams, the extension, the size, and a
//! sort key of the file's popularity tier and the name's length (exact
//! names are the catalogue's: [`super::names`]). Segments are sorted by
//! that key, so broad words queries are ranked a band of tiers at a time
//! with block-max pruning (see `rank`).
//!
//! One indexer thread owns the writer. Batches of additions and deletions
//! arrive in the order the catalogue decided them, are committed together
//! (group commit), and each sender learns when its batch is searchable.
//! Holder counts are not indexed (only the tier, in the sort key,
//! rewritten when a file changes tier): ranking and the online filter read the [`HolderBoard`]
//! at search time, so peers coming, going and timing out almost never
//! touch this index. Its segments are merged as [`super::merging`]
//! decides. It stores no names (the catalogue has them) and
//! keeps its files in a folder it owns, emptied at every start, since the
//! durable store is the truth it is rebuilt from.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tantivy::columnar::ColumnValues;
use tantivy::fastfield::AliveBitSet;
use tantivy::index::{IndexSettings, IndexSortByField, Order, SegmentId};
use tantivy::query::{
    BooleanQuery, EnableScoring, Occur, PhraseQuery, Query, RegexQuery, TermQuery, Weight,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED,
};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{
    DocId, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher, SegmentReader,
    TantivyDocument, Term, TERMINATED,
};
use tokio::sync::oneshot;

use super::merging::{IdleFlag, MergeSmallWhenIdle, MERGE_SMALL_AFTER_IDLE};
use super::scratch::ScratchDirectory;
use super::tokens;

/// Memory the writer buffers before it writes a segment.
const WRITER_MEMORY: usize = 96 << 20;
/// Writer threads (each gets an equal share of [`WRITER_MEMORY`]).
const WRITER_THREADS: usize = 1;
/// How long the indexer waits for changes before it looks whether merges
/// finished since the last commit.
const MERGES_LOOKED_AT_EVERY: Duration = Duration::from_secs(1);
/// Most changes folded into one commit; more wait for the next one.
const MAX_CHANGES_PER_COMMIT: usize = 200_000;
/// Titles per lazily allocated chunk of the [`HolderBoard`].
const BOARD_CHUNK: usize = 1 << 16;
/// Matches ranked one by one, in index order, before a query counts as
/// broad: up to this many, every match is ranked and counted exactly;
/// past it, the total is estimated and words queries skip what cannot rank.
pub const EXACT_MATCHES: u64 = 1024;

/// A text index failure (I/O in its folder, or the indexer is gone).
#[derive(Debug, thiserror::Error)]
pub enum TextIndexError {
    /// tantivy reported an error.
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The folder could not be prepared.
    #[error("search index folder {path}: {source}")]
    Folder {
        /// The folder.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A commit failed, so the batch may not be searchable.
    #[error("search index commit failed: {0}")]
    Commit(String),
    /// The indexer thread has stopped (the index is shutting down).
    #[error("the search index is shutting down")]
    Stopped,
}

/// Online holder counts per title ordinal, read lock-free while searching:
/// the low half of each slot counts online listings of the title (0: the
/// title is offline and never found), the high half those of its file (its
/// popularity, for ranking). Chunks are allocated when first written.
pub struct HolderBoard {
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
    /// The most online listings any file has had (it never goes down, so
    /// it bounds every file's popularity).
    most_file_holders: AtomicU32,
}

impl HolderBoard {
    /// A board for `capacity` title ordinals.
    pub fn new(capacity: usize) -> Self {
        let chunks = capacity.div_ceil(BOARD_CHUNK).max(1);
        Self {
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
            most_file_holders: AtomicU32::new(0),
        }
    }

    /// How many title ordinals it holds.
    pub fn capacity(&self) -> usize {
        self.chunks.len() * BOARD_CHUNK
    }

    /// (online listings of the title, online listings of its file).
    pub fn get(&self, title: u32) -> (u32, u32) {
        let i = title as usize;
        let slot = self
            .chunks
            .get(i / BOARD_CHUNK)
            .and_then(OnceLock::get)
            .map_or(0, |chunk| {
                chunk[i % BOARD_CHUNK].load(AtomicOrdering::Relaxed)
            });
        (slot as u32, (slot >> 32) as u32)
    }

    /// Sets both counts of `title` (an ordinal below the capacity).
    pub fn set(&self, title: u32, title_holders: u32, file_holders: u32) {
        let i = title as usize;
        let Some(cell) = self.chunks.get(i / BOARD_CHUNK) else {
            return;
        };
        let chunk = cell.get_or_init(|| (0..BOARD_CHUNK).map(|_| AtomicU64::new(0)).collect());
        let slot = u64::from(title_holders) | (u64::from(file_holders) << 32);
        chunk[i % BOARD_CHUNK].store(slot, AtomicOrdering::Relaxed);
        self.most_file_holders
            .fetch_max(file_holders, AtomicOrdering::Relaxed);
    }

    /// At least as many online listings as any file has.
    pub fn most_file_holders(&self) -> u32 {
        self.most_file_holders.load(AtomicOrdering::Relaxed)
    }
}

/// What the index needs to know about one title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitleDoc {
    /// The title's ordinal in the catalogue.
    pub ord: u32,
    /// The name.
    pub name: Arc<str>,
    /// Lowercase extension without the dot, or empty.
    pub ext: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Its file's popularity tier ([`popularity_tier`]).
    pub tier: u8,
}

/// Highest popularity tier.
const MAX_TIER: u8 = 20;
/// Bands of tiers a broad words query is ranked in, one after another
/// (see `rank_popular_first`): few, since each costs a pass over the
/// postings' block index of every segment holding it.
const TIER_BANDS: [RangeInclusive<u8>; 4] = [8..=MAX_TIER, 4..=7, 1..=3, 0..=0];
/// The fast field every segment is sorted by ([`TitleDoc::order`]).
const ORDER_FIELD: &str = "order";

impl TitleDoc {
    /// Where the title sorts within a segment: more popular tiers first,
    /// then names of fewer words, then shorter names. A match's score
    /// falls with its name's word count (the length its words field is
    /// scored by) and characters (its prefixes field's), so the best
    /// matches of a tier sit in the first blocks of postings, and later
    /// blocks are skipped whole once the best are found. Word count first:
    /// names of one length in characters differ widely in words, and
    /// blocks sorted by characters alone all held some short-worded name,
    /// so few could be skipped.
    fn order(&self) -> u64 {
        let words = tokens::name_word_count(&self.name) as u64;
        let chars = self.name.chars().count() as u64;
        (u64::from(MAX_TIER - self.tier.min(MAX_TIER)) << 32)
            | (words.min(0xffff) << 16)
            | chars.min(0xffff)
    }

    /// The tier an [`order`](Self::order) was computed from.
    fn tier_of_order(order: u64) -> u8 {
        MAX_TIER.saturating_sub(u8::try_from(order >> 32).unwrap_or(MAX_TIER))
    }
}

/// The popularity tier of a file with `holders` online listings: the
/// binary logarithm (1 holder: 0, 2–3: 1, 4–7: 2, …), at most [`MAX_TIER`].
pub fn popularity_tier(holders: u32) -> u8 {
    (holders.max(1).ilog2() as u8).min(MAX_TIER)
}

/// Most online listings a file indexed under `tier` has (a file that
/// rises is indexed again at once; see the catalogue).
fn tier_ceiling(tier: u8) -> u32 {
    if tier >= MAX_TIER {
        u32::MAX
    } else {
        (2u32 << tier) - 1
    }
}

/// One change to the index, in the catalogue's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextChange {
    /// A title came online for the first time since it was last deleted.
    Add(TitleDoc),
    /// A title has no online holder left; its ordinal is free once committed.
    Delete(u32),
    /// A title's file changed size: its document is written again.
    Replace(TitleDoc),
}

/// How the name is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    /// Every folded word as a whole word; the last one also as the start of one.
    Words(Vec<String>),
    /// The text anywhere in the name, ignoring case.
    Substring(String),
    /// The whole name, as given.
    Exact(String),
}

/// Filters on the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFilter {
    /// Lowercase extension without the dot.
    pub ext: Option<String>,
    /// Smallest size in bytes.
    pub min_size: Option<u64>,
    /// Largest size in bytes.
    pub max_size: Option<u64>,
}

/// The best online titles for a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ranked {
    /// Online titles that match (each counted once); estimated when
    /// `estimated` says so.
    pub matches: u64,
    /// True when `matches` is extrapolated from the first matches found.
    pub estimated: bool,
    /// The best of them, best first: (rank, title ordinal).
    pub best: Vec<(Score, u32)>,
}

struct Batch {
    changes: Vec<TextChange>,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

#[derive(Clone, Copy)]
struct Fields {
    title: Field,
    words: Field,
    prefixes: Field,
    grams: Field,
    ext: Field,
    size: Field,
    order: Field,
}

/// The text index and its indexer thread.
pub struct TextIndex {
    fields: Fields,
    reader: IndexReader,
    columns: ColumnCache,
    batches: Mutex<Option<mpsc::Sender<Batch>>>,
    indexer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A batch the caller may wait on until it is searchable.
pub struct Pending(Option<oneshot::Receiver<Result<(), String>>>);

impl Pending {
    /// Nothing to wait for.
    pub fn none() -> Self {
        Self(None)
    }

    /// Waits until the batch is committed and searchable.
    pub async fn searchable(self) -> Result<(), TextIndexError> {
        let Some(rx) = self.0 else { return Ok(()) };
        rx.await
            .map_err(|_| TextIndexError::Stopped)?
            .map_err(TextIndexError::Commit)
    }
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let terms = |tokenizer: &str, option: IndexRecordOption| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(option),
        )
    };
    use IndexRecordOption::{WithFreqs, WithFreqsAndPositions};
    let fields = Fields {
        title: b.add_u64_field("title", INDEXED | FAST),
        words: b.add_text_field("words", terms(NameTerms::Words.name(), WithFreqs)),
        prefixes: b.add_text_field("prefixes", terms(NameTerms::Prefixes.name(), WithFreqs)),
        grams: b.add_text_field(
            "grams",
            terms(NameTerms::Grams.name(), WithFreqsAndPositions),
        ),
        // With frequencies, so a filtered words query stays a plain
        // intersection of terms (which can skip what cannot rank).
        ext: b.add_text_field("ext", terms("raw", WithFreqs)),
        size: b.add_u64_field("size", FAST),
        order: b.add_u64_field(ORDER_FIELD, FAST),
    };
    (b.build(), fields)
}

/// Which terms of a name a field holds; each is a tantivy tokenizer over
/// [`tokens`], so a name is indexed straight from its text.
#[derive(Debug, Clone, Copy)]
enum NameTerms {
    /// [`tokens::name_words`].
    Words,
    /// Every word's [`tokens::prefixes`], and each whole word a second
    /// time, so that the prefix term alone ranks "aula" above "aulas" for
    /// the query "aula".
    Prefixes,
    /// [`tokens::grams`], at their character offsets.
    Grams,
}

impl NameTerms {
    const ALL: [NameTerms; 3] = [NameTerms::Words, NameTerms::Prefixes, NameTerms::Grams];

    fn name(self) -> &'static str {
        match self {
            NameTerms::Words => "name_words",
            NameTerms::Prefixes => "name_prefixes",
            NameTerms::Grams => "name_grams",
        }
    }

    fn terms(self, name: &str) -> Vec<String> {
        match self {
            NameTerms::Words => tokens::name_words(name),
            NameTerms::Prefixes => tokens::name_words(name)
                .iter()
                .flat_map(|w| {
                    let whole = tokens::prefix_term(w).filter(|p| p.len() == w.len());
                    tokens::prefixes(w).chain(whole).map(str::to_string)
                })
                .collect(),
            NameTerms::Grams => tokens::grams(name),
        }
    }
}

impl Tokenizer for NameTerms {
    type TokenStream<'a> = NameTokens;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> NameTokens {
        NameTokens {
            terms: self.terms(text).into_iter(),
            position: None,
            token: Token::default(),
        }
    }
}

/// The terms of one name, at consecutive positions.
struct NameTokens {
    terms: std::vec::IntoIter<String>,
    position: Option<usize>,
    token: Token,
}

impl TokenStream for NameTokens {
    fn advance(&mut self) -> bool {
        let Some(text) = self.terms.next() else {
            return false;
        };
        let position = self.position.map_or(0, |p| p + 1);
        self.position = Some(position);
        self.token = Token {
            offset_from: 0,
            offset_to: 0,
            position,
            text,
            position_length: 1,
        };
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

impl Fields {
    fn document(&self, doc: &TitleDoc) -> TantivyDocument {
        let mut d = TantivyDocument::new();
        d.add_u64(self.title, u64::from(doc.ord));
        d.add_text(self.words, &doc.name);
        d.add_text(self.prefixes, &doc.name);
        d.add_text(self.grams, &doc.name);
        d.add_text(self.ext, &doc.ext);
        d.add_u64(self.size, doc.size);
        d.add_u64(self.order, doc.order());
        d
    }

    /// The terms of a words query: earlier words whole, the last one also
    /// as the start of a word (as in a search box). Plain terms, so the
    /// query is an intersection of terms, which can skip what cannot rank.
    fn word_terms(&self, words: &[String]) -> Vec<Box<dyn Query>> {
        let last = words.len().saturating_sub(1);
        words
            .iter()
            .enumerate()
            .map(
                |(i, w)| match tokens::prefix_term(w).filter(|_| i == last) {
                    Some(prefix) => term_query(self.prefixes, prefix, IndexRecordOption::WithFreqs),
                    None => term_query(self.words, w, IndexRecordOption::WithFreqs),
                },
            )
            .collect()
    }

    /// The query of a substring match: grams in a phrase, or for text
    /// shorter than a gram, every gram containing it.
    fn substring_query(&self, text: &str) -> Option<Box<dyn Query>> {
        let chars = tokens::substring_chars(text);
        let count = chars.chars().count();
        if count == 0 {
            return None;
        }
        if count < tokens::GRAM_CHARS {
            // Every gram (or short name) containing the text.
            let pattern = format!(".*{}.*", regex_literal(&chars));
            return RegexQuery::from_pattern(&pattern, self.grams)
                .ok()
                .map(|q| Box::new(q) as Box<dyn Query>);
        }
        let grams = tokens::grams(&chars);
        if grams.len() == 1 {
            return Some(term_query(
                self.grams,
                &grams[0],
                IndexRecordOption::WithFreqs,
            ));
        }
        // Grams that cover the text without overlap (and the last
        // one), at their offsets: fewer postings to intersect.
        let last = grams.len() - 1;
        let terms = grams
            .iter()
            .enumerate()
            .filter(|(at, _)| at % tokens::GRAM_CHARS == 0 || *at == last)
            .map(|(at, g)| (at, Term::from_field_text(self.grams, g)))
            .collect();
        Some(Box::new(PhraseQuery::new_with_offset(terms)))
    }

    /// The queries a match must satisfy: the name's, and the extension's
    /// term (sizes are checked on the fast field while ranking).
    fn clauses(&self, name: &NameMatch, filter: &FileFilter) -> Option<Vec<Box<dyn Query>>> {
        let mut must = match name {
            NameMatch::Words(words) => self.word_terms(words),
            // Exact names are the catalogue's (see `search::names`).
            NameMatch::Exact(_) => Vec::new(),
            NameMatch::Substring(text) => vec![self.substring_query(text)?],
        };
        if must.is_empty() {
            return None;
        }
        if let Some(ext) = &filter.ext {
            must.push(term_query(self.ext, ext, IndexRecordOption::WithFreqs));
        }
        Some(must)
    }
}

/// All of `must`, as one query (a single clause stays itself, so a one-word
/// query is a term query, which can skip what cannot rank).
fn all_of(mut must: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    if must.len() == 1 {
        if let Some(only) = must.pop() {
            return only;
        }
    }
    Box::new(BooleanQuery::new(
        must.into_iter().map(|q| (Occur::Must, q)).collect(),
    ))
}

/// One term, as a query.
fn term_query(field: Field, text: &str, option: IndexRecordOption) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, text), option))
}

/// Escapes every character a regular expression could read as syntax.
fn regex_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~\"'<>@".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl TextIndex {
    /// Opens an empty index in `folder` (whatever was there is removed) and
    /// starts its indexer thread; deleted titles' ordinals are pushed to
    /// `released` once their deletion is committed.
    pub fn open(folder: &Path, released: Arc<Mutex<Vec<u32>>>) -> Result<Self, TextIndexError> {
        let folder_err = |source| TextIndexError::Folder {
            path: folder.to_path_buf(),
            source,
        };
        match std::fs::remove_dir_all(folder) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(folder_err(e)),
            _ => {}
        }
        std::fs::create_dir_all(folder).map_err(folder_err)?;
        let (schema, fields) = schema();
        let directory = ScratchDirectory::open(folder)?;
        let index = Index::builder()
            .schema(schema)
            .settings(IndexSettings {
                sort_by_field: Some(IndexSortByField {
                    field: ORDER_FIELD.into(),
                    order: Order::Asc,
                }),
                ..IndexSettings::default()
            })
            .open_or_create(directory)?;
        for terms in NameTerms::ALL {
            index.tokenizers().register(terms.name(), terms);
        }
        let writer: IndexWriter = index.writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let (tx, rx) = mpsc::channel();
        let thread_reader = reader.clone();
        let indexer = std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || run_indexer(writer, thread_reader, fields, rx, released))
            .map_err(folder_err)?;
        Ok(Self {
            fields,
            reader,
            columns: ColumnCache::default(),
            batches: Mutex::new(Some(tx)),
            indexer: Mutex::new(Some(indexer)),
        })
    }

    /// Queues changes (call in the catalogue's order, under its lock; the
    /// queue is unbounded, so callers bound what they send: joins and
    /// publishes pass the list gate and wait for their batch).
    pub fn submit(&self, changes: Vec<TextChange>) -> Pending {
        if changes.is_empty() {
            return Pending::none();
        }
        let (done, rx) = oneshot::channel();
        let sent = self
            .batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| {
                tx.send(Batch {
                    changes,
                    done: Some(done),
                })
                .is_ok()
            });
        // A stopped indexer drops `done`, so the wait reports it.
        let _ = sent;
        Pending(Some(rx))
    }

    /// The best `wanted` online titles matching, ranked by match quality
    /// times popularity (whole-word matches over prefix matches, short names
    /// over long, many holders over few). Runs on the caller's thread.
    ///
    /// Matches are first ranked one by one in index order (most popular
    /// and shortest first, as segments are sorted). Past [`EXACT_MATCHES`],
    /// the total is estimated from a sample ([`estimate_matches`]), and a
    /// words query goes on over the whole index skipping blocks that cannot
    /// rank; a substring query keeps the best of what was seen. An exact
    /// name matches nothing here: the catalogue answers it.
    pub fn rank(
        &self,
        name: &NameMatch,
        filter: &FileFilter,
        board: &HolderBoard,
        wanted: usize,
    ) -> Result<Ranked, TextIndexError> {
        self.rank_within(name, filter, board, wanted, EXACT_MATCHES)
    }

    /// [`rank`](Self::rank), ranking up to `exact_limit` matches one by one.
    fn rank_within(
        &self,
        name: &NameMatch,
        filter: &FileFilter,
        board: &HolderBoard,
        wanted: usize,
        exact_limit: u64,
    ) -> Result<Ranked, TextIndexError> {
        let Some(must) = self.fields.clauses(name, filter) else {
            return Ok(Ranked::default());
        };
        let searcher = self.reader.searcher();
        let query = all_of(must);
        let weight = query.weight(EnableScoring::enabled_from_searcher(&searcher))?;
        let mut best = Best::new(wanted);
        let views = segment_views(&searcher, &self.columns, board, filter)?;
        let walk = walk_matches(&views, &*weight, &mut best, exact_limit)?;
        let (matches, estimated) = match walk {
            Walk::Complete(matches) => (matches, false),
            Walk::Broad(walked) => {
                if matches!(name, NameMatch::Words(_)) {
                    Self::rank_popular_first(&views, walked, &*weight, board, &mut best)?;
                }
                let total = estimate_matches(&views, &*weight, walked, exact_limit)?;
                (total.max(exact_limit), true)
            }
        };
        Ok(Ranked {
            matches,
            estimated,
            best: best.into_sorted(),
        })
    }

    /// Ranks every match of a broad words query that could still be kept,
    /// skipping blocks of postings that cannot rank, one band of
    /// popularity tiers at a time over every segment, most popular first:
    /// the best titles are found early, so the bar a less popular match
    /// must pass is high when the long tails are reached.
    ///
    /// Segments are sorted most popular tier first, so each band is one
    /// run of documents in a segment, and within it the most popular a
    /// match can be (its tier's ceiling) only falls as the pass advances:
    /// the score a match needs (the worst kept rank over that ceiling) only
    /// rises, as block-max pruning requires. Past the band, it is infinite.
    /// What the first walk (up to `walked`) ranked is not ranked again.
    fn rank_popular_first(
        views: &[SegmentView<'_>],
        walked: WalkedTo,
        every_match: &dyn Weight,
        board: &HolderBoard,
        best: &mut Best,
    ) -> tantivy::Result<()> {
        let most = board.most_file_holders();
        for band in TIER_BANDS {
            for (at, view) in views.iter().enumerate() {
                let Some(unranked) = walked.first_unranked(at) else {
                    continue;
                };
                let (start, end) = view.band(&band);
                let start = start.max(unranked);
                if start >= end {
                    continue;
                }
                // Titles before `start` were ranked already (by an earlier
                // band or the walk), so they may be held to its bar.
                let threshold = |best: &Best, doc: DocId| {
                    if doc >= end {
                        return Score::MAX;
                    }
                    let ceiling = popularity(tier_ceiling(view.tier(doc.max(start))).min(most));
                    best.bar().map_or(Score::MIN, |bar| bar / ceiling)
                };
                every_match.for_each_pruning(
                    threshold(best, start),
                    view.reader,
                    &mut |doc, score| {
                        if let Some((title, holders)) = view.online(doc) {
                            best.offer(score * popularity(holders), title);
                        }
                        threshold(best, doc)
                    },
                )?;
            }
        }
        Ok(())
    }

    /// Stops the indexer after it committed everything queued.
    pub fn close(&self) {
        self.batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = self
            .indexer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = thread.join();
        }
    }
}

impl Drop for TextIndex {
    fn drop(&mut self) {
        self.close();
    }
}

fn run_indexer(
    mut writer: IndexWriter,
    reader: IndexReader,
    fields: Fields,
    batches: mpsc::Receiver<Batch>,
    released: Arc<Mutex<Vec<u32>>>,
) {
    let idle = IdleFlag::default();
    writer.set_merge_policy(Box::new(MergeSmallWhenIdle::new(idle.clone())));
    let mut last_change = Instant::now();
    loop {
        let first = match batches.recv_timeout(MERGES_LOOKED_AT_EVERY) {
            Ok(batch) => batch,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                search_merged_segments(writer.index(), &reader);
                if last_change.elapsed() >= MERGE_SMALL_AFTER_IDLE && idle.begin() {
                    // tantivy asks the merge policy after every commit.
                    if let Err(e) = writer.commit() {
                        tracing::warn!("cannot merge the search index's small segments: {e}");
                    }
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        idle.end();
        let mut waiting = Vec::new();
        let mut deleted = Vec::new();
        let mut changes = 0;
        let mut failed = None;
        let mut next = Some(first);
        while let Some(batch) = next {
            changes += batch.changes.len();
            for change in batch.changes {
                match change {
                    TextChange::Add(doc) => {
                        if let Err(e) = writer.add_document(fields.document(&doc)) {
                            failed = Some(e.to_string());
                        }
                    }
                    TextChange::Replace(doc) => {
                        // The delete covers only documents added before it.
                        writer.delete_term(Term::from_field_u64(fields.title, u64::from(doc.ord)));
                        if let Err(e) = writer.add_document(fields.document(&doc)) {
                            failed = Some(e.to_string());
                        }
                    }
                    TextChange::Delete(ord) => {
                        writer.delete_term(Term::from_field_u64(fields.title, u64::from(ord)));
                        deleted.push(ord);
                    }
                }
            }
            waiting.extend(batch.done);
            next = if changes < MAX_CHANGES_PER_COMMIT {
                batches.try_recv().ok()
            } else {
                None
            };
        }
        let outcome = match failed {
            Some(e) => Err(e),
            None => writer
                .commit()
                .and_then(|_| reader.reload())
                .map_err(|e| e.to_string()),
        };
        match &outcome {
            Ok(()) => released
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(deleted),
            Err(e) => tracing::error!("search index commit failed: {e}"),
        }
        for done in waiting {
            let _ = done.send(outcome.clone());
        }
        last_change = Instant::now();
    }
    if let Err(e) = writer.wait_merging_threads() {
        tracing::warn!("search index merges did not finish: {e}");
    }
}

/// Searches the segments merges made since the last commit (they are
/// committed by the merge, but a reader sees them only once reloaded): a
/// filled index searches a handful of large segments instead of the many
/// small ones its last commit had.
fn search_merged_segments(index: &Index, reader: &IndexReader) {
    let Ok(committed) = index.searchable_segment_ids() else {
        return;
    };
    let searched: HashSet<SegmentId> = reader
        .searcher()
        .segment_readers()
        .iter()
        .map(SegmentReader::segment_id)
        .collect();
    if committed.into_iter().collect::<HashSet<_>>() != searched {
        if let Err(e) = reader.reload() {
            tracing::warn!("cannot search the merged segments: {e}");
        }
    }
}

/// The titles kept for a page: the best `wanted` by rank, each once.
pub(super) struct Best {
    wanted: usize,
    heap: BinaryHeap<Candidate>,
    kept: HashSet<u32>,
}

/// A ranked title in a heap whose top is the worst kept one.
#[derive(Clone, Copy, PartialEq)]
struct Candidate(Score, u32);

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reverse: the heap's top is the lowest rank (then highest ordinal).
        other
            .0
            .total_cmp(&self.0)
            .then_with(|| self.1.cmp(&other.1))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Best {
    pub(super) fn new(wanted: usize) -> Self {
        Self {
            wanted: wanted.max(1),
            heap: BinaryHeap::with_capacity(wanted.max(1) + 1),
            kept: HashSet::with_capacity(wanted.max(1) + 1),
        }
    }

    /// Keeps `title` if it ranks among the best (a title already kept, seen
    /// again by a second pass, is not kept twice).
    pub(super) fn offer(&mut self, rank: Score, title: u32) {
        let candidate = Candidate(rank, title);
        if self.heap.len() >= self.wanted {
            if self.heap.peek().is_none_or(|worst| candidate >= *worst) {
                return;
            }
            if self.kept.contains(&title) {
                return;
            }
            if let Some(worst) = self.heap.pop() {
                self.kept.remove(&worst.1);
            }
        } else if self.kept.contains(&title) {
            return;
        }
        self.kept.insert(title);
        self.heap.push(candidate);
    }

    /// The rank a title must beat to be kept, once the heap is full.
    fn bar(&self) -> Option<Score> {
        (self.heap.len() >= self.wanted)
            .then(|| self.heap.peek().map(|worst| worst.0))
            .flatten()
    }

    pub(super) fn into_sorted(self) -> Vec<(Score, u32)> {
        let mut best: Vec<(Score, u32)> = self.heap.into_iter().map(|c| (c.0, c.1)).collect();
        best.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        best
    }
}

/// Popularity weight of a file with `holders` online listings.
pub(super) fn popularity(holders: u32) -> Score {
    1.0 + (holders as Score).ln_1p()
}

/// What a segment needs to tell an online match that passes the filter.
struct SegmentView<'a> {
    reader: &'a SegmentReader,
    titles: Arc<dyn ColumnValues<u64>>,
    /// Opened only when the filter has sizes.
    sizes: Option<Arc<dyn ColumnValues<u64>>>,
    orders: Arc<dyn ColumnValues<u64>>,
    alive: Option<&'a AliveBitSet>,
    board: &'a HolderBoard,
    filter: &'a FileFilter,
}

/// A segment's fast-field columns.
#[derive(Clone)]
struct SegmentColumns {
    titles: Arc<dyn ColumnValues<u64>>,
    sizes: Arc<dyn ColumnValues<u64>>,
    orders: Arc<dyn ColumnValues<u64>>,
}

/// The columns of the segments being searched, opened once per segment
/// (opening one reads its block index, which costs more than a search's
/// use of it) and forgotten when the segment is merged away.
#[derive(Default)]
struct ColumnCache {
    by_segment: Mutex<HashMap<SegmentId, SegmentColumns>>,
}

impl ColumnCache {
    fn of(&self, reader: &SegmentReader) -> tantivy::Result<SegmentColumns> {
        let id = reader.segment_id();
        if let Some(columns) = self.lock().get(&id) {
            return Ok(columns.clone());
        }
        let fast = reader.fast_fields();
        let columns = SegmentColumns {
            titles: fast.u64("title")?.first_or_default_col(u64::MAX),
            sizes: fast.u64("size")?.first_or_default_col(0),
            orders: fast.u64(ORDER_FIELD)?.first_or_default_col(0),
        };
        self.lock().insert(id, columns.clone());
        Ok(columns)
    }

    /// Forgets segments `searcher` no longer has, once they pile up.
    fn keep_only(&self, searcher: &Searcher) {
        let readers = searcher.segment_readers();
        let mut cache = self.lock();
        if cache.len() > readers.len() * 2 + 8 {
            let live: HashSet<SegmentId> = readers.iter().map(SegmentReader::segment_id).collect();
            cache.retain(|id, _| live.contains(id));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentId, SegmentColumns>> {
        self.by_segment.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<'a> SegmentView<'a> {
    fn new(
        reader: &'a SegmentReader,
        columns: SegmentColumns,
        board: &'a HolderBoard,
        filter: &'a FileFilter,
    ) -> Self {
        let sized = filter.min_size.is_some() || filter.max_size.is_some();
        Self {
            reader,
            titles: columns.titles,
            sizes: sized.then_some(columns.sizes),
            orders: columns.orders,
            alive: reader.alive_bitset(),
            board,
            filter,
        }
    }

    /// The popularity tier `doc` was indexed under.
    fn tier(&self, doc: DocId) -> u8 {
        TitleDoc::tier_of_order(self.orders.get_val(doc))
    }

    /// The documents indexed under a tier of `band`: a run, as the segment
    /// is sorted most popular tier first.
    fn band(&self, band: &RangeInclusive<u8>) -> (DocId, DocId) {
        let first_below = |tier: u8| self.first_doc_where(|t| t < tier);
        (
            first_below(band.end().saturating_add(1)),
            first_below(*band.start()),
        )
    }

    /// The first document whose tier satisfies `below` (which, once true,
    /// stays true for every later document), or the segment's end.
    fn first_doc_where(&self, below: impl Fn(u8) -> bool) -> DocId {
        let (mut lo, mut hi) = (0, self.reader.max_doc());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(self.tier(mid)) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// (title, its file's online listings) when `doc` is a live, online
    /// title within the size filter.
    fn online(&self, doc: DocId) -> Option<(u32, u32)> {
        if self.alive.is_some_and(|alive| alive.is_deleted(doc)) {
            return None;
        }
        let title = u32::try_from(self.titles.get_val(doc)).ok()?;
        let (title_holders, file_holders) = self.board.get(title);
        if title_holders == 0 {
            return None;
        }
        if let Some(sizes) = &self.sizes {
            let size = sizes.get_val(doc);
            if self.filter.min_size.is_some_and(|m| size < m)
                || self.filter.max_size.is_some_and(|m| size > m)
            {
                return None;
            }
        }
        Some((title, file_holders))
    }
}

/// Where a pass over the views stopped: (view index, document).
#[derive(Clone, Copy, Default)]
struct WalkedTo {
    view: usize,
    doc: DocId,
}

impl WalkedTo {
    /// The first document of view `view` still to rank.
    fn first_unranked(self, view: usize) -> Option<DocId> {
        match view.cmp(&self.view) {
            Ordering::Less => None,
            Ordering::Equal => Some(self.doc),
            Ordering::Greater => Some(0),
        }
    }
}

/// How the first pass over the matches ended.
enum Walk {
    /// Every match was seen and ranked: this many.
    Complete(u64),
    /// The limit was reached: there are more, and every document before
    /// this one (the view's index, its document) was ranked.
    Broad(WalkedTo),
}

/// The views of every segment of `searcher`.
fn segment_views<'a>(
    searcher: &'a Searcher,
    columns: &ColumnCache,
    board: &'a HolderBoard,
    filter: &'a FileFilter,
) -> tantivy::Result<Vec<SegmentView<'a>>> {
    columns.keep_only(searcher);
    searcher
        .segment_readers()
        .iter()
        .map(|reader| Ok(SegmentView::new(reader, columns.of(reader)?, board, filter)))
        .collect()
}

/// Ranks matches in document order, each scored, until all are seen or
/// `limit` are.
fn walk_matches(
    views: &[SegmentView<'_>],
    weight: &dyn Weight,
    best: &mut Best,
    limit: u64,
) -> tantivy::Result<Walk> {
    let mut matches = 0;
    for (at, view) in views.iter().enumerate() {
        let reader = view.reader;
        let mut scorer = weight.scorer(reader, 1.0)?;
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if let Some((title, holders)) = view.online(doc) {
                matches += 1;
                best.offer(scorer.score() * popularity(holders), title);
                if matches >= limit {
                    return Ok(Walk::Broad(WalkedTo {
                        view: at,
                        doc: doc + 1,
                    }));
                }
            }
            doc = scorer.advance();
        }
    }
    Ok(Walk::Complete(matches))
}

/// Windows the documents are cut into for [`estimate_matches`]: many small
/// ones, since matches cluster (a few large windows missed or hit whole
/// clusters, and estimates of one query varied by half between loads).
const SAMPLE_WINDOWS: u32 = 16384;
/// Windows in the first round of counting.
const SAMPLE_FIRST_ROUND: u32 = 128;
/// Matches counted before an estimate is good enough.
const SAMPLE_MATCHES: u64 = 512;
/// Most windows counted (1/64 of the documents), for sparse matches.
const SAMPLE_MAX_WINDOWS: u32 = SAMPLE_WINDOWS / 64;

/// Estimates the online matches of a broad query by counting them in a
/// sample of the documents: equal windows, taken in an order that spreads
/// them over the whole index (bit-reversed: 0, ½, ¼, ¾, …), in rounds that
/// double until enough matches or 1/64 of the documents are counted.
/// Segments are sorted (popular, short names first), so matches cluster,
/// and the first ones found say little about the rest.
///
/// The documents the first walk went through (to `walked`, holding
/// `walked_matches`) are counted exactly; only the rest is sampled.
fn estimate_matches(
    views: &[SegmentView<'_>],
    weight: &dyn Weight,
    walked: WalkedTo,
    walked_matches: u64,
) -> tantivy::Result<u64> {
    let docs = |views: &[SegmentView<'_>]| -> u64 {
        views.iter().map(|v| u64::from(v.reader.max_doc())).sum()
    };
    let all_docs = docs(views);
    let unwalked_from = docs(&views[..walked.view.min(views.len())]) + u64::from(walked.doc);
    let bits = SAMPLE_WINDOWS.trailing_zeros();
    let spread = |i: u32| i.reverse_bits() >> (32 - bits);
    let (mut sample, mut visited, mut round) = (Sample::default(), 0u32, SAMPLE_FIRST_ROUND);
    while visited < SAMPLE_WINDOWS
        && sample.matches < SAMPLE_MATCHES
        && visited < SAMPLE_MAX_WINDOWS
    {
        let end = (visited + round).min(SAMPLE_WINDOWS);
        let mut windows: Vec<u32> = (visited..end).map(spread).collect();
        windows.sort_unstable();
        let counted = count_in_windows(views, weight, &windows, all_docs, unwalked_from)?;
        sample.matches += counted.matches;
        sample.docs += counted.docs;
        visited = end;
        round = round.saturating_mul(2);
    }
    if sample.docs == 0 {
        return Ok(walked_matches);
    }
    let unwalked = all_docs.saturating_sub(unwalked_from) as f64;
    Ok(walked_matches + (sample.matches as f64 * unwalked / sample.docs as f64) as u64)
}

/// Matches counted in sampled documents.
#[derive(Default)]
struct Sample {
    matches: u64,
    docs: u64,
}

/// Online matches in the given windows (sorted) of the `all_docs`
/// documents cut into [`SAMPLE_WINDOWS`] equal parts, numbering documents
/// across segments in order, leaving out those before `from`.
fn count_in_windows(
    views: &[SegmentView<'_>],
    weight: &dyn Weight,
    windows: &[u32],
    all_docs: u64,
    from: u64,
) -> tantivy::Result<Sample> {
    let bound = |w: u32| u64::from(w) * all_docs / u64::from(SAMPLE_WINDOWS);
    let mut sample = Sample::default();
    let mut first = 0u64;
    for view in views {
        let last = first + u64::from(view.reader.max_doc());
        let mut scorer = None;
        for &w in windows {
            let (lo, hi) = (bound(w).max(first).max(from), bound(w + 1).min(last));
            if lo >= hi {
                continue;
            }
            sample.docs += hi - lo;
            let scorer = match &mut scorer {
                Some(scorer) => scorer,
                None => scorer.insert(weight.scorer(view.reader, 1.0)?),
            };
            let (lo, hi) = ((lo - first) as DocId, (hi - first) as DocId);
            let mut doc = scorer.doc();
            if doc < lo {
                doc = scorer.seek(lo);
            }
            while doc < hi {
                if view.online(doc).is_some() {
                    sample.matches += 1;
                }
                doc = scorer.advance();
            }
        }
        first = last;
    }
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TITLES: u32 = 12_000;

    /// A name of a varying length (so match scores differ) and a
    /// popularity spread over every tier.
    fn title(ord: u32) -> (TitleDoc, u32) {
        let filler = ["alpha", "beta", "gamma", "delta"];
        let mut name = format!("lecture {:02} topic{}", ord % 40, ord % 7);
        for w in filler.iter().take((ord % 5) as usize) {
            name.push(' ');
            name.push_str(w);
        }
        let ext = if ord.is_multiple_of(3) { "mp4" } else { "mkv" };
        name.push('.');
        name.push_str(ext);
        let holders = match ord % 97 {
            0 => 1 + ord % 700,
            1..=9 => 1 + ord % 30,
            _ => 1 + ord % 3,
        };
        let doc = TitleDoc {
            ord,
            name: name.into(),
            ext: ext.into(),
            size: u64::from(ord * 7919 % TITLES) * 1000,
            tier: popularity_tier(holders),
        };
        (doc, holders)
    }

    async fn filled() -> (tempfile::TempDir, TextIndex, HolderBoard) {
        let folder = tempfile::tempdir().unwrap();
        let index = TextIndex::open(folder.path(), Arc::default()).unwrap();
        let board = HolderBoard::new(TITLES as usize);
        let mut adds = Vec::new();
        for ord in 0..TITLES {
            let (doc, holders) = title(ord);
            board.set(ord, 1, holders);
            adds.push(TextChange::Add(doc));
            // Several commits, so several segments.
            if adds.len() == 3000 {
                index
                    .submit(std::mem::take(&mut adds))
                    .searchable()
                    .await
                    .unwrap();
            }
        }
        index.submit(adds).searchable().await.unwrap();
        (folder, index, board)
    }

    fn words(text: &str) -> NameMatch {
        NameMatch::Words(tokens::words(text))
    }

    #[tokio::test]
    async fn segments_merged_after_the_last_commit_are_searched_without_another() {
        let folder = tempfile::tempdir().unwrap();
        let index = TextIndex::open(folder.path(), Arc::default()).unwrap();
        // The merge policy merges MERGE_FACTOR segments of a size: the
        // last commit starts a merge that ends after it, with no commit to
        // follow.
        const COMMITS: u32 = crate::search::merging::MERGE_FACTOR as u32;
        for batch in 0..COMMITS {
            let adds = (batch * 50..(batch + 1) * 50)
                .map(|ord| TextChange::Add(title(ord).0))
                .collect();
            index.submit(adds).searchable().await.unwrap();
        }
        let writer_index = index.reader.searcher().index().clone();
        let searched = |index: &TextIndex| -> HashSet<SegmentId> {
            let searcher = index.reader.searcher();
            let ids = searcher.segment_readers().iter();
            ids.map(SegmentReader::segment_id).collect()
        };
        // Merges end on their own time; the indexer, idle, picks them up.
        let mut waited = Duration::ZERO;
        loop {
            let committed: HashSet<SegmentId> = writer_index
                .searchable_segment_ids()
                .unwrap()
                .into_iter()
                .collect();
            if committed == searched(&index) && committed.len() < COMMITS as usize {
                break;
            }
            assert!(
                waited < Duration::from_secs(30),
                "merged segments were never searched"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
        }
        let all = index.reader.searcher().num_docs();
        assert_eq!(
            all,
            u64::from(COMMITS * 50),
            "nothing is lost in the merges"
        );
        index.close();
    }

    #[tokio::test]
    async fn an_idle_indexer_merges_its_small_segments_into_one() {
        let folder = tempfile::tempdir().unwrap();
        let index = TextIndex::open(folder.path(), Arc::default()).unwrap();
        // One large segment and three small ones: too few of a size for
        // the log policy, each under an eighth of the large one.
        for ords in [0..800, 800..810, 810..820, 820..830] {
            let adds = ords.map(|ord| TextChange::Add(title(ord).0)).collect();
            index.submit(adds).searchable().await.unwrap();
        }
        let sizes = |index: &TextIndex| -> Vec<u32> {
            let searcher = index.reader.searcher();
            let mut sizes: Vec<u32> = (searcher.segment_readers().iter())
                .map(SegmentReader::num_docs)
                .collect();
            sizes.sort_unstable();
            sizes
        };
        assert_eq!(sizes(&index), vec![10, 10, 10, 800], "one segment a commit");
        let idle_from = Instant::now();
        while sizes(&index) != vec![30, 800] {
            assert!(
                idle_from.elapsed() < MERGE_SMALL_AFTER_IDLE + Duration::from_secs(20),
                "small segments never merged: {:?}",
                sizes(&index)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // (The indexer's idle time began a moment before this test saw
        // the last commit.)
        let merged_after = idle_from.elapsed() + Duration::from_millis(500);
        assert!(merged_after >= MERGE_SMALL_AFTER_IDLE, "merged before idle");
        // A change ends the idle time: the next small segment stays until
        // the indexer is idle again.
        let adds = (830..835)
            .map(|ord| TextChange::Add(title(ord).0))
            .collect();
        index.submit(adds).searchable().await.unwrap();
        assert_eq!(sizes(&index), vec![5, 30, 800]);
        index.close();
    }

    #[tokio::test]
    async fn skipping_what_cannot_rank_finds_the_same_best_as_ranking_every_match() {
        let (_folder, index, board) = filled().await;
        let queries = [
            (words("lecture"), FileFilter::default()),
            (words("topic3"), FileFilter::default()),
            (words("lecture alp"), FileFilter::default()),
            (
                words("lect"),
                FileFilter {
                    ext: Some("mp4".into()),
                    ..FileFilter::default()
                },
            ),
            (
                words("lecture"),
                FileFilter {
                    min_size: Some(2_000_000),
                    max_size: Some(9_000_000),
                    ..FileFilter::default()
                },
            ),
        ];
        for (name, filter) in &queries {
            for wanted in [1, 50, 300] {
                let every = index
                    .rank_within(name, filter, &board, wanted, u64::MAX)
                    .unwrap();
                let pruned = index
                    .rank_within(name, filter, &board, wanted, 500)
                    .unwrap();
                assert!(!every.estimated);
                assert!(every.matches > 1000, "{name:?} matches {}", every.matches);
                assert!(pruned.estimated, "{name:?} should be broad");
                assert_eq!(pruned.best.len(), wanted, "{name:?}");
                // Ties may pick other titles; the ranks must be the same.
                for (k, (a, b)) in every.best.iter().zip(&pruned.best).enumerate() {
                    assert!(
                        (a.0 - b.0).abs() <= 1e-3 * a.0,
                        "{name:?} {filter:?} rank {k}: {} ranked, {} pruned",
                        a.0,
                        b.0
                    );
                }
                // The best are the popular ones, not the first in the index.
                let (_, top) = every.best[0];
                assert!(
                    board.get(top).1 > 100,
                    "{name:?} best has {:?}",
                    board.get(top)
                );
                let ratio = pruned.matches as f64 / every.matches as f64;
                // The walked part is counted exactly, the rest sampled.
                assert!(
                    (0.85..1.18).contains(&ratio),
                    "{name:?} {filter:?} estimate off by {ratio}: {} for {}",
                    pruned.matches,
                    every.matches
                );
            }
        }
        index.close();
    }

    #[tokio::test]
    async fn a_file_that_becomes_popular_is_ranked_in_its_new_tier() {
        let (_folder, index, board) = filled().await;
        // A plain title (holders 1–3) of the longest kind becomes the most popular.
        let ord = 4;
        let (mut doc, _) = title(ord);
        doc.tier = popularity_tier(5000);
        board.set(ord, 1, 5000);
        index
            .submit(vec![TextChange::Replace(doc)])
            .searchable()
            .await
            .unwrap();
        let ranked = index
            .rank_within(&words("lecture"), &FileFilter::default(), &board, 10, 500)
            .unwrap();
        assert!(ranked.estimated);
        assert_eq!(ranked.best[0].1, ord, "{:?}", ranked.best);
        index.close();
    }

    #[test]
    fn tiers_double_and_their_ceilings_bound_them() {
        assert_eq!(popularity_tier(0), 0);
        assert_eq!(popularity_tier(1), 0);
        assert_eq!(popularity_tier(2), 1);
        assert_eq!(popularity_tier(3), 1);
        assert_eq!(popularity_tier(4), 2);
        assert_eq!(popularity_tier(u32::MAX), MAX_TIER);
        for holders in [1, 2, 3, 4, 7, 8, 1000, 1 << 19, (1 << 21) - 1, u32::MAX] {
            assert!(
                holders <= tier_ceiling(popularity_tier(holders)),
                "{holders}"
            );
        }
    }
}
