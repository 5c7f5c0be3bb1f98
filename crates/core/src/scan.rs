//! Walking shared folders: which regular files are shared, with the size
//! and modification time that decide whether a cached hash still holds.
//!
//! Symbolic links are never followed, so a link inside a share cannot
//! expose a file outside it; the folders where downloads are assembled are
//! skipped. This module lists files; it never hashes them (see
//! [`crate::outboard`]) and never writes anything.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The name of the folder, inside a downloads folder, that holds partial files.
pub const PARTIAL_DIR: &str = ".peershare-partial";

/// One regular file found under a shared folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// The absolute path on this machine (never sent to peers).
    pub path: PathBuf,
    /// The path relative to its shared folder, with `/` separators: the name peers see.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// The device and inode it had when scanned (see [`file_identity`]): a
    /// file swapped for another (or for a link) with the same size and mtime
    /// is told apart by these.
    pub identity: (u64, u64),
}

/// Something a scan could not read: a folder or file below a shared folder
/// (or the shared folder itself) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanProblem {
    /// What could not be read (the shared folder itself when it is missing).
    pub path: PathBuf,
    /// Why, for people.
    pub message: String,
}

/// What a walk of one shared folder found: the files it could read and the
/// places it could not. A caller must not take a file missing below a
/// problem's path as deleted: it may only be unreadable for now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderScan {
    /// The regular files found.
    pub files: Vec<ScannedFile>,
    /// Where the walk failed; empty when the whole folder was read.
    pub problems: Vec<ScanProblem>,
}

/// Lists every regular file under `root`, skipping links and partial downloads.
///
/// Errors are dropped; [`scan_folder_checked`] reports them.
pub fn scan_folder(root: &Path) -> Vec<ScannedFile> {
    scan_folder_checked(root).files
}

/// Lists every regular file under `root`, skipping links and partial
/// downloads, and reports every place it could not read. A `root` that is
/// missing or not a folder is one problem at `root` and no files.
pub fn scan_folder_checked(root: &Path) -> FolderScan {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return FolderScan {
                files: Vec::new(),
                problems: vec![ScanProblem {
                    path: root.to_path_buf(),
                    message: "the shared folder is not a folder any more".into(),
                }],
            }
        }
        Err(e) => {
            return FolderScan {
                files: Vec::new(),
                problems: vec![ScanProblem {
                    path: root.to_path_buf(),
                    message: format!("cannot read the shared folder: {e}"),
                }],
            }
        }
    }
    let mut scan = FolderScan::default();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name() != PARTIAL_DIR);
    for entry in walk {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                scan.problems.push(ScanProblem {
                    path: e.path().unwrap_or(root).to_path_buf(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) => {
                scan.problems.push(ScanProblem {
                    path: entry.path().to_path_buf(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let name = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        scan.files.push(ScannedFile {
            path: entry.path().to_path_buf(),
            name,
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            identity: file_identity(&meta),
        });
    }
    scan
}

/// A file's device and inode numbers ((0, 0) where the system has none).
pub fn file_identity(meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

/// A file's modification time in nanoseconds since the Unix epoch (0 if unknown).
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_nested_files_and_skips_links_and_partials() {
        let share = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(share.path().join("sub/deeper")).unwrap();
        std::fs::create_dir_all(share.path().join(PARTIAL_DIR)).unwrap();
        std::fs::write(share.path().join("a.txt"), b"a").unwrap();
        std::fs::write(share.path().join("sub/deeper/b.bin"), b"bb").unwrap();
        std::fs::write(share.path().join(PARTIAL_DIR).join("x.part"), b"x").unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path().join("secret"), share.path().join("link"))
            .unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path(), share.path().join("linkdir")).unwrap();

        let mut found = scan_folder(share.path());
        found.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<_> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.txt", "sub/deeper/b.bin"]);
        assert_eq!(found[1].size, 2);
        assert!(found[0].mtime_ns > 0);
    }

    #[test]
    fn a_missing_or_replaced_root_is_a_problem_not_an_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("share");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a"), b"a").unwrap();
        let ok = scan_folder_checked(&root);
        assert_eq!((ok.files.len(), ok.problems.len()), (1, 0));

        std::fs::rename(&root, dir.path().join("away")).unwrap();
        let gone = scan_folder_checked(&root);
        assert!(gone.files.is_empty());
        assert_eq!(gone.problems.len(), 1, "{gone:?}");
        assert_eq!(gone.problems[0].path, root);

        std::fs::write(&root, b"now a file").unwrap();
        let file = scan_folder_checked(&root);
        assert!(
            file.files.is_empty(),
            "a file in place of the root is not shared"
        );
        assert_eq!(file.problems.len(), 1, "{file:?}");
    }
}
