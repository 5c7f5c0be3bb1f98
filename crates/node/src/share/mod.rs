//! What this peer shares: [`SharedFiles`], its files by id and by name,
//! kept in step with the shared folders by rescans (on start, on request,
//! and when the folder watcher sees a change). Finished downloads are
//! shared too, each file on its own (never the whole downloads folder), so
//! a downloader becomes a source.
//!
//! Every change bumps a generation number that others can watch (the index
//! link publishes the difference).
//!
//! Files are served by id from this index only, never by a path taken
//! from a request, and an entry whose file changed on disk since it was
//! hashed is not served (see [`SharedFiles::get_unchanged`]).
//!
//! Shared folders can be added and removed while the daemon runs
//! ([`folders`]), and sharing as a whole can be switched off: while the
//! peer is offline, [`SharedFiles::published`] is empty, so the index link
//! and the DHT withdraw everything, and browse and transfer requests find
//! nothing.

pub mod folders;
mod hashing;
mod watcher;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use peershare_core::scan::{
    file_identity, mtime_ns, scan_folder_checked, ScanProblem, ScannedFile,
};
use peershare_core::wire::control::{
    BrowseRequest, BrowseResponse, SharedFileEntry, MAX_BROWSE_PAGE, MAX_BROWSE_PAGE_NAME_BYTES,
    MAX_BROWSE_WORDS,
};
use peershare_core::words::name_words;
use peershare_core::{FileId, Outboard};
use tokio::sync::{watch, Mutex};

use crate::events::EventBus;
use crate::store::Store;
use crate::views::ShareProblem;
use crate::NodeError;

/// One shared file.
#[derive(Debug, Clone)]
pub struct SharedFile {
    /// Where it is on this machine.
    pub path: PathBuf,
    /// The name peers see (path inside its share).
    pub name: String,
    /// Size when hashed.
    pub size: u64,
    /// Modification time when hashed.
    pub mtime_ns: i64,
    /// Device and inode when scanned: the same size and mtime on another file
    /// (a link swapped in, a file renamed over it) is a change.
    pub identity: (u64, u64),
    /// The piece tree.
    pub outboard: Arc<Outboard>,
    /// Why it is shared.
    pub origin: ShareOrigin,
}

/// Why a file is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareOrigin {
    /// It lies in a shared folder.
    Folder,
    /// This peer downloaded it.
    Download,
}

impl SharedFile {
    /// The file's id.
    pub fn id(&self) -> FileId {
        self.outboard.id()
    }

    /// True if `meta` (of this file on disk, never following a link) is still
    /// the regular file it was hashed as: same device and inode, size and mtime.
    pub fn is_unchanged(&self, meta: &std::fs::Metadata) -> bool {
        meta.is_file()
            && meta.len() == self.size
            && mtime_ns(meta) == self.mtime_ns
            && file_identity(meta) == self.identity
    }

    /// Opens the file for reading without following a link, and only if the
    /// opened file is still the one hashed (checked on the open handle).
    pub fn open_unchanged(&self) -> std::io::Result<std::fs::File> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW);
        }
        let file = options.open(&self.path)?;
        match self.is_unchanged(&file.metadata()?) {
            true => Ok(file),
            false => Err(std::io::Error::other(
                "the file changed since it was hashed; it is no longer shared under this id",
            )),
        }
    }

    /// The entry peers see when they browse.
    pub fn entry(&self) -> SharedFileEntry {
        SharedFileEntry {
            name: self.name.clone(),
            size: self.size,
            id: self.id(),
        }
    }
}

#[derive(Default)]
struct Catalogue {
    by_id: HashMap<FileId, SharedFile>,
    sorted: Vec<FileId>,
    /// For each name word, the positions in `sorted` of the files holding it, ascending.
    by_word: HashMap<String, Vec<usize>>,
}

