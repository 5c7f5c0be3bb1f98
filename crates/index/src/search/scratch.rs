//! The text index's folder: tantivy's memory-mapped directory, minus every
//! flush to disk, with its small metadata files (the list of segments and
//! the list of files tantivy manages) kept in memory. The text index is
//! rebuilt from the store at every start, so a crash may lose it whole and
//! nothing is lost: syncing each segment file and the folder on every
//! commit only made joins wait for the disk, and writing the metadata
//! beside and renaming it on every new segment file made the file system's
//! inode allocation a tenth of a fill's CPU.
//!
//! It never writes outside its folder: paths come from tantivy (segment
//! file names), joined to the folder as the mapped directory does.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, TerminatingWrite,
    WatchCallback, WatchHandle, WritePtr,
};

/// A mapped directory that never syncs and keeps what tantivy writes
/// whole (its metadata) in memory (see the module doc).
#[derive(Clone, Debug)]
pub struct ScratchDirectory {
    root: PathBuf,
    mapped: MmapDirectory,
    metadata: Arc<Mutex<HashMap<PathBuf, Vec<u8>>>>,
}

impl ScratchDirectory {
    /// The directory over the existing folder `root`.
    pub fn open(root: &Path) -> Result<Self, tantivy::TantivyError> {
        let mapped = MmapDirectory::open(root)
            .map_err(|e| tantivy::TantivyError::SystemError(e.to_string()))?;
        Ok(Self {
            root: root.to_path_buf(),
            mapped,
            metadata: Arc::default(),
        })
    }

    fn metadata(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Vec<u8>>> {
        self.metadata.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A file written through a buffer and closed without a sync.
struct ScratchFile(File);

impl Write for ScratchFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl TerminatingWrite for ScratchFile {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        self.0.flush()
    }
}

impl Directory for ScratchDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.mapped.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        match self.metadata().remove(path) {
            Some(_) => Ok(()),
            None => self.mapped.delete(path),
        }
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        if self.metadata().contains_key(path) {
            return Ok(true);
        }
        self.mapped.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.root.join(path))
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    OpenWriteError::FileAlreadyExists(path.to_path_buf())
                } else {
                    OpenWriteError::wrap_io_error(e, path.to_path_buf())
                }
            })?;
        Ok(BufWriter::new(Box::new(ScratchFile(file))))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.metadata()
            .get(path)
            .cloned()
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_path_buf()))
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        // Replaced whole under the lock: readers see the old or the new.
        self.metadata().insert(path.to_path_buf(), data.to_vec());
        Ok(())
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.mapped.acquire_lock(lock)
    }

    fn watch(&self, _: WatchCallback) -> tantivy::Result<WatchHandle> {
        // The list of segments is never on disk to watch; the text index
        // reloads its reader itself after each commit.
        Ok(WatchHandle::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_stays_in_memory_and_segment_files_on_disk() {
        let folder = tempfile::tempdir().unwrap();
        let directory = ScratchDirectory::open(folder.path()).unwrap();
        let meta = Path::new("meta.json");
        assert!(!directory.exists(meta).unwrap());
        assert!(directory.atomic_read(meta).is_err());
        directory.atomic_write(meta, b"first").unwrap();
        directory.atomic_write(meta, b"second").unwrap();
        assert!(directory.exists(meta).unwrap());
        assert_eq!(directory.atomic_read(meta).unwrap(), b"second");
        // A clone (tantivy clones its directory) sees the same metadata.
        assert_eq!(directory.clone().atomic_read(meta).unwrap(), b"second");

        let mut segment = directory.open_write(Path::new("a.idx")).unwrap();
        segment.write_all(b"postings").unwrap();
        segment.terminate().unwrap();
        let on_disk: Vec<_> = std::fs::read_dir(folder.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(on_disk, ["a.idx"]);
        assert!(
            directory.open_write(Path::new("a.idx")).is_err(),
            "never overwritten"
        );

        directory.delete(meta).unwrap();
        assert!(!directory.exists(meta).unwrap());
        directory.delete(Path::new("a.idx")).unwrap();
        assert!(!folder.path().join("a.idx").exists());
    }
}
