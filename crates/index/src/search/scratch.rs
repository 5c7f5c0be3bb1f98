//! The text index's folder: tantivy's memory-mapped directory, minus every
//! flush to disk. The text index is rebuilt from the store at every start,
//! so a crash may lose it whole and nothing is lost; syncing each segment
//! file and the folder on every commit only made joins wait for the disk.
//!
//! It never writes outside its folder: paths come from tantivy (segment
//! file names), joined to the folder as the mapped directory does.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, TerminatingWrite,
    WatchCallback, WatchHandle, WritePtr,
};

/// A mapped directory that never syncs (see the module doc).
#[derive(Clone, Debug)]
pub struct ScratchDirectory {
    root: PathBuf,
    mapped: MmapDirectory,
}

impl ScratchDirectory {
    /// The directory over the existing folder `root`.
    pub fn open(root: &Path) -> Result<Self, tantivy::TantivyError> {
        let mapped = MmapDirectory::open(root)
            .map_err(|e| tantivy::TantivyError::SystemError(e.to_string()))?;
        Ok(Self {
            root: root.to_path_buf(),
            mapped,
        })
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
        self.mapped.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
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
        self.mapped.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        // Written beside, then renamed: readers see the old or the new file.
        let target = self.root.join(path);
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(".writing");
        let beside = target.with_file_name(name);
        std::fs::write(&beside, data)?;
        std::fs::rename(&beside, &target)
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.mapped.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.mapped.watch(watch_callback)
    }
}
