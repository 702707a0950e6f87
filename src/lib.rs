//! factlog: an event-sourced fact-tracking backend for newsrooms.
//!
//! A claim's path reads top to bottom: `api` (HTTP only) → `service` (load,
//! decide, append) → `domain` (the rules, pure) → `store` (the append-only,
//! hash-chained log) → `projections` (read models) → back out through `api`'s
//! reads. `tests/it/tidy.rs` keeps the layers apart. See ARCHITECTURE.md for
//! the map and the invariants.

pub mod api;
pub mod auth;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod progress;
pub mod projections;
pub mod service;
pub mod store;
pub mod telemetry;
