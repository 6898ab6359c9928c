//! Executes workflows step by step with a crash-safe journal.
