//! The online catalogue: in memory, every online peer (its user, addresses,
//! last heartbeat and listings) and the files and titles (a file id with one
//! of its names) they make findable, with the [`TextIndex`] over the titles,
//! the [`ExactNames`] that find them by whole name, and the [`HolderBoard`]
//! that ranks and filters them.
//!
//! It is a view, never the truth: the store commits every change first and
//! the catalogue follows (a join, publish, unpublish, leave, heartbeat,
//! timeout or deleted account), and at start it is rebuilt from the store.
//! A title is added to the text index when its first online holder appears
//! and deleted when its last one goes; peers coming back or timing out only
//! change counts on the board. Its size is bounded by a listing budget
//! ([`Catalogue::room_for`] refuses before the store is written). It never
//! validates input: the rows it gets were checked and stored already.

use rand::Rng;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::names::ExactNames;
pub use super::text::Pending;
use super::text::{
    self, popularity, Best, FileFilter, HolderBoard, NameMatch, Ranked, TextChange, TextIndex,
    TextIndexError, TitleDoc,
};
use super::{SearchHit, SearchResults, Source};
use crate::store::{FileRow, OnlineCounts};

/// A file's BLAKE3 id as bytes.
type FileKey = [u8; 32];

/// An online peer as the catalogue lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlinePeer {
    /// libp2p peer id.
    pub peer_id: String,
    /// The user running it.
    pub user: String,
    /// Where to reach it.
    pub addrs: Vec<String>,
    /// Its last join or heartbeat, in ms.
    pub last_seen: i64,
}

/// The listing budget is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the index lists {listed} files and may list at most {budget}")]
pub struct BudgetFull {
    /// Listings now.
    pub listed: u64,
    /// The budget.
    pub budget: u64,
}

struct PeerEntry {
    peer_id: Arc<str>,
    user: Arc<str>,
    addrs: Arc<[String]>,
    /// The peer as results list it (a [`Source`] in JSON), written once at
    /// join: a popular file's page names hundreds of sources, and copying
    /// these bytes costs a fraction of serializing each source again.
    source_json: Box<RawValue>,
    last_seen: AtomicI64,
    /// Title ordinals, one per listing, sorted.
    titles: Vec<u32>,
}

struct FileEntry {
    key: FileKey,
    size: u64,
    /// Titles of this file with online holders.
    titles: Vec<u32>,
    /// Peer slots, one per online listing of this file, sorted (a peer
    /// listing the file under two names is in it twice).
    holders: Vec<u32>,
    /// The popularity tier its titles are indexed under.
    tier: u8,
}

struct TitleEntry {
    file: u32,
    name: Arc<str>,
    ext: Box<str>,
    /// Online listings of this title.
    holders: u32,
}

/// Slots reused as soon as they are freed.
struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    fn insert(&mut self, item: T) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                self.items[slot as usize] = Some(item);
                slot
            }
            None => {
                self.items.push(Some(item));
                (self.items.len() - 1) as u32
            }
        }
    }

    fn remove(&mut self, slot: u32) -> Option<T> {
        let item = self.items.get_mut(slot as usize)?.take();
        if item.is_some() {
            self.free.push(slot);
        }
        item
    }

    fn get(&self, slot: u32) -> Option<&T> {
        self.items.get(slot as usize)?.as_ref()
    }

    fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.items.get_mut(slot as usize)?.as_mut()
    }
}

#[derive(Default)]
struct State {
    peers: Slots<PeerEntry>,
    peer_slots: HashMap<Arc<str>, u32>,
    files: Slots<FileEntry>,
    file_slots: HashMap<FileKey, u32>,
    /// Indexed by title ordinal; `None` once the title went offline.
    titles: Vec<Option<TitleEntry>>,
    /// (file slot, hash of the name) → title ordinal.
    title_slots: HashMap<(u32, u64), u32>,
    /// Online titles by exact name.
    names: ExactNames,
    hasher: RandomState,
    listings: u64,
    /// Listings of each user with online peers, across their peers.
    user_listings: HashMap<Arc<str>, u64>,
}

impl State {
    /// Counts `added` more and `removed` fewer listings for `user`.
    fn count_user_listings(&mut self, user: &Arc<str>, added: usize, removed: usize) {
        let count = self.user_listings.entry(user.clone()).or_default();
        *count = (*count + added as u64).saturating_sub(removed as u64);
        if *count == 0 {
            self.user_listings.remove(user);
        }
    }
}

