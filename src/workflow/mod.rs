//! Workflow documents: parse, analyze, evaluate expressions.