impl Catalogue {
    fn new(by_id: HashMap<FileId, SharedFile>) -> Self {
        let mut sorted: Vec<FileId> = by_id.keys().copied().collect();
        sorted.sort_by(|a, b| by_id[a].name.cmp(&by_id[b].name).then(a.cmp(b)));
        let mut by_word: HashMap<String, Vec<usize>> = HashMap::new();
        for (at, id) in sorted.iter().enumerate() {
            for word in name_words(&by_id[id].name) {
                by_word.entry(word).or_default().push(at);
            }
        }
        Self {
            by_id,
            sorted,
            by_word,
        }
    }

    /// Positions in `sorted` of the files whose names hold every word, ascending.
    fn holding_words(&self, words: &BTreeSet<String>) -> Vec<usize> {
        let mut lists: Vec<&Vec<usize>> = Vec::with_capacity(words.len());
        for word in words {
            match self.by_word.get(word) {
                Some(list) => lists.push(list),
                None => return Vec::new(),
            }
        }
        lists.sort_by_key(|l| l.len());
        let Some((rarest, others)) = lists.split_first() else {
            return Vec::new();
        };
        rarest
            .iter()
            .copied()
            .filter(|at| others.iter().all(|l| l.binary_search(at).is_ok()))
            .collect()
    }
}

/// The shared files, readable from any task.
#[derive(Clone)]
pub struct SharedFiles {
    roots: Arc<RwLock<Vec<PathBuf>>>,
    piece_len: u64,
    catalogue: Arc<RwLock<Catalogue>>,
    store: Store,
    rescan_lock: Arc<Mutex<()>>,
    generation: Arc<watch::Sender<u64>>,
    online: Arc<watch::Sender<bool>>,
    watcher: Arc<std::sync::Mutex<Option<watcher::FolderWatcher>>>,
    bus: EventBus,
    /// What the last rescan could not read (see [`SharedFiles::problems`]).
    problems: Arc<RwLock<Vec<ShareProblem>>>,
    /// True while a rescan is scheduled to retry the unreadable folders.
    retry_pending: Arc<std::sync::atomic::AtomicBool>,
    /// Retries in a row that still found problems (the wait doubles with each).
    retries: Arc<std::sync::atomic::AtomicU32>,
}

/// How long after a rescan that could not read part of the shares it is
/// first tried again; the wait doubles up to [`PROBLEM_RETRY_MAX`].
const PROBLEM_RETRY: std::time::Duration = std::time::Duration::from_secs(3);
const PROBLEM_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// What a rescan found and did.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct RescanReport {
    /// Files shared after the rescan.
    pub shared_files: usize,
    /// Files that had to be hashed (new or changed); the rest came from the cache.
    pub hashed: usize,
}

impl SharedFiles {
    /// Nothing shared yet from `roots`; call [`SharedFiles::rescan`] to fill it.
    /// Hashing progress is pushed on `bus`.
    pub fn new(roots: Vec<PathBuf>, piece_len: u64, store: Store, bus: EventBus) -> Self {
        Self {
            roots: Arc::new(RwLock::new(roots)),
            piece_len,
            catalogue: Arc::default(),
            store,
            rescan_lock: Arc::default(),
            generation: Arc::new(watch::Sender::new(0)),
            online: Arc::new(watch::Sender::new(true)),
            watcher: Arc::default(),
            bus,
            problems: Arc::default(),
            retry_pending: Arc::default(),
            retries: Arc::default(),
        }
    }

    /// True while the files are offered to the network.
    pub fn is_online(&self) -> bool {
        *self.online.borrow()
    }

    /// A receiver that sees every switch between online and offline.
    pub fn subscribe_online(&self) -> watch::Receiver<bool> {
        self.online.subscribe()
    }

