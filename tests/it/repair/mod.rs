//! Integration tests: repair (the Azure layer, the azure.* actions, the fsck script, os-disk-swap).

mod actions;
mod faults;
mod images;
mod script;
mod support;
mod swap;
