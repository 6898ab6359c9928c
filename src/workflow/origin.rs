//! Where a workflow comes from, a file or a built-in, and how the files it names (the
//! `script:` of a Run Command step) are found: beside the workflow file, or beside the built-in
//! workflows.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::builtin::{self, SCHEME};
use super::diag::{Diagnostics, Problem, Source};
use super::expr::{self, Scope};
use super::model::Workflow;
use super::yaml;
use crate::actions::{ParamType, Registry};

/// The most a file named by a workflow may hold (Run Command takes at most 256 KiB of script).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A workflow file, by absolute path so that a resume from another directory finds it.
    File(PathBuf),
    /// A workflow built into the binary, by name (`os-disk-swap`).
    Builtin(String),
}

impl Origin {
    /// What `rescue run NAME|FILE` means: an existing file, else a built-in's name, else an
    /// error that lists the built-ins.
    pub fn resolve(given: &Path) -> Result<Origin, Diagnostics> {
        let text = given.to_string_lossy();
        let name = text.strip_prefix(SCHEME).unwrap_or(&text);
        let looks_like_path =
            text.contains('/') || given.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if given.is_file() || (looks_like_path && builtin::find(name).is_none()) {
            // A path that is not there is the read's error to tell ("No such file").
            return Ok(Origin::File(
                std::path::absolute(given).unwrap_or_else(|_| given.to_path_buf()),
            ));
        }
        match builtin::find(name) {
            Some(b) => Ok(Origin::Builtin(b.name.to_string())),
            None => Err(builtin::not_found(
                &text,
                "neither a workflow file nor the name of a built-in workflow",
            )
            .into()),
        }
    }

    /// The path (relative to the current directory when inside it, as typed), or
    /// `builtin:NAME.yaml`: where diagnostics name it.
    pub fn display(&self) -> String {
        match self {
            Origin::File(path) => {
                let cwd = std::env::current_dir().unwrap_or_default();
                path.strip_prefix(&cwd)
                    .unwrap_or(path)
                    .display()
                    .to_string()
            }
            Origin::Builtin(_) => self.record(),
        }
    }

    /// The absolute path, or `builtin:NAME.yaml`: how a journal names it.
    pub fn record(&self) -> String {
        match self {
            Origin::File(path) => path.display().to_string(),
            Origin::Builtin(name) => format!("{SCHEME}{name}.yaml"),
        }
    }

    /// The workflow's text, named for diagnostics.
    pub fn read(&self) -> Result<Source, Diagnostics> {
        let text = match self {
            Origin::File(_) => {
                let names: Vec<&str> = builtin::all().iter().map(|b| b.name).collect();
                let help = format!(
                    "check the path, or give the name of a built-in workflow ({})",
                    names.join(", ")
                );
                yaml::read_file(Path::new(&self.display()), "workflow", &help)?
            }
            Origin::Builtin(name) => builtin::find(name)
                .ok_or_else(|| {
                    Diagnostics::from(Problem::plain(format!(
                        "this rescue has no built-in workflow `{name}`"
                    )))
                })?
                .text
                .to_string(),
        };
        Ok(Source::new(self.display(), text))
    }

    /// A file the workflow names, as given (`scripts/fsck-disk.sh`): an absolute path as is,
    /// a relative one beside the workflow. Returns where it was found and its bytes.
    pub fn read_relative(&self, given: &str) -> Result<(String, Vec<u8>), String> {
        let path = Path::new(given);
        let on_disk = match self {
            _ if path.is_absolute() => path.to_path_buf(),
            Origin::File(workflow) => workflow
                .parent()
                .map_or_else(|| path.to_path_buf(), |dir| dir.join(path)),
            Origin::Builtin(_) => {
                let shown = format!("{SCHEME}{given}");
                return builtin::file(given)
                    .map(|bytes| (shown.clone(), bytes.to_vec()))
                    .ok_or_else(|| format!("{shown}: no such file among the built-in workflows"));
            }
        };
        let shown = on_disk.display().to_string();
        let mut bytes = Vec::new();
        std::fs::File::open(&on_disk)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(format!(
                "{shown} is larger than {} MiB, more than a workflow's file may be",
                MAX_FILE_BYTES / (1024 * 1024)
            ));
        }
        Ok((shown, bytes))
    }
}

/// A file a step names, read.
#[derive(Clone, Debug)]
pub struct FileRead {
    /// As the step gives it (`scripts/fsck-disk.sh`): the key a run stores it under.
    pub given: String,
    /// Where it was found, for messages.
    pub shown: String,
    pub bytes: Vec<u8>,
}

/// The files the workflow's steps name (parameters of type file) whose value is known before
/// the run starts (written out, or from inputs), each read from `origin`. Missing or unreadable
/// ones are problems at the argument, so a run never starts without its scripts.
pub fn referenced_files(
    wf: &Workflow,
    origin: &Origin,
    inputs: &serde_json::Map<String, Value>,
    registry: &Registry,
) -> Result<Vec<FileRead>, Diagnostics> {
    let scope = Scope {
        run_id: String::new(),
        inputs: inputs.clone(),
        steps: Default::default(),
    };
    let mut files = Vec::new();
    let mut problems = Diagnostics::default();
    for step in &wf.steps {
        let Some(action) = registry.get(&step.uses.value) else {
            continue;
        };
        // Values that need an earlier step (or inputs not given) are read when the step runs.
        let Ok(args) = expr::plan_args(step, &scope) else {
            continue;
        };
        for param in action.spec().params {
            if param.ty != ParamType::File {
                continue;
            }
            let Some(given) = args.str(param.name) else {
                continue;
            };
            if files.iter().any(|f: &FileRead| f.given == given) {
                continue;
            }
            match origin.read_relative(given) {
                Ok((shown, bytes)) => files.push(FileRead {
                    given: given.to_string(),
                    shown,
                    bytes,
                }),
                Err(e) => {
                    let span = step.with.get(param.name).map_or(step.span, |v| v.span);
                    problems.push(
                        Problem::at(
                            &wf.source,
                            span,
                            format!("`{}` of step `{}`: {e}", param.name, step.id.value),
                        )
                        .label("this file")
                        .help("a relative path is read beside the workflow file"),
                    );
                }
            }
        }
    }
    problems.into_result(files)
}

/// What a plan reads: the files beside the workflow, as they are now.
impl crate::actions::Files for Origin {
    fn read(&self, path: &str) -> Result<crate::actions::FileText, crate::actions::ActionError> {
        let fail = |e: String| {
            crate::actions::ActionError::fatal(e)
                .with_hint("a relative path is read beside the workflow file")
        };
        let (origin, bytes) = self.read_relative(path).map_err(fail)?;
        let text = String::from_utf8(bytes).map_err(|_| fail(format!("{origin} is not text")))?;
        Ok(crate::actions::FileText { origin, text })
    }
}
