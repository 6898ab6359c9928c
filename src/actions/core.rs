//! Generic built-in actions (`core.*`): let the engine be tested and demoed without Azure.

use std::sync::Arc;

use super::Action;

pub fn all() -> Vec<Arc<dyn Action>> {
    Vec::new()
}
