//! The integration suite: one binary, so every test shares one PostgreSQL
//! (a private throw-away cluster unless DATABASE_URL names a server) and each
//! test gets a fresh database of its own.

mod support;

mod api_auth;
mod api_docs;
mod api_writes;
mod auditing;
mod batch_plans;
mod browser;
mod chain_verifier;
mod claim_review;
mod cli;
mod connection_limits;
mod console;
mod console_pages;
mod csv_listings;
mod domain_claim;
mod domain_fact;
mod erasure;
mod exchange;
mod fact_cache;
mod fact_feed;
mod faults;
mod fuzz_parsers;
mod hostile;
mod listing_plans;
mod migrations;
mod projection_runs;
mod read_audit;
mod read_facts;
mod sealed_values;
mod several_processes;
mod signing;
mod standbys;
mod store_append;
mod store_idempotency;
mod store_integrity;
mod store_ordering;
mod store_subscribe;
mod stream_limits;
mod tidy;
mod verifiable_log;
