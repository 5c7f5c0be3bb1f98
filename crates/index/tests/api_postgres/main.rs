//! The index's HTTP API end to end on PostgreSQL: the modules of tests/api,
//! each test with a real index on 127.0.0.1:0 keeping its data in a fresh
//! database of a real PostgreSQL server (one per run of this binary, see
//! tests/postgres/server.rs), real HTTP requests.
//!
//! `shared` is PostgreSQL's own: several indexes on one database, kept in
//! step (a change made through one is searchable on the other, heartbeats
//! through one keep a peer online on the other, one killed with -9 leaves
//! the other serving everything acknowledged).

/// This binary's indexes keep their data in PostgreSQL.
const POSTGRES: bool = true;

#[allow(dead_code)]
#[path = "../api/common.rs"]
mod common;
#[path = "../postgres/server.rs"]
mod postgres;

#[path = "../api/accounts.rs"]
mod accounts;
#[path = "../api/audit.rs"]
mod audit;
#[path = "../api/bad_input.rs"]
mod bad_input;
#[path = "../api/durability.rs"]
mod durability;
#[path = "../api/files.rs"]
mod files;
#[path = "../api/mail.rs"]
mod mail;
#[path = "../api/openapi.rs"]
mod openapi;
#[path = "../api/peers.rs"]
mod peers;
#[path = "../api/search.rs"]
mod search;
mod shared;
#[path = "../api/status.rs"]
mod status;
#[path = "../api/tls.rs"]
mod tls;
#[path = "../api/users.rs"]
mod users;
