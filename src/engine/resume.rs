//! Preparing a journal for `rescue resume`: has the workflow changed, which steps run again.

use similar::{ChangeTag, TextDiff};

use super::journal::{sha256_hex, Journal, StepRecord};

/// Lines of diff shown at most when the workflow changed.
const MAX_DIFF_LINES: usize = 20;

/// None when `current_text` is the text the run started with (`started_sha`); else a short
/// line diff (`-` old, `+` new, with line numbers) from `started_text`, when the run kept it.
pub fn workflow_changes(
    started_sha: &str,
    started_text: Option<&str>,
    current_text: &str,
) -> Option<String> {
    if sha256_hex(current_text) == started_sha {
        return None;
    }
    let Some(started_text) = started_text else {
        return Some("  (this run's journal keeps no copy of the workflow text, so the change cannot be shown)".into());
    };
    let diff = TextDiff::from_lines(started_text, current_text);
    let mut lines = Vec::new();
    for change in diff.iter_all_changes() {
        let (sign, line) = match change.tag() {
            ChangeTag::Equal => continue,
            ChangeTag::Delete => ('-', change.old_index()),
            ChangeTag::Insert => ('+', change.new_index()),
        };
        let number = line.map(|n| n + 1).unwrap_or(0);
        lines.push(format!(
            "  {sign} {number:>4} | {}",
            change.value().trim_end_matches('\n')
        ));
    }
    if lines.len() > MAX_DIFF_LINES {
        let more = lines.len() - MAX_DIFF_LINES;
        lines.truncate(MAX_DIFF_LINES);
        lines.push(format!("  ... and {more} more changed lines"));
    }
    Some(lines.join("\n"))
}

/// Makes the journal's steps match the (possibly changed) workflow: a step keeps its record
/// when its id and action are unchanged, otherwise it starts over as pending.
pub fn align_steps(journal: &mut Journal, steps: &[(String, String)]) {
    let old = std::mem::take(&mut journal.steps);
    journal.steps = steps
        .iter()
        .map(
            |(id, uses)| match old.iter().find(|s| &s.id == id && &s.uses == uses) {
                Some(record) => record.clone(),
                None => StepRecord::pending(id.clone(), uses.clone()),
            },
        )
        .collect();
}

/// `--from-step ID`: that step and every later one run again.
pub fn reset_from(journal: &mut Journal, step_id: &str) -> anyhow::Result<()> {
    let Some(start) = journal.steps.iter().position(|s| s.id == step_id) else {
        let ids: Vec<_> = journal.steps.iter().map(|s| s.id.as_str()).collect();
        anyhow::bail!(
            "--from-step: no step `{step_id}` in this run (steps: {})",
            ids.join(", ")
        );
    };
    for step in &mut journal.steps[start..] {
        step.reset();
    }
    Ok(())
}

/// The step a resume starts from, if any is left.
pub fn first_unfinished(journal: &Journal) -> Option<&StepRecord> {
    journal.steps.iter().find(|s| !s.status.is_done())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::journal::{StepStatus, WorkflowRecord};

    fn journal(text: &str) -> Journal {
        let steps = vec![
            StepRecord::pending("a", "core.echo"),
            StepRecord::pending("b", "core.echo"),
        ];
        Journal::new(
            "r".into(),
            WorkflowRecord::new(&crate::workflow::Origin::File("/w.yaml".into()), text),
            Default::default(),
            Default::default(),
            steps,
        )
    }

    #[test]
    fn diff_names_changed_lines() {
        let old = "name: x\nsteps: []\n";
        let sha = sha256_hex(old);
        assert!(workflow_changes(&sha, Some(old), old).is_none());
        let diff = workflow_changes(&sha, Some(old), "name: y\nsteps: []\n").unwrap();
        assert!(
            diff.contains("-    1 | name: x") && diff.contains("+    1 | name: y"),
            "{diff}"
        );
    }

    #[test]
    fn reset_from_resets_later_steps() {
        let mut j = journal("");
        for s in &mut j.steps {
            s.status = StepStatus::Succeeded;
        }
        reset_from(&mut j, "b").unwrap();
        assert_eq!(j.steps[0].status, StepStatus::Succeeded);
        assert_eq!(j.steps[1].status, StepStatus::Pending);
        assert!(reset_from(&mut j, "zz")
            .unwrap_err()
            .to_string()
            .contains("a, b"));
    }

    #[test]
    fn align_keeps_unchanged_steps() {
        let mut j = journal("");
        j.steps[0].status = StepStatus::Succeeded;
        align_steps(
            &mut j,
            &[
                ("a".into(), "core.echo".into()),
                ("c".into(), "core.sleep".into()),
            ],
        );
        assert_eq!(j.steps.len(), 2);
        assert_eq!(j.steps[0].status, StepStatus::Succeeded);
        assert_eq!(j.steps[1].id, "c");
    }
}
