//! Adding and removing shared folders while the daemon runs, and keeping
//! those changes across restarts.
//!
//! The folders named at start (flags, config file) are the base; a folder
//! added or removed at run time is recorded in `peer.db` and applied over
//! that base at the next start, so a removed folder stays unshared even if
//! the command line still names it. A folder that holds the daemon's data
//! folder (its key and API token) or lies inside it is never shared.

use std::path::{Path, PathBuf};

use super::{RescanReport, SharedFiles};
use crate::NodeError;

impl SharedFiles {
    /// Shares `folder` (an absolute path to an existing folder) and scans it now.
    pub async fn add_folder(
        &self,
        folder: &Path,
        data_dir: &Path,
    ) -> Result<RescanReport, NodeError> {
        let folder = checked_folder(folder, data_dir)?;
        {
            let mut roots = self.roots.write().expect("share roots lock");
            if roots.contains(&folder) {
                return Err(NodeError::BadRequest(format!(
                    "{} is already shared",
                    folder.display()
                )));
            }
            roots.push(folder.clone());
        }
        self.store.set_folder_shared(&folder, true).await?;
        if let Err(e) = self.watch_folder(&folder) {
            tracing::warn!(
                "not watching {}: {e}; use `peershare rescan`",
                folder.display()
            );
        }
        tracing::info!(folder = %folder.display(), "folder shared");
        self.rescan().await
    }

    /// Stops sharing `folder`; its files are withdrawn at once.
    pub async fn remove_folder(&self, folder: &Path) -> Result<RescanReport, NodeError> {
        let folder = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
        {
            let mut roots = self.roots.write().expect("share roots lock");
            let before = roots.len();
            roots.retain(|r| *r != folder);
            if roots.len() == before {
                return Err(NodeError::NotFound(format!(
                    "{} is not a shared folder; `peershare status` lists them",
                    folder.display()
                )));
            }
        }
        self.store.set_folder_shared(&folder, false).await?;
        self.unwatch_folder(&folder);
        tracing::info!(folder = %folder.display(), "folder no longer shared");
        self.rescan().await
    }
}

/// The folders to share at start: `base` with the changes recorded at run time applied.
pub fn folders_at_start(base: &[PathBuf], recorded: &[(PathBuf, bool)]) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = base
        .iter()
        .filter(|f| !recorded.iter().any(|(r, shared)| r == *f && !shared))
        .cloned()
        .collect();
    for (folder, shared) in recorded {
        if *shared && !folders.contains(folder) && folder.is_dir() {
            folders.push(folder.clone());
        }
    }
    folders
}

/// `folder` made canonical, refused if it is not a folder or overlaps the data folder.
fn checked_folder(folder: &Path, data_dir: &Path) -> Result<PathBuf, NodeError> {
    if !folder.is_absolute() {
        return Err(NodeError::BadRequest(format!(
            "{} is not an absolute path",
            folder.display()
        )));
    }
    let folder = std::fs::canonicalize(folder)
        .map_err(|e| NodeError::BadRequest(format!("cannot share {}: {e}", folder.display())))?;
    if !folder.is_dir() {
        return Err(NodeError::BadRequest(format!(
            "{} is not a folder: share a folder",
            folder.display()
        )));
    }
    let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    if data_dir.starts_with(&folder) || folder.starts_with(&data_dir) {
        return Err(NodeError::BadRequest(format!(
            "{} holds or lies inside the daemon's data folder ({}), which keeps its key and \
             API token: share another folder",
            folder.display(),
            data_dir.display()
        )));
    }
    Ok(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_changes_apply_over_the_folders_named_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        for f in [&a, &b, &c] {
            std::fs::create_dir(f).unwrap();
        }
        let gone = dir.path().join("gone");
        let recorded = vec![(b.clone(), false), (c.clone(), true), (gone, true)];
        assert_eq!(folders_at_start(&[a.clone(), b], &recorded), vec![a, c]);
    }

    #[test]
    fn the_data_folder_is_never_shared() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("inner")).unwrap();
        for bad in [dir.path().to_path_buf(), data.clone(), data.join("inner")] {
            let err = checked_folder(&bad, &data).unwrap_err().to_string();
            assert!(err.contains("data folder"), "{err}");
        }
        let err = checked_folder(Path::new("relative"), &data).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
        let other = dir.path().join("music");
        std::fs::create_dir(&other).unwrap();
        assert!(checked_folder(&other, &data).is_ok());
    }
}
