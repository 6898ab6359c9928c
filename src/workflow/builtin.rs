//! The workflows built into the binary: `workflows/*.yaml` with the files they reference
//! (`workflows/scripts/`), so `rescue run os-disk-swap` works from any directory and a run
//! started from a built-in finds its scripts without a checkout.
//!
//! Embedded with `include_dir` rather than one `include_str!` per file: a workflow or script
//! added to `workflows/` is built in without a list to keep in step (build.rs makes cargo notice
//! new files).

use include_dir::{include_dir, Dir};

static WORKFLOWS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/workflows");

/// The prefix of a built-in's name where a file path would be (`builtin:os-disk-swap.yaml`),
/// in diagnostics and journals.
pub const SCHEME: &str = "builtin:";

/// One built-in workflow.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// `os-disk-swap`: what `rescue run NAME` takes.
    pub name: &'static str,
    pub text: &'static str,
}

impl Builtin {
    /// Its file name inside the embedded directory.
    pub fn file_name(&self) -> String {
        format!("{}.yaml", self.name)
    }

    /// `builtin:os-disk-swap.yaml`, where diagnostics put a file name.
    pub fn display(&self) -> String {
        format!("{SCHEME}{}", self.file_name())
    }
}

/// Every built-in workflow, by name.
pub fn all() -> Vec<Builtin> {
    let mut list: Vec<Builtin> = WORKFLOWS
        .files()
        .filter_map(|f| {
            let name = f.path().to_str()?.strip_suffix(".yaml")?;
            Some(Builtin {
                name,
                text: f.contents_utf8()?,
            })
        })
        .collect();
    list.sort_by_key(|b| b.name);
    list
}

/// The built-in called `name` (`os-disk-swap`, or `os-disk-swap.yaml`).
pub fn find(name: &str) -> Option<Builtin> {
    let name = name.strip_suffix(".yaml").unwrap_or(name);
    all().into_iter().find(|b| b.name == name)
}

/// "no built-in `NAME`", listing the ones there are (and a close one).
pub fn not_found(name: &str, what: &str) -> super::Problem {
    let names: Vec<&str> = all().iter().map(|b| b.name).collect();
    super::Problem::plain(format!(
        "`{name}` is {what} (built-in workflows: {})",
        names.join(", ")
    ))
    .help("`rescue workflows` lists the built-ins with their inputs")
    .suggest(name, names.iter().copied())
}

/// A file beside the built-in workflows, by its path relative to them (`scripts/fsck-disk.sh`).
pub fn file(relative: &str) -> Option<&'static [u8]> {
    let relative = relative.strip_prefix("./").unwrap_or(relative);
    WORKFLOWS.get_file(relative).map(|f| f.contents())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repair_workflow_and_its_script_are_built_in() {
        let names: Vec<_> = all().iter().map(|b| b.name).collect();
        assert!(
            names.contains(&"os-disk-swap") && names.contains(&"demo"),
            "{names:?}"
        );
        assert!(find("os-disk-swap.yaml")
            .unwrap()
            .text
            .contains("name: os-disk-swap"));
        assert!(file("scripts/fsck-disk.sh").is_some());
        assert!(file("./scripts/fsck-disk.sh").is_some());
        assert!(file("scripts/nope.sh").is_none());
    }
}
