//! factlog: an event-sourced fact-tracking backend for newsrooms.
//!
//! The path of a write reads top to bottom: `api` (HTTP only) → `store`
//! (the append-only, hash-chained log) → projections → back out through `api`.
//! See ARCHITECTURE.md for the map and the invariants.

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
