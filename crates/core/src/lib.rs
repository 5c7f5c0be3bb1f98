//! peershare-core: the parts of peershare that need no network and no runtime.
//!
//! It owns content ids ([`FileId`]), the BLAKE3 piece tree that lets a receiver
//! verify every piece against a file's id ([`outboard`]), the rules that turn a
//! name from the network into a safe file name ([`file_name`]), walking and
//! hashing shared folders ([`scan`]), the words and DHT keys of names
//! ([`words`]), share links ([`link`]) and the types and codecs of the wire
//! protocols ([`wire`]).
//!
//! It must never open a socket, start an async runtime or trust a name from
//! the network as a path. The one exception sits behind the `serve`
//! feature, which only the index and the node turn on: `conn_limit`, the
//! connection caps and idle timeouts every HTTP server shares, wrapping
//! listeners that others open, and `api_schema`, how both HTTP APIs read
//! JSON bodies and complete their OpenAPI documents.

#[cfg(feature = "serve")]
pub mod api_schema;
#[cfg(feature = "serve")]
pub mod conn_limit;
pub mod db_file;
pub mod file_name;
pub mod id;
pub mod link;
pub mod outboard;
pub mod piece_set;
pub mod scan;
pub mod wire;
pub mod words;

pub use id::FileId;
pub use outboard::{Outboard, PieceLayout, DEFAULT_PIECE_LEN};
pub use piece_set::PieceSet;
