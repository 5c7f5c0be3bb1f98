//! The index's HTTP API end to end: a real server on 127.0.0.1:0, a real
//! SQLite file in a temporary folder, real HTTP requests. The api_postgres
//! tests run these modules again on PostgreSQL.

/// This binary's indexes keep their data in SQLite.
const POSTGRES: bool = false;

mod common;
#[allow(dead_code)]
#[path = "../postgres/server.rs"]
mod postgres;

mod accounts;
mod audit;
mod bad_input;
mod durability;
mod files;
mod mail;
mod openapi;
mod peers;
mod search;
mod status;
mod tls;
mod users;