/// The name of title `t`, or nothing when it is offline.
fn title_name(titles: &[Option<TitleEntry>], t: u32) -> &str {
    titles
        .get(t as usize)
        .and_then(Option::as_ref)
        .map_or("", |e| &e.name)
}

/// Most sources listed per result; the rest are counted in
/// `sources_total`.
pub const MAX_SOURCES_LISTED: usize = 10;

/// Distinct peers in a sorted list of holders.
fn distinct_holders(sorted: &[u32]) -> usize {
    sorted.chunk_by(|a, b| a == b).count()
}

/// `count` distinct peers drawn at random from a sorted list of holders
/// that has more than `count` of them. A peer is drawn in proportion to its
/// listings of the file, which keeps the draw free of a copy of the list.
fn sample_holders(sorted: &[u32], count: usize) -> Vec<u32> {
    let mut rng = rand::thread_rng();
    let mut drawn = Vec::with_capacity(count);
    while drawn.len() < count {
        let peer = sorted[rng.gen_range(0..sorted.len())];
        if !drawn.contains(&peer) {
            drawn.push(peer);
        }
    }
    drawn
}

/// The online catalogue and its text index.
pub struct Catalogue {
    state: RwLock<State>,
    board: Arc<HolderBoard>,
    text: TextIndex,
    /// Title ordinals whose deletion is committed, free to reuse.
    released: Arc<Mutex<Vec<u32>>>,
    budget: u64,
}

/// A file id in lowercase hex (one allocation; results list many).
fn file_id_hex(key: &FileKey) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(key.len() * 2);
    for byte in key {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// A peer's [`Source`] as JSON.
fn source_json(peer: &OnlinePeer) -> Box<RawValue> {
    let source = Source {
        user: peer.user.clone(),
        peer_id: peer.peer_id.clone(),
        addrs: peer.addrs.clone(),
    };
    serde_json::value::to_raw_value(&source).expect("a source is plain strings")
}

/// What a result says of one file, borrowed from the catalogue.
struct Listed<'a> {
    names: Vec<&'a str>,
    size: i64,
    holders: Vec<&'a PeerEntry>,
    sources_total: i64,
}

/// [`SearchResults`] borrowed from the catalogue: the same fields in the
/// same order, so the same JSON (a test compares the two).
#[derive(Serialize)]
struct PageJson<'a> {
    total: i64,
    total_is_lower_bound: bool,
    total_is_estimate: bool,
    offset: i64,
    results: Vec<HitJson<'a>>,
}

/// [`SearchHit`] borrowed from the catalogue, its sources written at join.
#[derive(Serialize)]
struct HitJson<'a> {
    id: &'a str,
    names: Vec<&'a str>,
    size: i64,
    sources: Vec<&'a RawValue>,
    sources_total: i64,
}

fn file_key(id: &str) -> Option<FileKey> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(id, &mut key).ok()?;
    Some(key)
}

