//! factlog: an event-sourced fact-tracking backend for newsrooms.
//!
//! A write goes `api` (HTTP only) → `service` (load, fold, decide, append) →
//! `domain` (the rules, no I/O) → `store` (the append-only, hash-chained
//! log); `projections` (read models) follow the log, and reads come back out
//! through `service::reads` and `api`; `console` (the editors' web pages) is
//! another client of `service`, as `api` is. Beside them: `auth` (tokens), `db`
//! (finding the database, migrations, the private cluster), `commands` (the
//! subcommands), `config`, `telemetry` and `progress`. `tests/it/tidy.rs`
//! keeps the layers apart. See ARCHITECTURE.md for the map and the
//! invariants.

pub mod api;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod merkle;
pub mod progress;
pub mod projections;
pub mod service;
pub mod store;
pub mod telemetry;
