//! The wire protocols between peers (documented in docs/PROTOCOL.md).
//!
//! [`control`] holds the small request/response messages carried over
//! libp2p (browse, transfer requests); [`data`] holds the binary frames of
//! the bulk data connection that moves tree hashes and pieces; [`message`]
//! holds the sealed envelopes of person-to-person messages, the key cards
//! they are sealed to, and the `/peershare/msg/1` requests that carry them. Every decoder
//! here checks sizes before it allocates and returns an error, never panics,
//! on malformed input.

pub mod control;
pub mod data;
pub mod message;
