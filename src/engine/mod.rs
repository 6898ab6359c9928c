//! Executes workflows step by step with a crash-safe journal.

pub mod bind;
pub mod events;
pub mod executor;
pub mod files;
pub mod fleet;
pub mod interrupt;
pub mod journal;
pub mod lock;
pub mod recorder;
pub mod resume;
pub mod rollback;
pub mod store;
