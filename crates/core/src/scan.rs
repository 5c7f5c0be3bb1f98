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
}

/// Lists every regular file under `root`, skipping links and partial downloads.
pub fn scan_folder(root: &Path) -> Vec<ScannedFile> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name() != PARTIAL_DIR)
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let rel = e.path().strip_prefix(root).ok()?;
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            Some(ScannedFile {
                path: e.path().to_path_buf(),
                name,
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
            })
        })
        .collect()
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
}
