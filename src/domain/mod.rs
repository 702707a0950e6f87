//! The rules, as plain Rust with no I/O: values, valid times, keys, and the
//! claim and story life cycles (`decide` / `evolve`).

pub mod claim;
pub mod erasable;
pub mod erasure;
pub mod error;
pub mod fact;
pub mod principal;
pub mod story;
pub mod text;
pub mod valid_time;
pub mod value;

#[cfg(test)]
mod lifecycle;
