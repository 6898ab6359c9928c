//! Executes workflows step by step with a crash-safe journal.

pub mod events;
pub mod journal;
pub mod lock;
pub mod store;
