//! Integration tests: repair (the Azure layer, the azure.* actions, the fsck script, os-disk-swap).

mod images;
mod script;
