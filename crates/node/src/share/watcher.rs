//! Watching the shared folders: a change anywhere below a shared folder
//! leads to one rescan once a burst of changes has settled (a copy in
//! progress fires thousands of events; `notify-debouncer-full` gathers
//! them). Folders added at run time are watched too; removed ones are not.
//!
//! Reading a file (an upload, hashing) is not a change: access events are
//! ignored, or every rescan would cause the next.
//!
//! Only what the scan shares is watched: symbolic links are never followed
//! (a link to a big tree, or to `/`, would cost a watch per folder behind it,
//! run into the system's limit and make a write outside the share a reason
//! to rescan), and writes to partial downloads are not changes.

use std::path::Path;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{
    new_debouncer_opt, DebounceEventResult, DebouncedEvent, Debouncer, NoCache,
};
use peershare_core::scan::PARTIAL_DIR;
use tokio::sync::mpsc;

use super::SharedFiles;
use crate::NodeError;

/// How long the folders must stay quiet before a rescan.
const SETTLE: Duration = Duration::from_millis(700);

impl SharedFiles {
    /// Watches the shared folders (now and added later) and rescans after changes.
    pub fn watch(&self) -> Result<(), NodeError> {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let on_events = move |result: DebounceEventResult| {
            let changed = match result {
                Ok(events) => events.iter().any(is_share_change),
                Err(errors) => {
                    tracing::warn!("watching the shared folders: {errors:?}; rescanning");
                    true
                }
            };
            if changed {
                // A rescan already waiting covers this change too.
                let _ = tx.try_send(());
            }
        };
        // Renames need no file-id tracking: any change leads to a whole rescan.
        let config = notify::Config::default().with_follow_symlinks(false);
        let watcher = new_debouncer_opt(SETTLE, None, on_events, NoCache, config)
            .map_err(|e| NodeError::Watch(e.to_string()))?;
        *self.watcher.lock().expect("watcher lock") = Some(watcher);
        for root in self.roots() {
            // One folder that cannot be watched (gone, or past the system's
            // limit on watches) must not leave the others unwatched.
            if let Err(e) = self.watch_folder(&root) {
                tracing::warn!("{e}; run `peershare rescan` after changes there");
            }
        }
        let index = self.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                if let Err(e) = index.rescan().await {
                    tracing::warn!("rescan after a change failed: {e}");
                }
            }
        });
        Ok(())
    }

    /// Stops watching and ends the watching task.
    pub fn stop_watching(&self) {
        self.watcher.lock().expect("watcher lock").take();
    }

    /// Starts watching `folder`, if the folders are watched at all.
    pub(super) fn watch_folder(&self, folder: &Path) -> Result<(), NodeError> {
        let mut watcher = self.watcher.lock().expect("watcher lock");
        let Some(watcher) = watcher.as_mut() else {
            return Ok(());
        };
        watcher
            .watch(folder, RecursiveMode::Recursive)
            .map_err(|e| NodeError::Watch(format!("{}: {e}", folder.display())))
    }

    /// Stops watching `folder`.
    pub(super) fn unwatch_folder(&self, folder: &Path) {
        if let Some(watcher) = self.watcher.lock().expect("watcher lock").as_mut() {
            let _ = watcher.unwatch(folder);
        }
    }
}

/// Whether `event` changes what is shared: not a read, and not only inside
/// the folders where downloads are assembled (the scan skips those).
fn is_share_change(event: &DebouncedEvent) -> bool {
    if event.kind.is_access() {
        return false;
    }
    // An event with no path (the kernel's queue overflowed) may hide anything.
    event.paths.is_empty() || event.paths.iter().any(|p| !in_partial_dir(p))
}

fn in_partial_dir(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == PARTIAL_DIR)
}

/// The watcher of the shared folders, gathering bursts of changes.
pub type FolderWatcher = Debouncer<notify::RecommendedWatcher, NoCache>;

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, DataChange, EventKind, ModifyKind};
    use std::time::Instant;

    fn event(kind: EventKind, paths: &[&str]) -> DebouncedEvent {
        let mut e = notify::Event::new(kind);
        e.paths = paths.iter().map(Into::into).collect();
        DebouncedEvent::new(e, Instant::now())
    }

    #[test]
    fn partial_downloads_and_reads_are_not_changes() {
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let partial = "/s/dl/.peershare-partial/x.part";
        assert!(!is_share_change(&event(write, &[partial])));
        assert!(!is_share_change(&event(
            EventKind::Access(AccessKind::Any),
            &["/s/a"]
        )));
        assert!(is_share_change(&event(write, &["/s/dl/song.mp3"])));
        // The finished file renamed out of the partial folder is a change.
        let rename = EventKind::Create(CreateKind::File);
        assert!(is_share_change(&event(rename, &[partial, "/s/dl/x"])));
        assert!(is_share_change(&event(write, &[])));
    }
}
