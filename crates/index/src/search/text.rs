//! The text index over the names of online files: one tantivy document per
//! title (a file id with one of its names), keyed by the title's ordinal in
//! the [`Catalogue`](super::catalogue::Catalogue), with fields for whole
//! words, word prefixes, substring grams, the exact name, the extension and
//! the size.
//!
//! One indexer thread owns the writer. Batches of additions and deletions
//! arrive in the order the catalogue decided them, are committed together
//! (group commit), and each sender learns when its batch is searchable.
//! Holders are not indexed: ranking and the online filter read the
//! [`HolderBoard`] at search time, so peers coming, going and timing out
//! never touch this index. It stores no names (the catalogue has them) and
//! keeps its files in a folder it owns, emptied at every start, since the
//! durable store is the truth it is rebuilt from.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::ColumnValues;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhraseQuery, Query, RangeQuery, RegexQuery,
    TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STRING,
};
use tantivy::tokenizer::{PreTokenizedString, Token};
use tantivy::{
    DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader, TantivyDocument,
    Term,
};
use tokio::sync::{mpsc, oneshot};

use super::scratch::ScratchDirectory;
use super::tokens;

/// Memory the writer buffers before it writes a segment.
const WRITER_MEMORY: usize = 96 << 20;
/// Writer threads (each gets an equal share of [`WRITER_MEMORY`]).
const WRITER_THREADS: usize = 2;
/// Most changes folded into one commit; more wait for the next one.
const MAX_CHANGES_PER_COMMIT: usize = 200_000;
/// Titles per lazily allocated chunk of the [`HolderBoard`].
const BOARD_CHUNK: usize = 1 << 16;
/// Weight of a whole-word match over a prefix-only match.
const WHOLE_WORD_BOOST: Score = 2.0;

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
}

impl HolderBoard {
    /// A board for `capacity` title ordinals.
    pub fn new(capacity: usize) -> Self {
        let chunks = capacity.div_ceil(BOARD_CHUNK).max(1);
        Self {
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
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
    /// Online titles that match (each counted once).
    pub matches: u64,
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
    exact: Field,
    ext: Field,
    size: Field,
}

/// The text index and its indexer thread.
pub struct TextIndex {
    fields: Fields,
    reader: IndexReader,
    batches: Mutex<Option<mpsc::UnboundedSender<Batch>>>,
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
    let terms = |option: IndexRecordOption| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(option),
        )
    };
    let fields = Fields {
        title: b.add_u64_field("title", INDEXED | FAST),
        words: b.add_text_field("words", terms(IndexRecordOption::WithFreqs)),
        prefixes: b.add_text_field("prefixes", terms(IndexRecordOption::WithFreqs)),
        grams: b.add_text_field("grams", terms(IndexRecordOption::WithFreqsAndPositions)),
        exact: b.add_text_field("exact", STRING),
        ext: b.add_text_field("ext", STRING),
        size: b.add_u64_field("size", INDEXED | FAST),
    };
    (b.build(), fields)
}

/// Tokens at consecutive positions, for a pre-tokenized field.
fn pre_tokenized(texts: impl IntoIterator<Item = String>) -> PreTokenizedString {
    PreTokenizedString {
        text: String::new(),
        tokens: texts
            .into_iter()
            .enumerate()
            .map(|(position, text)| Token {
                offset_from: 0,
                offset_to: 0,
                position,
                text,
                position_length: 1,
            })
            .collect(),
    }
}

impl Fields {
    fn document(&self, doc: &TitleDoc) -> TantivyDocument {
        let words = tokens::name_words(&doc.name);
        let prefixes: Vec<String> = words
            .iter()
            .flat_map(|w| tokens::prefixes(w).map(str::to_string))
            .collect();
        let mut d = TantivyDocument::new();
        d.add_u64(self.title, u64::from(doc.ord));
        d.add_pre_tokenized_text(self.words, pre_tokenized(words));
        d.add_pre_tokenized_text(self.prefixes, pre_tokenized(prefixes));
        d.add_pre_tokenized_text(self.grams, pre_tokenized(tokens::grams(&doc.name)));
        d.add_text(self.exact, &doc.name);
        d.add_text(self.ext, &doc.ext);
        d.add_u64(self.size, doc.size);
        d
    }

