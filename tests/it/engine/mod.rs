//! Integration tests: engine.

mod plan;
mod validate;
