//! Azure actions (`azure.*`): each one a step of a repair, built on [`crate::azure`].

use std::sync::Arc;

use super::Action;

pub fn all() -> Vec<Arc<dyn Action>> {
    Vec::new()
}