impl Catalogue {
    /// An empty catalogue listing at most `budget` files (listings), with
    /// its text index in `folder` (emptied first).
    pub fn open(folder: &Path, budget: u64) -> Result<Self, TextIndexError> {
        let released = Arc::new(Mutex::new(Vec::new()));
        let text = TextIndex::open(folder, released.clone())?;
        // Titles are at most listings, plus ordinals waiting for release.
        let capacity = budget.saturating_add(budget / 8).saturating_add(4096);
        Ok(Self {
            state: RwLock::new(State::default()),
            board: Arc::new(HolderBoard::new(
                usize::try_from(capacity.min(u64::from(u32::MAX))).unwrap_or(usize::MAX),
            )),
            text,
            released,
            budget,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a read would not wait right now (no change is being applied).
    pub fn readable_at_once(&self) -> bool {
        matches!(
            self.state.try_read(),
            Ok(_) | Err(std::sync::TryLockError::Poisoned(_))
        )
    }

    /// The listing budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Checks that `peer_id` may list `adding` more files (after dropping
    /// `replacing` of its current ones) within the budget.
    pub fn room_for(
        &self,
        peer_id: &str,
        adding: usize,
        replacing: bool,
    ) -> Result<(), BudgetFull> {
        let state = self.read();
        let current = if replacing {
            state
                .peer_slots
                .get(peer_id)
                .and_then(|&s| state.peers.get(s))
                .map_or(0, |p| p.titles.len() as u64)
        } else {
            0
        };
        let after = state.listings - current + adding as u64;
        if after > self.budget {
            return Err(BudgetFull {
                listed: state.listings,
                budget: self.budget,
            });
        }
        Ok(())
    }

    /// (listings of `user` across their online peers, listings of
    /// `peer_id`), for a per-user allowance.
    pub fn listings_of(&self, user: &str, peer_id: &str) -> (u64, u64) {
        let state = self.read();
        let of_user = state.user_listings.get(user).copied().unwrap_or(0);
        let of_peer = state
            .peer_slots
            .get(peer_id)
            .and_then(|&s| state.peers.get(s))
            .map_or(0, |p| p.titles.len() as u64);
        (of_user, of_peer)
    }

    /// A peer joined (or joined again): it is online with exactly `files`.
    pub fn join(&self, peer: OnlinePeer, files: &[FileRow]) -> Pending {
        let source_json = source_json(&peer);
        let mut changes = Vec::new();
        let mut state = self.write();
        // The old listings go after the new ones are counted, so titles the
        // peer keeps never drop to zero holders and leave the text index.
        let old = state
            .peer_slots
            .remove(peer.peer_id.as_str())
            .and_then(|slot| Some((slot, state.peers.remove(slot)?)));
        let peer_id: Arc<str> = peer.peer_id.into();
        let slot = state.peers.insert(PeerEntry {
            peer_id: peer_id.clone(),
            user: peer.user.into(),
            addrs: peer.addrs.into(),
            source_json,
            last_seen: AtomicI64::new(peer.last_seen),
            titles: Vec::with_capacity(files.len()),
        });
        state.peer_slots.insert(peer_id, slot);
        self.add_listings(&mut state, slot, files, &mut changes);
        if let Some((old_slot, old)) = old {
            state.count_user_listings(&old.user, 0, old.titles.len());
            for title in old.titles {
                self.drop_listing(&mut state, old_slot, title, &mut changes);
            }
        }
        self.text.submit(changes)
    }

    /// Adds files to an online peer (ignored when it is not online here).
    pub fn publish(&self, peer_id: &str, files: &[FileRow]) -> Pending {
        let mut changes = Vec::new();
        let mut state = self.write();
        if let Some(&slot) = state.peer_slots.get(peer_id) {
            self.add_listings(&mut state, slot, files, &mut changes);
        }
        self.text.submit(changes)
    }

    /// Removes a file id, under every name, from an online peer.
    pub fn unpublish(&self, peer_id: &str, file_id: &str) -> Pending {
        let mut changes = Vec::new();
        let mut state = self.write();
        let (Some(&slot), Some(key)) = (state.peer_slots.get(peer_id), file_key(file_id)) else {
            return Pending::none();
        };
        let Some(&file) = state.file_slots.get(&key) else {
            return Pending::none();
        };
        let titles: Vec<u32> = state.peers.get(slot).map_or_else(Vec::new, |p| {
            p.titles
                .iter()
                .copied()
                .filter(|&t| {
                    state.titles[t as usize]
                        .as_ref()
                        .is_some_and(|e| e.file == file)
                })
                .collect()
        });
        if let Some(peer) = state.peers.get_mut(slot) {
            peer.titles.retain(|t| !titles.contains(t));
            let user = peer.user.clone();
            state.count_user_listings(&user, 0, titles.len());
        }
        for title in titles {
            self.drop_listing(&mut state, slot, title, &mut changes);
        }
        self.text.submit(changes)
    }

    /// A peer left, timed out or lost its account: its files go offline.
    pub fn remove_peer(&self, peer_id: &str) -> Pending {
        let mut changes = Vec::new();
        let mut state = self.write();
        self.drop_peer(&mut state, peer_id, &mut changes);
        self.text.submit(changes)
    }

    /// Every peer of a deleted account goes offline.
    pub fn remove_user(&self, user: &str) -> Pending {
        let mut changes = Vec::new();
        let mut state = self.write();
        let peers: Vec<Arc<str>> = state
            .peers
            .items
            .iter()
            .flatten()
            .filter(|p| &*p.user == user)
            .map(|p| p.peer_id.clone())
            .collect();
        for peer_id in peers {
            self.drop_peer(&mut state, &peer_id, &mut changes);
        }
        self.text.submit(changes)
    }

    /// Records a heartbeat; false when the peer is not online here (it timed
    /// out, so the caller reloads it from the store).
    pub fn heartbeat(&self, peer_id: &str, now: i64) -> bool {
        let state = self.read();
        let Some(peer) = state
            .peer_slots
            .get(peer_id)
            .and_then(|&s| state.peers.get(s))
        else {
            return false;
        };
        peer.last_seen.fetch_max(now, AtomicOrdering::Relaxed);
        true
    }

    /// Up to `limit` online peers other than `except`, most recently seen
    /// first: (peer id, addresses).
    pub fn recent_peers(&self, limit: usize, except: &str) -> Vec<(String, Vec<String>)> {
        let state = self.read();
        let mut recent: Vec<(i64, &PeerEntry)> = state
            .peers
            .items
            .iter()
            .flatten()
            .filter(|p| &*p.peer_id != except)
            .map(|p| (p.last_seen.load(AtomicOrdering::Relaxed), p))
            .collect();
        if recent.len() > limit {
            recent.select_nth_unstable_by(limit, |a, b| b.0.cmp(&a.0));
            recent.truncate(limit);
        }
        recent.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.peer_id.cmp(&b.1.peer_id)));
        recent
            .into_iter()
            .map(|(_, p)| (p.peer_id.to_string(), p.addrs.to_vec()))
            .collect()
    }

    /// The peers last seen here before `cutoff` (ms).
    pub fn stale_peers(&self, cutoff: i64) -> Vec<String> {
        self.read()
            .peers
            .items
            .iter()
            .flatten()
            .filter(|p| p.last_seen.load(AtomicOrdering::Relaxed) < cutoff)
            .map(|p| p.peer_id.to_string())
            .collect()
    }

    /// Takes offline every peer last seen before `cutoff` (ms); returns their ids.
    pub fn sweep(&self, cutoff: i64) -> (Vec<String>, Pending) {
        let stale: Vec<Arc<str>> = {
            let state = self.read();
            state
                .peers
                .items
                .iter()
                .flatten()
                .filter(|p| p.last_seen.load(AtomicOrdering::Relaxed) < cutoff)
                .map(|p| p.peer_id.clone())
                .collect()
        };
        if stale.is_empty() {
            return (Vec::new(), Pending::none());
        }
        let mut changes = Vec::new();
        let mut state = self.write();
        let mut gone = Vec::new();
        for peer_id in stale {
            // A heartbeat may have come in between the two locks.
            let still_stale = state
                .peer_slots
                .get(&peer_id)
                .and_then(|&s| state.peers.get(s))
                .is_some_and(|p| p.last_seen.load(AtomicOrdering::Relaxed) < cutoff);
            if still_stale {
                self.drop_peer(&mut state, &peer_id, &mut changes);
                gone.push(peer_id.to_string());
            }
        }
        (gone, self.text.submit(changes))
    }

    /// Online peers (of all users) in the catalogue.
    pub fn peer_ids(&self) -> Vec<String> {
        self.read()
            .peer_slots
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    fn drop_peer(&self, state: &mut State, peer_id: &str, changes: &mut Vec<TextChange>) {
        let Some(slot) = state.peer_slots.remove(peer_id) else {
            return;
        };
        let Some(peer) = state.peers.remove(slot) else {
            return;
        };
        state.count_user_listings(&peer.user, 0, peer.titles.len());
        for title in peer.titles {
            self.drop_listing(state, slot, title, changes);
        }
    }

    fn add_listings(
        &self,
        state: &mut State,
        peer: u32,
        files: &[FileRow],
        changes: &mut Vec<TextChange>,
    ) {
        let mut added = Vec::with_capacity(files.len());
        let mut added_set = std::collections::HashSet::with_capacity(files.len());
        for row in files {
            let Some(key) = file_key(&row.file_id) else {
                continue;
            };
            let size = u64::try_from(row.size).unwrap_or(0);
            let file = match state.file_slots.get(&key) {
                Some(&f) => {
                    self.resize(state, f, size, changes);
                    f
                }
                None => {
                    let f = state.files.insert(FileEntry {
                        key,
                        size,
                        titles: Vec::new(),
                        holders: Vec::new(),
                        tier: 0,
                    });
                    state.file_slots.insert(key, f);
                    f
                }
            };
            let name_hash = state.hasher.hash_one(row.name.as_str());
            let title = match state.title_slots.get(&(file, name_hash)) {
                Some(&t) => t,
                None => {
                    let Some(t) = self.new_title(state, file, row, changes) else {
                        tracing::warn!(
                            "the search index has no room for {} ({}); raise the file budget",
                            row.name,
                            row.file_id
                        );
                        self.forget_file_if_unused(state, file);
                        continue;
                    };
                    state.title_slots.insert((file, name_hash), t);
                    t
                }
            };
            // A listing the peer already has is an update, not a new holder.
            let already = state
                .peers
                .get(peer)
                .is_some_and(|p| p.titles.binary_search(&title).is_ok());
            if already || !added_set.insert(title) {
                continue;
            }
            added.push(title);
            if let Some(entry) = state.titles[title as usize].as_mut() {
                entry.holders += 1;
            }
            if let Some(f) = state.files.get_mut(file) {
                let at = f.holders.partition_point(|&h| h < peer);
                f.holders.insert(at, peer);
            }
            state.listings += 1;
            self.post_counts(state, file, changes);
        }
        if let Some(p) = state.peers.get_mut(peer) {
            let (user, count) = (p.user.clone(), added.len());
            p.titles.extend(added);
            p.titles.sort_unstable();
            state.count_user_listings(&user, count, 0);
        }
    }

    /// Gives a file the size its latest listing says (ids are content
    /// hashes, so only a faulty peer disagrees), rewriting its titles'
    /// documents so size filters see it.
    fn resize(&self, state: &mut State, file: u32, size: u64, changes: &mut Vec<TextChange>) {
        let Some(f) = state.files.get_mut(file) else {
            return;
        };
        if f.size == size {
            return;
        }
        f.size = size;
        Self::reindex(state, file, changes);
    }

    /// Writes every title of `file` to the text index again.
    fn reindex(state: &State, file: u32, changes: &mut Vec<TextChange>) {
        let Some(f) = state.files.get(file) else {
            return;
        };
        for &t in &f.titles {
            changes.extend(Self::title_doc(state, t).map(TextChange::Replace));
        }
    }

    /// What the text index holds for title `t`.
    fn title_doc(state: &State, t: u32) -> Option<TitleDoc> {
        let entry = state.titles.get(t as usize)?.as_ref()?;
        let file = state.files.get(entry.file)?;
        Some(TitleDoc {
            ord: t,
            name: entry.name.clone(),
            ext: entry.ext.to_string(),
            size: file.size,
            tier: file.tier,
        })
    }

    fn new_title(
        &self,
        state: &mut State,
        file: u32,
        row: &FileRow,
        changes: &mut Vec<TextChange>,
    ) -> Option<u32> {
        let reused = self
            .released
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let ord = match reused {
            Some(ord) => ord,
            None if state.titles.len() < self.board.capacity() => {
                state.titles.push(None);
                (state.titles.len() - 1) as u32
            }
            None => return None,
        };
        let name: Arc<str> = row.name.as_str().into();
        state.titles[ord as usize] = Some(TitleEntry {
            file,
            name: name.clone(),
            ext: row.ext.as_str().into(),
            holders: 0,
        });
        state
            .names
            .insert(ord, &name, |t| title_name(&state.titles, t));
        if let Some(f) = state.files.get_mut(file) {
            f.titles.push(ord);
        }
        changes.extend(Self::title_doc(state, ord).map(TextChange::Add));
        Some(ord)
    }

    fn drop_listing(
        &self,
        state: &mut State,
        peer: u32,
        title: u32,
        changes: &mut Vec<TextChange>,
    ) {
        let Some(entry) = state.titles[title as usize].as_mut() else {
            return;
        };
        entry.holders = entry.holders.saturating_sub(1);
        let (file, emptied) = (entry.file, entry.holders == 0);
        state.listings = state.listings.saturating_sub(1);
        if let Some(f) = state.files.get_mut(file) {
            if let Ok(at) = f.holders.binary_search(&peer) {
                f.holders.remove(at);
            }
        }
        if emptied {
            let name = state.titles[title as usize]
                .as_ref()
                .map(|e| e.name.clone());
            if let Some(name) = name {
                state
                    .names
                    .remove(title, &name, |t| title_name(&state.titles, t));
                let hash = state.hasher.hash_one(&*name);
                state.title_slots.remove(&(file, hash));
            }
            state.titles[title as usize] = None;
            self.board.set(title, 0, 0);
            if let Some(f) = state.files.get_mut(file) {
                f.titles.retain(|&t| t != title);
            }
            changes.push(TextChange::Delete(title));
        }
        self.post_counts(state, file, changes);
        self.forget_file_if_unused(state, file);
    }

    fn forget_file_if_unused(&self, state: &mut State, file: u32) {
        if state.files.get(file).is_some_and(|f| f.titles.is_empty()) {
            if let Some(f) = state.files.remove(file) {
                state.file_slots.remove(&f.key);
            }
        }
    }

    /// Writes the counts of every title of `file` to the board, and
    /// indexes its titles again when the file moved to another popularity
    /// tier: at once when it rose (ranking relies on no title holding
    /// more than its tier allows), two tiers down when it fell (so a file
    /// at a tier's edge does not rewrite its titles at every leave).
    fn post_counts(&self, state: &mut State, file: u32, changes: &mut Vec<TextChange>) {
        let Some(f) = state.files.get_mut(file) else {
            return;
        };
        let file_holders = f.holders.len() as u32;
        let tier = text::popularity_tier(file_holders);
        let retier = tier > f.tier || tier.saturating_add(1) < f.tier;
        if retier {
            f.tier = tier;
        }
        let Some(f) = state.files.get(file) else {
            return;
        };
        for &t in &f.titles {
            if let Some(entry) = &state.titles[t as usize] {
                self.board.set(t, entry.holders, file_holders);
            }
        }
        if retier {
            Self::reindex(state, file, changes);
        }
    }

    /// The best `wanted` online titles for a query (blocking: call off the async threads).
    pub fn rank(
        &self,
        name: &NameMatch,
        filter: &FileFilter,
        wanted: usize,
    ) -> Result<Ranked, TextIndexError> {
        match name {
            NameMatch::Exact(name) => Ok(self.rank_exact(name, filter, wanted)),
            _ => self.text.rank(name, filter, &self.board, wanted),
        }
    }

    /// The best `wanted` online titles named exactly `name`, ranked by
    /// popularity alone (every one matches equally well); the total is
    /// exact, as every title with the name is looked at.
    fn rank_exact(&self, name: &str, filter: &FileFilter, wanted: usize) -> Ranked {
        let state = self.read();
        let mut best = Best::new(wanted);
        let mut matches = 0;
        let named = state.names.titles(name, |t| title_name(&state.titles, t));
        for title in named {
            let Some(entry) = state.titles[title as usize].as_ref() else {
                continue;
            };
            let Some(file) = state.files.get(entry.file) else {
                continue;
            };
            if filter.ext.as_deref().is_some_and(|ext| ext != &*entry.ext)
                || filter.min_size.is_some_and(|m| file.size < m)
                || filter.max_size.is_some_and(|m| file.size > m)
            {
                continue;
            }
            matches += 1;
            best.offer(popularity(file.holders.len() as u32), title);
        }
        Ranked {
            matches,
            estimated: false,
            best: best.into_sorted(),
        }
    }

    /// How many online titles are named exactly `name`, or nothing when
    /// the catalogue is being changed right now.
    pub fn titles_named_at_once(&self, name: &str) -> Option<u32> {
        let state = match self.state.try_read() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(state.names.count(name, |t| title_name(&state.titles, t)))
    }

    /// The distinct files of `ranked` titles in order, as (file slot) list.
    pub fn files_of(&self, titles: &[(f32, u32)]) -> Vec<u32> {
        let state = self.read();
        let mut seen = HashSet::new();
        titles
            .iter()
            .filter_map(|&(_, t)| state.titles.get(t as usize)?.as_ref().map(|e| e.file))
            .filter(|f| seen.insert(*f))
            .collect()
    }

    /// The search result for each file slot (skipping any gone since).
    pub fn hits(&self, files: &[u32]) -> Vec<SearchHit> {
        let state = self.read();
        files.iter().filter_map(|&f| Self::hit(&state, f)).collect()
    }

    /// `head` with the results for `files` (skipping any gone since), as the
    /// JSON of [`SearchResults`], written from the catalogue's own strings.
    pub fn page_json(&self, head: SearchResults, files: &[u32]) -> serde_json::Result<Vec<u8>> {
        let state = self.read();
        let ids: Vec<(u32, String)> = files
            .iter()
            .filter_map(|&f| Some((f, file_id_hex(&state.files.get(f)?.key))))
            .collect();
        let results: Vec<HitJson<'_>> = ids
            .iter()
            .filter_map(|(f, id)| {
                let listed = Self::listed(&state, *f)?;
                Some(HitJson {
                    id,
                    names: listed.names,
                    size: listed.size,
                    sources: listed.holders.iter().map(|p| &*p.source_json).collect(),
                    sources_total: listed.sources_total,
                })
            })
            .collect();
        serde_json::to_vec(&PageJson {
            total: head.total,
            total_is_lower_bound: head.total_is_lower_bound,
            total_is_estimate: head.total_is_estimate,
            offset: head.offset,
            results,
        })
    }

    /// The slot of the online file with this id, if it passes `filter`.
    pub fn by_id(&self, file_id: &str, filter: &FileFilter) -> Option<u32> {
        let state = self.read();
        let &slot = state.file_slots.get(&file_key(file_id)?)?;
        let file = state.files.get(slot)?;
        let size_ok = filter.min_size.is_none_or(|m| file.size >= m)
            && filter.max_size.is_none_or(|m| file.size <= m);
        let ext_ok = filter.ext.as_deref().is_none_or(|ext| {
            file.titles.iter().any(|&t| {
                state.titles[t as usize]
                    .as_ref()
                    .is_some_and(|e| &*e.ext == ext)
            })
        });
        (size_ok && ext_ok && !file.holders.is_empty()).then_some(slot)
    }

    fn hit(state: &State, slot: u32) -> Option<SearchHit> {
        let listed = Self::listed(state, slot)?;
        Some(SearchHit {
            id: file_id_hex(&state.files.get(slot)?.key),
            names: listed.names.into_iter().map(str::to_string).collect(),
            size: listed.size,
            sources: listed
                .holders
                .into_iter()
                .map(|p| Source {
                    user: p.user.to_string(),
                    peer_id: p.peer_id.to_string(),
                    addrs: p.addrs.to_vec(),
                })
                .collect(),
            sources_total: listed.sources_total,
        })
    }

    /// What a result says of the file in `slot`, borrowed from `state`:
    /// `None` once no online peer holds it.
    fn listed(state: &State, slot: u32) -> Option<Listed<'_>> {
        let file = state.files.get(slot)?;
        if file.holders.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = file
            .titles
            .iter()
            .filter_map(|&t| state.titles[t as usize].as_ref())
            .map(|e| &*e.name)
            .collect();
        names.sort_unstable();
        names.dedup();
        let sources_total = distinct_holders(&file.holders);
        let peers = if sources_total > MAX_SOURCES_LISTED {
            // A different sample each time spreads downloads over holders.
            sample_holders(&file.holders, MAX_SOURCES_LISTED)
        } else {
            let mut all = file.holders.clone();
            all.dedup();
            all
        };
        let mut holders: Vec<&PeerEntry> = peers
            .into_iter()
            .filter_map(|p| state.peers.get(p))
            .collect();
        holders.sort_unstable_by(|a, b| (&a.user, &a.peer_id).cmp(&(&b.user, &b.peer_id)));
        Some(Listed {
            names,
            size: i64::try_from(file.size).unwrap_or(i64::MAX),
            holders,
            sources_total: sources_total as i64,
        })
    }

    /// Users, peers, distinct files and listings online now.
    pub fn counts(&self) -> OnlineCounts {
        let state = self.read();
        let users: HashSet<&str> = state
            .peers
            .items
            .iter()
            .flatten()
            .map(|p| &*p.user)
            .collect();
        OnlineCounts {
            users: users.len() as i64,
            peers: state.peer_slots.len() as i64,
            files: state.file_slots.len() as i64,
            listings: state.listings as i64,
        }
    }

    /// Stops the indexer after it committed what is queued.
    pub fn close(&self) {
        self.text.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_of_holders_is_distinct_and_drawn_from_them() {
        // 30 peers, some listing the file under two or three names.
        let mut holders: Vec<u32> = (0..30).chain(0..10).chain(0..5).collect();
        holders.sort_unstable();
        assert_eq!(distinct_holders(&holders), 30);
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let drawn = sample_holders(&holders, MAX_SOURCES_LISTED);
            let distinct: HashSet<u32> = drawn.iter().copied().collect();
            assert_eq!(distinct.len(), MAX_SOURCES_LISTED, "{drawn:?}");
            assert!(drawn.iter().all(|p| *p < 30), "{drawn:?}");
            seen.extend(drawn);
        }
        // Every holder turns up over many draws.
        assert_eq!(seen.len(), 30);
    }

    #[test]
    fn recent_peers_are_the_most_recently_seen_others() {
        let folder = tempfile::tempdir().unwrap();
        let catalogue = Catalogue::open(folder.path(), 100).unwrap();
        for (n, seen) in [
            (0, 50),
            (1, 10),
            (2, 70),
            (3, 30),
            (4, 90),
            (5, 20),
            (6, 60),
        ] {
            let peer = OnlinePeer {
                peer_id: format!("p{n}"),
                user: "u".into(),
                addrs: vec![format!("/ip4/10.0.0.{n}/tcp/1")],
                last_seen: seen,
            };
            drop(catalogue.join(peer, &[]));
        }
        // A heartbeat moves p1 to the front.
        assert!(catalogue.heartbeat("p1", 100));
        let recent = catalogue.recent_peers(4, "p4");
        let ids: Vec<&str> = recent.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["p1", "p2", "p6", "p0"]);
        assert_eq!(recent[0].1, ["/ip4/10.0.0.1/tcp/1"]);
        assert_eq!(catalogue.recent_peers(10, "p9").len(), 7);
        catalogue.close();
    }

