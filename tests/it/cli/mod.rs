//! Integration tests: the on-call engineer's CLI (the output contract, the go-ahead, the
//! `--help` examples, prompts and Ctrl-C under a pseudo-terminal, the evidence report).

mod contract;
mod examples;
mod goahead;
mod pty;
mod support;