    /// Offers the files to the network (`true`) or withdraws them all (`false`).
    pub fn set_online(&self, online: bool) {
        if self.online.send_replace(online) != online {
            tracing::info!(online, "sharing switched");
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// The files offered to the network: every shared file while online, none while offline.
    pub fn published(&self) -> Vec<SharedFile> {
        match self.is_online() {
            true => self.files(),
            false => Vec::new(),
        }
    }

    /// A receiver that sees a new generation after every change to the shared files.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Every shared file (a snapshot).
    pub fn files(&self) -> Vec<SharedFile> {
        let cat = self.catalogue.read().expect("share index lock");
        cat.sorted
            .iter()
            .filter_map(|id| cat.by_id.get(id).cloned())
            .collect()
    }

    /// Shares a finished download at `path`, already verified against `outboard`.
    ///
    /// Its hash goes into the cache, so neither this call nor a later rescan reads it again.
    pub async fn add_downloaded(
        &self,
        path: &Path,
        outboard: Arc<Outboard>,
    ) -> Result<(), NodeError> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| NodeError::io(path, e))?;
        let file = ScannedFile {
            path: path.to_path_buf(),
            name: downloaded_name(path),
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            identity: file_identity(&meta),
        };
        self.store.put_hash(&file, &outboard).await?;
        let _one_at_a_time = self.rescan_lock.lock().await;
        let mut files = self.files();
        files.push(shared(file, outboard, ShareOrigin::Download));
        self.replace(files);
        Ok(())
    }

    /// The shared folders.
    pub fn roots(&self) -> Vec<PathBuf> {
        self.roots.read().expect("share roots lock").clone()
    }

    /// How many files are shared.
    pub fn len(&self) -> usize {
        self.catalogue
            .read()
            .expect("share index lock")
            .sorted
            .len()
    }

