//! Watching the shared folders: a change anywhere below a shared folder
//! leads to one rescan once a burst of changes has settled (a copy in
//! progress fires thousands of events; `notify-debouncer-full` gathers
//! them). Folders added at run time are watched too; removed ones are not.
//!
//! Reading a file (an upload, hashing) is not a change: access events are
//! ignored, or every rescan would cause the next.

use std::path::Path;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::mpsc;

use super::SharedFiles;
use crate::NodeError;

/// How long the folders must stay quiet before a rescan.
const SETTLE: Duration = Duration::from_millis(700);

impl SharedFiles {
    /// Watches the shared folders (now and added later) and rescans after changes.
    pub fn watch(&self) -> Result<(), NodeError> {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let watcher = new_debouncer(SETTLE, None, move |result: DebounceEventResult| {
            let changed = match result {
                Ok(events) => events.iter().any(|e| !e.event.kind.is_access()),
                Err(errors) => {
                    tracing::warn!("watching the shared folders: {errors:?}; rescanning");
                    true
                }
            };
            if changed {
                // A rescan already waiting covers this change too.
                let _ = tx.try_send(());
            }
        })
        .map_err(|e| NodeError::Watch(e.to_string()))?;
        *self.watcher.lock().expect("watcher lock") = Some(watcher);
        for root in self.roots() {
            self.watch_folder(&root)?;
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

/// The watcher of the shared folders, gathering bursts of changes.
pub type FolderWatcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;
