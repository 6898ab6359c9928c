//! `rescue` repairs broken Azure VMs by running resumable YAML workflows.
//!
//! The pipeline, one module per stage:
//! - [`workflow`]: read a workflow file, check it, evaluate `${{ }}` expressions;
//! - [`plan`]: turn a checked workflow and its inputs into the ordered list of effects;
//! - [`engine`]: execute a plan step by step, journaling before and after every side effect;
//! - [`actions`]: what a step can do (`core.*`, `azure.*`, `aks.*`), behind one trait;
//! - [`azure`]: the only code that talks to Azure Resource Manager;
//! - [`kubernetes`]: the only code that talks to a cluster's API server (AKS);
//! - [`report`]: shows the engine's events (progress bars, plain lines, JSON);
//! - [`emulator`]: a loopback ARM server on real disk images, for rehearsals and tests;
//! - [`cli`]: flags parsed once into settings, then dispatched.

pub mod actions;
pub mod azure;
pub mod cli;
pub mod emulator;
pub mod engine;
pub mod exit;
pub mod kubernetes;
pub mod plan;
pub mod report;
pub mod shared_state;
pub mod workflow;
