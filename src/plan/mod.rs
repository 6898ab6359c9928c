//! Plans: what a workflow would do, step by step, without changing anything.