    fn peer(n: u32) -> OnlinePeer {
        OnlinePeer {
            peer_id: format!("p{n}"),
            user: format!("u{n}"),
            addrs: Vec::new(),
            last_seen: 0,
        }
    }

    fn file(id: u8, name: &str, size: i64) -> FileRow {
        FileRow {
            file_id: format!("{id:02x}").repeat(32),
            name: name.into(),
            size,
            ext: name.rsplit_once('.').map_or("", |(_, e)| e).into(),
        }
    }

    /// The file ids of an exact search's titles, best first, and its total.
    fn exact(catalogue: &Catalogue, name: &str, filter: &FileFilter) -> (Vec<String>, u64) {
        let ranked = catalogue
            .rank(&NameMatch::Exact(name.into()), filter, 10)
            .unwrap();
        assert!(!ranked.estimated);
        let ids = catalogue
            .hits(&catalogue.files_of(&ranked.best))
            .into_iter()
            .map(|hit| hit.id[..2].to_string())
            .collect();
        (ids, ranked.matches)
    }

    #[test]
    fn exact_names_are_ranked_by_holders_filtered_and_gone_with_their_last_holder() {
        let folder = tempfile::tempdir().unwrap();
        let catalogue = Catalogue::open(folder.path(), 100).unwrap();
        let everything = FileFilter::default();
        // Three files named "song.mp3" (one also as "Song.mp3"), held by
        // one, three and two peers.
        drop(catalogue.join(peer(0), &[file(1, "song.mp3", 10), file(2, "song.mp3", 20)]));
        drop(catalogue.join(peer(1), &[file(2, "song.mp3", 20), file(3, "song.mp3", 30)]));
        drop(catalogue.join(peer(2), &[file(2, "Song.mp3", 20), file(3, "song.mp3", 30)]));
        drop(catalogue.join(peer(3), &[file(2, "song.mp3", 20)]));
        assert_eq!(
            exact(&catalogue, "song.mp3", &everything),
            (vec!["02".into(), "03".into(), "01".into()], 3)
        );
        assert_eq!(
            exact(&catalogue, "Song.mp3", &everything),
            (vec!["02".into()], 1)
        );
        assert_eq!(exact(&catalogue, "song", &everything).1, 0);
        let sized = FileFilter {
            min_size: Some(15),
            max_size: Some(25),
            ..FileFilter::default()
        };
        assert_eq!(
            exact(&catalogue, "song.mp3", &sized),
            (vec!["02".into()], 1)
        );
        let other_ext = FileFilter {
            ext: Some("flac".into()),
            ..FileFilter::default()
        };
        assert_eq!(exact(&catalogue, "song.mp3", &other_ext).1, 0);
        assert_eq!(catalogue.titles_named_at_once("song.mp3"), Some(3));

        // File 1's only holder leaves; file 3 loses one of its two.
        drop(catalogue.remove_peer("p0"));
        drop(catalogue.unpublish("p2", &"03".repeat(32)));
        assert_eq!(
            exact(&catalogue, "song.mp3", &everything),
            (vec!["02".into(), "03".into()], 2)
        );
        drop(catalogue.remove_peer("p1"));
        assert_eq!(
            exact(&catalogue, "song.mp3", &everything),
            (vec!["02".into()], 1)
        );
        assert_eq!(catalogue.titles_named_at_once("song.mp3"), Some(1));
        catalogue.close();
    }

    #[test]
    fn a_catalogue_being_changed_is_not_readable_at_once() {
        let folder = tempfile::tempdir().unwrap();
        let catalogue = Catalogue::open(folder.path(), 100).unwrap();
        assert!(catalogue.readable_at_once());
        {
            let _reading = catalogue.read();
            assert!(catalogue.readable_at_once(), "readers share");
        }
        let changing = catalogue.write();
        assert!(!catalogue.readable_at_once());
        drop(changing);
        assert!(catalogue.readable_at_once());
        catalogue.close();
    }
}
