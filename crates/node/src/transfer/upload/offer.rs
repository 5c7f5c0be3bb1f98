//! What a grant offers: a shared file, whole and unchanged since it was
//! hashed, or a download in progress whose verified pieces are served
//! (a partial source). Uploads read either through this one shape; it
//! decides which pieces may be sent, never how.

use std::path::Path;
use std::sync::Arc;

use peershare_core::{FileId, Outboard, PieceSet};

use crate::share::SharedFile;
use crate::transfer::partial::PartialFile;

/// A file this peer can serve pieces of.
#[derive(Clone)]
pub enum Offer {
    /// A shared file: every piece, while it is unchanged on disk.
    Whole(SharedFile),
    /// A download in progress: the pieces verified so far, while it runs.
    Partial(Arc<PartialFile>),
}

impl Offer {
    /// The file's id.
    pub fn id(&self) -> FileId {
        self.outboard().id()
    }

    /// The name peers see.
    pub fn name(&self) -> &str {
        match self {
            Self::Whole(file) => &file.name,
            Self::Partial(file) => &file.name,
        }
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.outboard().layout().file_len()
    }

    /// Its piece tree.
    pub fn outboard(&self) -> &Arc<Outboard> {
        match self {
            Self::Whole(file) => &file.outboard,
            Self::Partial(file) => &file.outboard,
        }
    }

    /// Where its bytes are on this machine.
    pub fn path(&self) -> &Path {
        match self {
            Self::Whole(file) => &file.path,
            Self::Partial(file) => &file.path,
        }
    }

    /// The pieces that may be served now (and, for a partial file, the
    /// cursor from which later ones are asked).
    pub fn have(&self) -> (PieceSet, usize) {
        match self {
            Self::Whole(file) => (PieceSet::full(file.outboard.layout().piece_count()), 0),
            Self::Partial(file) => file.snapshot(),
        }
    }
}
