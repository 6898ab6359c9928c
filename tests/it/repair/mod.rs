//! Integration tests: repair (the Azure layer, the azure.* actions, the fsck script, os-disk-swap).

mod actions;
mod faults;
pub(crate) mod images;
mod layouts;
mod preflight;
mod rescue_vm;
mod script;
pub(crate) mod support;
mod swap;
