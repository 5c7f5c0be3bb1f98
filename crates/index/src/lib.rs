//! peershare-index: the index server as a library.
//!
//! It owns the REST API under `/api/v1` ([`api`] wires the routes,
//! [`state`] is what handlers reach, [`extract`] turns bad requests into
//! JSON errors) and everything behind it: accounts and login tokens
//! ([`accounts`], [`auth`]), peers joining, sending heartbeats and leaving
//! ([`peers`]; heartbeats share commits through [`heartbeats`]), the files they publish ([`files`]), search over the in-memory catalogue of online files ([`search`]), kept in step across index processes on one PostgreSQL ([`cluster`]), the
//! users list, browsing and users' peers with their messaging keys
//! ([`users`]), mailboxes of sealed letters ([`mail`]), the audit log ([`audit`], read by
//! [`admin`]s), admission control under load ([`gate`]), allocator settings
//! for a long-running process ([`memory`]), its OpenAPI document
//! ([`openapi`]), the public status page and figures ([`status_page`]), HTTPS ([`tls`]) and the SQLite store ([`store`]). [`start`] runs it on a socket and returns a handle.
//!
//! It must never import the peer (`peershare-node`): peers are HTTP clients
//! like any other. It never trusts a client's claim without checking it: a
//! peer id is accepted only with a signature by its key.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod error;
pub mod extract;
pub mod files;
pub mod gate;
pub mod heartbeats;
pub mod mail;
pub mod memory;
pub mod openapi;
pub mod peers;
pub mod search;
pub mod server;
pub mod state;
pub mod status_page;
pub mod store;
pub mod tls;
pub mod users;
pub mod validate;

pub use config::IndexConfig;
pub use error::{ApiError, ErrorBody, IndexError};
pub use server::{start, RunningIndex, ShutdownHandle};
