//! Integration tests: the ARM emulator, over HTTP, with raw requests and the real
//! azure_mgmt_compute 0.21 client.

mod aks;
mod boot;
mod client;
mod entra;
mod faults;
mod kube;
mod lifecycle;
mod managed;
mod network;
mod persistence;
mod rules;
mod runcommand;
mod scenarios;
mod security;
mod support;
mod surface;
mod wire;