    /// True when nothing is shared.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shared file named by `what`: its id, its shared name, or its absolute path.
    pub fn find(&self, what: &str) -> Result<SharedFile, NodeError> {
        if let Ok(id) = what.parse::<FileId>() {
            return self
                .get(&id)
                .ok_or_else(|| NodeError::NotFound(format!("no shared file has the id {id}")));
        }
        let path = Path::new(what);
        let canonical = path
            .is_absolute()
            .then(|| std::fs::canonicalize(path).ok())
            .flatten();
        let cat = self.catalogue.read().expect("share index lock");
        let mut found: Vec<&SharedFile> = cat
            .by_id
            .values()
            .filter(|f| match &canonical {
                Some(p) => f.path == *p,
                None => f.name == what || f.name.rsplit('/').next() == Some(what),
            })
            .collect();
        found.sort_by_key(|f| f.id());
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(NodeError::NotFound(format!(
                "no shared file is named {what:?}; `peershare shares` lists them"
            ))),
            many => Err(NodeError::BadRequest(format!(
                "{} shared files are named {what:?}; name one by id: {}",
                many.len(),
                many.iter()
                    .map(|f| format!("{} = {}", f.name, f.id()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The file with this id, if shared.
    pub fn get(&self, id: &FileId) -> Option<SharedFile> {
        self.catalogue
            .read()
            .expect("share index lock")
            .by_id
            .get(id)
            .cloned()
    }

    /// One page of entries, sorted by name, and the total count; with `words`,
    /// only the files whose names hold every one of them (offset and total
    /// count within those).
    ///
    /// The page also stops once its names reach [`MAX_BROWSE_PAGE_NAME_BYTES`]
    /// (always carrying at least one entry), so a share of very long names can
    /// never make a response larger than a peer accepts.
    pub fn page(
        &self,
        offset: u64,
        limit: u32,
        words: &BTreeSet<String>,
    ) -> (Vec<SharedFileEntry>, u64) {
        let cat = self.catalogue.read().expect("share index lock");
        let matching: Option<Vec<usize>> = (!words.is_empty()).then(|| cat.holding_words(words));
        let positions: Box<dyn Iterator<Item = usize>> = match &matching {
            Some(m) => Box::new(m.iter().copied()),
            None => Box::new(0..cat.sorted.len()),
        };
        let total = matching.as_ref().map_or(cat.sorted.len(), Vec::len) as u64;
        let mut name_bytes = 0;
        let entries = positions
            .skip(offset.min(usize::MAX as u64) as usize)
            .take(limit as usize)
            .filter_map(|at| cat.by_id.get(&cat.sorted[at]).map(SharedFile::entry))
            .take_while(|e| {
                let fits =
                    name_bytes == 0 || name_bytes + e.name.len() <= MAX_BROWSE_PAGE_NAME_BYTES;
                name_bytes += e.name.len();
                fits
            })
            .collect();
        (entries, total)
    }

    /// The answer to a peer browsing this one: a page of the files whose
    /// names hold the request's words (at most [`MAX_BROWSE_WORDS`] words, at
    /// most [`MAX_BROWSE_PAGE`] entries); nothing while offline.
    pub fn browse_answer(&self, request: &BrowseRequest) -> BrowseResponse {
        if !self.is_online() {
            return BrowseResponse {
                files: Vec::new(),
                total: 0,
            };
        }
        let words = request
            .words
            .iter()
            .take(MAX_BROWSE_WORDS)
            .flat_map(|w| name_words(w))
            .collect();
        let limit = request.limit.min(MAX_BROWSE_PAGE);
        let (files, total) = self.page(request.offset, limit, &words);
        BrowseResponse { files, total }
    }

    /// The shared folders (or parts of them) the last rescan could not read.
    /// Their files stay shared as they were last seen, and rescans retry them.
    pub fn problems(&self) -> Vec<ShareProblem> {
        self.problems.read().expect("share problems lock").clone()
    }

    /// The shared file `id`, if it is still on disk unchanged since it was hashed.
    ///
    /// A link is never followed: a file swapped for a link (or for another
    /// file with the same size and mtime) counts as changed, is not served,
    /// and a rescan is scheduled to share what is there now.
    pub fn get_unchanged(&self, id: &FileId) -> Option<SharedFile> {
        let file = self.get(id)?;
        let meta = std::fs::symlink_metadata(&file.path);
        if !meta.is_ok_and(|m| file.is_unchanged(&m)) {
            tracing::warn!(name = %file.name, "shared file changed since it was hashed; not serving the old id");
            self.rescan_soon();
            return None;
        }
        Some(file)
    }

    /// Schedules a rescan (from any thread inside the runtime; elsewhere, nothing).
    pub fn rescan_soon(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let again = self.clone();
        runtime.spawn(async move {
            if let Err(e) = again.rescan().await {
                tracing::warn!("rescan after a changed file failed: {e}");
            }
        });
    }

    /// Walks the shared folders, hashing only new or changed files.
    pub async fn rescan(&self) -> Result<RescanReport, NodeError> {
        let _one_at_a_time = self.rescan_lock.lock().await;
        let roots = self.roots();
        let downloaded = self.store.finished_download_paths().await?;
        let (scanned, problems) = tokio::task::spawn_blocking(move || {
            let mut files: Vec<_> = downloaded
                .iter()
                .filter_map(|p| scan_downloaded(p))
                .map(|f| (f, ShareOrigin::Download))
                .collect();
            let seen: std::collections::HashSet<PathBuf> =
                files.iter().map(|(f, _)| f.path.clone()).collect();
            let mut problems: Vec<(PathBuf, ScanProblem)> = Vec::new();
            for root in &roots {
                let scan = scan_folder_checked(root);
                files.extend(
                    scan.files
                        .into_iter()
                        .filter(|f| !seen.contains(&f.path))
                        .map(|f| (f, ShareOrigin::Folder)),
                );
                problems.extend(scan.problems.into_iter().map(|p| (root.clone(), p)));
            }
            (files, problems)
        })
        .await
        .map_err(|e| NodeError::Store(e.to_string()))?;
        // What could not be read is not gone: its files stay shared as last seen.
        let kept = self.kept_under(&scanned, &problems);
        self.note_problems(&problems);

        let mut fresh = Vec::with_capacity(scanned.len() + kept.len());
        fresh.extend(kept);
        let mut to_hash = Vec::new();
        // Where a file seen before is another file now (a new inode with the
        // same size and mtime), the cached hash is not its hash.
        let known: HashMap<PathBuf, (u64, u64)> = {
            let cat = self.catalogue.read().expect("share index lock");
            cat.by_id
                .values()
                .map(|f| (f.path.clone(), f.identity))
                .collect()
        };
        for (file, origin) in scanned {
            let key = file.path.to_string_lossy().into_owned();
            let same_file = known.get(&file.path).is_none_or(|i| *i == file.identity);
            match self.store.cached_hash(&key).await? {
                // A download keeps the piece size its sharer chose; a folder file uses ours.
                Some(c)
                    if same_file
                        && c.identity.is_none_or(|i| i == file.identity)
                        && c.size == file.size
                        && c.mtime_ns == file.mtime_ns
                        && (origin == ShareOrigin::Download
                            || c.outboard.layout().piece_len() == self.piece_len) =>
                {
                    if c.identity.is_none() {
                        self.store.note_hash_identity(&file).await?;
                    }
                    fresh.push(shared(file, c.outboard, origin))
                }
                _ => to_hash.push((file, origin)),
            }
        }
        let hashed = hashing::hash_all(to_hash, self.piece_len, &self.bus).await?;
        let hashed_count = hashed.len();
        for ((file, origin), outboard) in hashed {
            self.store.put_hash(&file, &outboard).await?;
            fresh.push(shared(file, outboard, origin));
        }
        let keep: Vec<String> = fresh
            .iter()
            .map(|f| f.path.to_string_lossy().into_owned())
            .collect();
        self.store.prune_hashes(&keep).await?;
        let count = self.replace(fresh);
        tracing::info!(files = count, hashed = hashed_count, "share rescanned");
        Ok(RescanReport {
            shared_files: count,
            hashed: hashed_count,
        })
    }

    /// The folder files shared now that lie below a place the scan could not
    /// read and that the scan did not find again.
    fn kept_under(
        &self,
        scanned: &[(ScannedFile, ShareOrigin)],
        problems: &[(PathBuf, ScanProblem)],
    ) -> Vec<SharedFile> {
        if problems.is_empty() {
            return Vec::new();
        }
        let found: std::collections::HashSet<&Path> =
            scanned.iter().map(|(f, _)| f.path.as_path()).collect();
        let cat = self.catalogue.read().expect("share index lock");
        cat.by_id
            .values()
            .filter(|f| f.origin == ShareOrigin::Folder && !found.contains(f.path.as_path()))
            .filter(|f| problems.iter().any(|(_, p)| f.path.starts_with(&p.path)))
            .cloned()
            .collect()
    }

    /// Records what a rescan could not read, warns once per new problem, and
    /// schedules a retry while any remain; a folder that reads again is watched afresh.
    fn note_problems(&self, problems: &[(PathBuf, ScanProblem)]) {
        let now: Vec<ShareProblem> = problems
            .iter()
            .map(|(root, p)| ShareProblem {
                folder: root.display().to_string(),
                message: format!("{}: {}", p.path.display(), p.message),
            })
            .collect();
        let before = std::mem::replace(
            &mut *self.problems.write().expect("share problems lock"),
            now.clone(),
        );
        for p in now.iter().filter(|p| !before.contains(p)) {
            tracing::warn!(
                folder = %p.folder,
                "cannot read a shared folder ({}); its files stay shared as last seen, retrying",
                p.message
            );
        }
        let roots = self.roots();
        for healed in before
            .iter()
            .filter(|b| !now.iter().any(|p| p.folder == b.folder))
        {
            let folder = PathBuf::from(&healed.folder);
            if !roots.contains(&folder) {
                continue;
            }
            tracing::info!(folder = %healed.folder, "shared folder readable again");
            self.unwatch_folder(&folder);
            if let Err(e) = self.watch_folder(&folder) {
                tracing::warn!("not watching {}: {e}", folder.display());
            }
        }
        use std::sync::atomic::Ordering;
        if now.is_empty() {
            self.retries.store(0, Ordering::SeqCst);
        } else if !self.retry_pending.swap(true, Ordering::SeqCst) {
            let tries = self.retries.fetch_add(1, Ordering::SeqCst).min(10);
            let wait = (PROBLEM_RETRY * 2u32.pow(tries)).min(PROBLEM_RETRY_MAX);
            let again = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                again.retry_pending.store(false, Ordering::SeqCst);
                if let Err(e) = again.rescan().await {
                    tracing::warn!("rescan of unreadable shared folders failed: {e}");
                }
            });
        }
    }

    fn replace(&self, files: Vec<SharedFile>) -> usize {
        let mut by_id = HashMap::with_capacity(files.len());
        for f in files {
            by_id.entry(f.id()).or_insert(f);
        }
        let catalogue = Catalogue::new(by_id);
        let count = catalogue.sorted.len();
        *self.catalogue.write().expect("share index lock") = catalogue;
        self.generation.send_modify(|g| *g += 1);
        count
    }
}

fn shared(
    file: ScannedFile,
    outboard: impl Into<Arc<Outboard>>,
    origin: ShareOrigin,
) -> SharedFile {
    SharedFile {
        path: file.path,
        name: file.name,
        size: file.size,
        mtime_ns: file.mtime_ns,
        identity: file.identity,
        outboard: outboard.into(),
        origin,
    }
}

/// The name peers see for a downloaded file: its file name.
fn downloaded_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A finished download still on disk as a regular file (not replaced by a link).
fn scan_downloaded(path: &Path) -> Option<ScannedFile> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.is_file().then(|| ScannedFile {
        path: path.to_path_buf(),
        name: downloaded_name(path),
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
        identity: file_identity(&meta),
    })
}

/// Hashes a scanned file, giving up if it changed since the scan or while being read.
fn hash_stable(file: &ScannedFile, piece_len: u64) -> Option<Outboard> {
    let path: &Path = &file.path;
    let outboard = Outboard::hash_file(path, piece_len)
        .map_err(|e| tracing::warn!(path = %path.display(), "cannot hash: {e}"))
        .ok()?;
    let after = std::fs::symlink_metadata(path).ok()?;
    let unchanged = after.is_file()
        && mtime_ns(&after) == file.mtime_ns
        && file_identity(&after) == file.identity
        && after.len() == file.size
        && outboard.layout().file_len() == file.size;
    unchanged.then_some(outboard)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn index(share: &Path, db: &Path) -> SharedFiles {
        let store = Store::open(db).await.unwrap();
        SharedFiles::new(vec![share.to_path_buf()], 4096, store, EventBus::new())
    }

    #[tokio::test]
    async fn a_browse_is_answered_by_words_within_the_page_limit_and_not_while_offline() {
        let share = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        for name in ["aula 1.mp4", "aula 2.mp4", "notes.txt"] {
            std::fs::write(share.path().join(name), name.as_bytes()).unwrap();
        }
        let files = index(share.path(), &data.path().join("peer.db")).await;
        files.rescan().await.unwrap();
        let ask = |words: &[&str], limit| BrowseRequest {
            offset: 0,
            limit,
            words: words.iter().map(|w| w.to_string()).collect(),
        };
        let all = files.browse_answer(&ask(&[], u32::MAX));
        assert_eq!((all.files.len(), all.total), (3, 3));
        let aula = files.browse_answer(&ask(&["AULA"], 1));
        assert_eq!(aula.total, 2, "counted within the words");
        assert_eq!(aula.files.len(), 1, "the page limit holds");
        assert_eq!(aula.files[0].name, "aula 1.mp4");
        files.set_online(false);
        let offline = files.browse_answer(&ask(&[], 10));
        assert_eq!((offline.files.len(), offline.total), (0, 0));
    }

    #[tokio::test]
    async fn restart_reuses_cached_hashes_and_notices_changes() {
        let share = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let db = data.path().join("peer.db");
        std::fs::write(share.path().join("a"), vec![1u8; 10_000]).unwrap();
        std::fs::write(share.path().join("b"), b"bee").unwrap();

        let first = index(share.path(), &db).await;
        let report = first.rescan().await.unwrap();
        assert_eq!((report.shared_files, report.hashed), (2, 2));
        let id_a = FileId::from(blake3::hash(&[1u8; 10_000]));
        assert!(first.get(&id_a).is_some());

        // A new process over the same database: nothing is hashed again.
        let second = index(share.path(), &db).await;
        let report = second.rescan().await.unwrap();
        assert_eq!((report.shared_files, report.hashed), (2, 0));
        assert_eq!(second.get(&id_a).unwrap().outboard.id(), id_a);

        // A changed file and a removed one are noticed.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(share.path().join("a"), vec![2u8; 10_000]).unwrap();
        std::fs::remove_file(share.path().join("b")).unwrap();
        let report = second.rescan().await.unwrap();
        assert_eq!((report.shared_files, report.hashed), (1, 1));
        assert!(
            second.get(&id_a).is_none(),
            "the old id is no longer shared"
        );
        assert!(second
            .get(&FileId::from(blake3::hash(&[2u8; 10_000])))
            .is_some());
    }

    /// A file swapped while the daemon was stopped for another with the same
    /// size and mtime (a new inode) is hashed again, not served under the old id.
    #[tokio::test]
    async fn a_file_swapped_while_stopped_is_hashed_again() {
        let share = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let db = data.path().join("peer.db");
        let path = share.path().join("a");
        std::fs::write(&path, vec![1u8; 10_000]).unwrap();
        let first = index(share.path(), &db).await;
        assert_eq!(first.rescan().await.unwrap().hashed, 1);
        drop(first);

        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let other = share.path().join("a.new");
        std::fs::write(&other, vec![2u8; 10_000]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(&other, &path).unwrap();

        let second = index(share.path(), &db).await;
        assert_eq!(second.rescan().await.unwrap().hashed, 1, "hashed again");
        let swapped = FileId::from(blake3::hash(&[2u8; 10_000]));
        assert!(second.get(&swapped).is_some());
        assert!(second
            .get(&FileId::from(blake3::hash(&[1u8; 10_000])))
            .is_none());
    }

    #[tokio::test]
    async fn pages_of_long_names_stay_under_the_byte_cap_and_cover_everything() {
        let share = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        // 15 nested folders of 250-byte names: each shared name is about 3.8 KB,
        // near the longest path the OS allows, so 700 of them exceed one page's cap.
        let long = "d".repeat(250);
        let mut dir = share.path().to_path_buf();
        for _ in 0..15 {
            dir.push(&long);
        }
        std::fs::create_dir_all(&dir).unwrap();
        let files = 700;
        for n in 0..files {
            std::fs::write(dir.join(format!("{n:03}")), n.to_string()).unwrap();
        }
        let index = index(share.path(), &data.path().join("peer.db")).await;
        index.rescan().await.unwrap();
        let (mut seen, mut pages) = (0u64, 0);
        loop {
            let (page, total) = index.page(seen, 1000, &BTreeSet::new());
            assert_eq!(total, files);
            let bytes: usize = page.iter().map(|e| e.name.len()).sum();
            assert!(
                bytes <= MAX_BROWSE_PAGE_NAME_BYTES,
                "a page carried {bytes} bytes of names"
            );
            if page.is_empty() {
                break;
            }
            seen += page.len() as u64;
            pages += 1;
        }
        assert_eq!(seen, files, "paging reaches every file");
        assert!(pages > 1, "the byte cap split the share into several pages");
    }

    #[tokio::test]
    async fn a_page_filtered_by_words_holds_only_names_with_every_word() {
        let share = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        for (n, name) in ["Aula 1.mp4", "aula 2.MP4", "aula 2 notes.txt", "other.mp4"]
            .iter()
            .enumerate()
        {
            std::fs::write(share.path().join(name), n.to_string()).unwrap();
        }
        let index = index(share.path(), &data.path().join("peer.db")).await;
        index.rescan().await.unwrap();
        let words = |q: &str| name_words(q);
        let names = |offset, limit, q: &str| {
            let (page, total) = index.page(offset, limit, &words(q));
            (page.into_iter().map(|e| e.name).collect::<Vec<_>>(), total)
        };
        assert_eq!(
            names(0, 10, "mp4 aula"),
            (vec!["Aula 1.mp4".to_string(), "aula 2.MP4".to_string()], 2)
        );
        assert_eq!(
            names(1, 10, "AULA mp4"),
            (vec!["aula 2.MP4".to_string()], 2)
        );
        assert_eq!(names(0, 1, "2"), (vec!["aula 2 notes.txt".to_string()], 2));
        assert_eq!(names(0, 10, "aula missing"), (vec![], 0));
        assert_eq!(
            index.page(0, 10, &BTreeSet::new()).1,
            4,
            "no words: every file"
        );
    }

    #[tokio::test]
    async fn a_file_edited_in_place_is_not_opened_under_its_old_id() {
        let share = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        std::fs::write(share.path().join("a"), vec![5u8; 5000]).unwrap();
        let index = index(share.path(), &data.path().join("peer.db")).await;
        index.rescan().await.unwrap();
        let id = FileId::from(blake3::hash(&[5u8; 5000]));
        assert!(index.get_unchanged(&id).is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(share.path().join("a"), vec![6u8; 5000]).unwrap();
        assert!(index.get_unchanged(&id).is_none());
    }

    #[tokio::test]
    async fn an_unreadable_folder_keeps_its_files_shared_and_is_reported_until_it_reads_again() {
        let dir = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let share = dir.path().join("usb");
        std::fs::create_dir(&share).unwrap();
        std::fs::write(share.join("a"), vec![1u8; 3000]).unwrap();
        std::fs::write(share.join("b"), vec![2u8; 3000]).unwrap();
        let index = index(&share, &data.path().join("peer.db")).await;
        assert_eq!(index.rescan().await.unwrap().shared_files, 2);
        assert!(index.problems().is_empty());
        let generation = *index.subscribe().borrow();

        // The disk is unmounted: the folder is gone, not empty.
        std::fs::rename(&share, dir.path().join("elsewhere")).unwrap();
        let report = index.rescan().await.unwrap();
        assert_eq!(report.shared_files, 2, "the files stay shared as last seen");
        assert_eq!(index.len(), 2);
        let problems = index.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].folder, share.display().to_string());
        assert!(*index.subscribe().borrow() > generation);
        assert!(index
            .get(&FileId::from(blake3::hash(&[1u8; 3000])))
            .is_some());

        // A file in its place is no folder either.
        std::fs::write(&share, b"not a folder").unwrap();
        assert_eq!(index.rescan().await.unwrap().shared_files, 2);
        assert_eq!(index.problems().len(), 1);
        std::fs::remove_file(&share).unwrap();

        // Back again: nothing to report, and a real deletion counts again.
        std::fs::rename(dir.path().join("elsewhere"), &share).unwrap();
        std::fs::remove_file(share.join("b")).unwrap();
        assert_eq!(index.rescan().await.unwrap().shared_files, 1);
        assert!(index.problems().is_empty());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_file_swapped_for_a_link_or_another_file_of_the_same_size_and_mtime_is_not_served() {
        let share = tempfile::tempdir().unwrap();
        let private = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let shared_path = share.path().join("a");
        let secret = private.path().join("secret");
        std::fs::write(&shared_path, vec![5u8; 5000]).unwrap();
        std::fs::write(&secret, vec![9u8; 5000]).unwrap();
        let mtime = std::fs::metadata(&shared_path).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&secret)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let index = index(share.path(), &data.path().join("peer.db")).await;
        index.rescan().await.unwrap();
        let id = FileId::from(blake3::hash(&[5u8; 5000]));
        let file = index.get_unchanged(&id).expect("served while unchanged");
        assert!(file.open_unchanged().is_ok());

        // A link to a private file of the same size and mtime. (The original
        // is kept elsewhere, so its inode number is not reused below.)
        std::fs::rename(&shared_path, private.path().join("original")).unwrap();
        std::os::unix::fs::symlink(&secret, &shared_path).unwrap();
        assert!(index.get_unchanged(&id).is_none(), "a link is not followed");
        assert!(file.open_unchanged().is_err(), "nor opened");

        // Another file of the same size and mtime renamed over it.
        std::fs::remove_file(&shared_path).unwrap();
        let copy = share.path().join(".copy");
        std::fs::copy(&secret, &copy).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(&copy, &shared_path).unwrap();
        assert!(index.get_unchanged(&id).is_none(), "another inode");
        let err = file.open_unchanged().unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
    }
}