    fn name_query(&self, name: &NameMatch) -> Option<Box<dyn Query>> {
        let term = |field, text: &str, option| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(field, text), option))
        };
        match name {
            NameMatch::Exact(text) => Some(term(self.exact, text, IndexRecordOption::Basic)),
            NameMatch::Words(words) => {
                let last = words.len().saturating_sub(1);
                let clauses: Vec<(Occur, Box<dyn Query>)> = words
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        let whole = term(self.words, w, IndexRecordOption::WithFreqs);
                        // Only the last word may be unfinished, as in a
                        // search box: earlier ones are whole words.
                        let prefix = if i == last {
                            tokens::prefix_term(w)
                        } else {
                            None
                        };
                        let either: Box<dyn Query> = match prefix {
                            Some(prefix) => Box::new(BooleanQuery::new(vec![
                                (
                                    Occur::Should,
                                    Box::new(BoostQuery::new(whole, WHOLE_WORD_BOOST)),
                                ),
                                (
                                    Occur::Should,
                                    term(self.prefixes, prefix, IndexRecordOption::WithFreqs),
                                ),
                            ])),
                            None => whole,
                        };
                        (Occur::Must, either)
                    })
                    .collect();
                (!clauses.is_empty())
                    .then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
            }
            NameMatch::Substring(text) => {
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
                    return Some(term(self.grams, &grams[0], IndexRecordOption::WithFreqs));
                }
                let terms = grams
                    .iter()
                    .map(|g| Term::from_field_text(self.grams, g))
                    .collect();
                Some(Box::new(PhraseQuery::new(terms)))
            }
        }
    }

    fn query(&self, name: &NameMatch, filter: &FileFilter) -> Option<Box<dyn Query>> {
        let mut clauses = vec![(Occur::Must, self.name_query(name)?)];
        let filter_clause = |q: Box<dyn Query>| {
            (
                Occur::Must,
                Box::new(ConstScoreQuery::new(q, 0.0)) as Box<dyn Query>,
            )
        };
        if let Some(ext) = &filter.ext {
            clauses.push(filter_clause(Box::new(TermQuery::new(
                Term::from_field_text(self.ext, ext),
                IndexRecordOption::Basic,
            ))));
        }
        if filter.min_size.is_some() || filter.max_size.is_some() {
            let bound = |v: Option<u64>| match v {
                Some(v) => Bound::Included(Term::from_field_u64(self.size, v)),
                None => Bound::Unbounded,
            };
            clauses.push(filter_clause(Box::new(RangeQuery::new(
                bound(filter.min_size),
                bound(filter.max_size),
            ))));
        }
        Some(Box::new(BooleanQuery::new(clauses)))
    }
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
        let index = Index::open_or_create(directory, schema)?;
        let writer: IndexWriter = index.writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let thread_reader = reader.clone();
        let indexer = std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || run_indexer(writer, thread_reader, fields, rx, released))
            .map_err(folder_err)?;
        Ok(Self {
            fields,
            reader,
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
    pub fn rank(
        &self,
        name: &NameMatch,
        filter: &FileFilter,
        board: &Arc<HolderBoard>,
        wanted: usize,
    ) -> Result<Ranked, TextIndexError> {
        let Some(query) = self.fields.query(name, filter) else {
            return Ok(Ranked::default());
        };
        let searcher = self.reader.searcher();
        let collector = RankCollector {
            board: board.clone(),
            wanted: wanted.max(1),
        };
        Ok(searcher.search(&*query, &collector)?)
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
    mut batches: mpsc::UnboundedReceiver<Batch>,
    released: Arc<Mutex<Vec<u32>>>,
) {
    while let Some(first) = batches.blocking_recv() {
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
    }
    if let Err(e) = writer.wait_merging_threads() {
        tracing::warn!("search index merges did not finish: {e}");
    }
}

/// Collects the online matches: counts them and keeps the best `wanted` by
/// score × popularity, reading holders from the board.
struct RankCollector {
    board: Arc<HolderBoard>,
    wanted: usize,
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

/// Popularity weight of a file with `holders` online listings.
fn popularity(holders: u32) -> Score {
    1.0 + (holders as Score).ln_1p()
}

struct RankSegment {
    titles: Arc<dyn ColumnValues<u64>>,
    board: Arc<HolderBoard>,
    wanted: usize,
    matches: u64,
    best: BinaryHeap<Candidate>,
}

impl Collector for RankCollector {
    type Fruit = Ranked;
    type Child = RankSegment;

    fn for_segment(&self, _segment: u32, reader: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(RankSegment {
            titles: reader
                .fast_fields()
                .u64("title")?
                .first_or_default_col(u64::MAX),
            board: self.board.clone(),
            wanted: self.wanted,
            matches: 0,
            best: BinaryHeap::with_capacity(self.wanted + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Ranked>) -> tantivy::Result<Ranked> {
        let mut matches = 0;
        let mut best: Vec<(Score, u32)> = Vec::new();
        for fruit in fruits {
            matches += fruit.matches;
            best.extend(fruit.best);
        }
        best.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        best.truncate(self.wanted);
        Ok(Ranked { matches, best })
    }
}

impl SegmentCollector for RankSegment {
    type Fruit = Ranked;

    fn collect(&mut self, doc: DocId, score: Score) {
        let Ok(title) = u32::try_from(self.titles.get_val(doc)) else {
            return;
        };
        let (title_holders, file_holders) = self.board.get(title);
        if title_holders == 0 {
            return;
        }
        self.matches += 1;
        let candidate = Candidate(score * popularity(file_holders), title);
        if self.best.len() < self.wanted {
            self.best.push(candidate);
        } else if self.best.peek().is_some_and(|worst| candidate < *worst) {
            self.best.pop();
            self.best.push(candidate);
        }
    }

    fn harvest(self) -> Ranked {
        let mut best: Vec<(Score, u32)> = self.best.into_iter().map(|c| (c.0, c.1)).collect();
        best.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ranked {
            matches: self.matches,
            best,
        }
    }
}
