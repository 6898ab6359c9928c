//! The steps' dependency graph: which steps each one needs (`needs:`, or the step above it).
//!
//! `needs` may name only steps above the one that has it. The file's order is then always an
//! order the graph allows, so the journal lists steps in it and a rollback undoes them in the
//! reverse order, which is a reverse topological one: a cycle cannot be written, and a forward
//! `needs` is refused with the cycle it would close, if any.

use std::collections::BTreeSet;

use super::expr::mangle;
use super::model::Workflow;

/// The index of step `id` (ids compare as expressions see them: `-` and `_` alike).
pub fn position(wf: &Workflow, id: &str) -> Option<usize> {
    let id = mangle(id);
    wf.steps.iter().position(|s| mangle(&s.id.value) == id)
}

/// The steps step `i` needs directly: its `needs`, else the step above it. Entries naming no
/// step, or a step not above it, are left out (the analyzer reports them).
pub fn needs(wf: &Workflow, i: usize) -> Vec<usize> {
    match &wf.steps[i].needs {
        None => i.checked_sub(1).into_iter().collect(),
        Some(listed) => {
            let found: BTreeSet<usize> = listed
                .iter()
                .filter_map(|n| position(wf, &n.value))
                .filter(|&j| j < i)
                .collect();
            found.into_iter().collect()
        }
    }
}

/// Every step that must have finished before step `i` starts, directly or through others.
pub fn ancestors(wf: &Workflow, i: usize) -> BTreeSet<usize> {
    let mut found = BTreeSet::new();
    let mut todo = needs(wf, i);
    while let Some(j) = todo.pop() {
        if found.insert(j) {
            todo.extend(needs(wf, j));
        }
    }
    found
}

/// A path of `needs` from step `from` down to step `to` (both included), if there is one:
/// the cycle a forward `needs` from `to` to `from` would close.
pub fn path(wf: &Workflow, from: usize, to: usize) -> Option<Vec<usize>> {
    if from == to {
        return Some(vec![from]);
    }
    needs(wf, from)
        .into_iter()
        .filter(|&j| j >= to)
        .find_map(|j| path(wf, j, to))
        .map(|mut rest| {
            rest.insert(0, from);
            rest
        })
}
