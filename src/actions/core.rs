//! Generic built-in actions (`core.*`): let the engine be tested and demoed without Azure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{
    Action, ActionError, ActionSpec, Args, Description, Intent, OutputSpec, Outputs, Param,
    ParamType, PlanArgs, PlanContext, Reconciled, ResourceRef, StepContext,
};

pub fn all() -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(Echo),
        Arc::new(Sleep),
        Arc::new(Assert),
        Arc::new(Fail),
        Arc::new(WriteFile),
    ]
}

/// A duration argument: seconds as a number, or a human string such as "1m 30s" or "250ms".
pub fn parse_duration(value: &Value) -> Result<Duration, ActionError> {
    let bad = || {
        ActionError::fatal(format!("invalid duration {value}"))
            .with_hint("use seconds (e.g. 5 or 0.5) or a unit (e.g. \"250ms\", \"2s\", \"1m 30s\")")
    };
    match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(bad),
        Value::String(s) => humantime::parse_duration(s.trim()).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn str_arg<'a>(args: &'a Args, name: &str) -> Result<&'a str, ActionError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ActionError::fatal(format!("argument `{name}` must be a string")))
}

fn one_output(name: &str, value: Value) -> Outputs {
    let mut outputs = Outputs::new();
    outputs.insert(name.to_string(), value);
    outputs
}

// ---------------------------------------------------------------------------------------------

/// `core.echo`: shows a message and passes it on as an output.
pub struct Echo;

static ECHO: ActionSpec = ActionSpec {
    name: "core.echo",
    summary: "show a message and pass it on as output `message`",
    params: &[Param {
        name: "message",
        ty: ParamType::Any,
        required: true,
        description: "text to show",
    }],
    outputs: &[OutputSpec {
        name: "message",
        description: "the message, as given",
    }],
    mutates: false,
};

#[async_trait]
impl Action for Echo {
    fn spec(&self) -> &'static ActionSpec {
        &ECHO
    }

    async fn describe(
        &self,
        _ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        Ok(Description {
            summary: format!("echo {}", args.display("message")),
            ..Default::default()
        })
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        let message = args.get("message").cloned().unwrap_or(Value::Null);
        let text = match &message {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        ctx.status(text);
        Ok(one_output("message", message))
    }
}

// ---------------------------------------------------------------------------------------------

/// `core.sleep`: waits, showing the time left.
pub struct Sleep;

static SLEEP: ActionSpec = ActionSpec {
    name: "core.sleep",
    summary: "wait for a duration",
    params: &[Param {
        name: "duration",
        ty: ParamType::Any,
        required: true,
        description: "seconds, or a duration such as \"250ms\" or \"1m 30s\"",
    }],
    outputs: &[OutputSpec {
        name: "slept_ms",
        description: "milliseconds waited",
    }],
    mutates: false,
};

#[async_trait]
impl Action for Sleep {
    fn spec(&self) -> &'static ActionSpec {
        &SLEEP
    }

    async fn describe(
        &self,
        _ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        Ok(Description {
            summary: format!("wait {}", args.display("duration")),
            ..Default::default()
        })
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        let total = parse_duration(args.get("duration").unwrap_or(&Value::Null))?;
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + total;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            ctx.status(format!(
                "sleeping, {} s left",
                left.as_secs_f64().ceil() as u64
            ));
            ctx.env.time_passes();
            tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        }
        Ok(one_output(
            "slept_ms",
            json!(start.elapsed().as_millis() as u64),
        ))
    }
}

// ---------------------------------------------------------------------------------------------

/// `core.assert`: stops the run with a message when a condition is false.
pub struct Assert;

static ASSERT: ActionSpec = ActionSpec {
    name: "core.assert",
    summary: "fail with `message` unless `condition` is true",
    params: &[
        Param {
            name: "condition",
            ty: ParamType::Boolean,
            required: true,
            description: "must be true",
        },
        Param {
            name: "message",
            ty: ParamType::String,
            required: false,
            description: "why it must hold",
        },
    ],
    outputs: &[],
    mutates: false,
};

#[async_trait]
impl Action for Assert {
    fn spec(&self) -> &'static ActionSpec {
        &ASSERT
    }

    async fn describe(
        &self,
        _ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        Ok(Description {
            summary: format!("check that {}", args.display("condition")),
            ..Default::default()
        })
    }

    async fn execute(
        &self,
        _ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        match args.get("condition") {
            Some(Value::Bool(true)) => Ok(Outputs::new()),
            Some(Value::Bool(false)) => {
                let message = args
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("assertion failed");
                Err(ActionError::fatal(message))
            }
            other => Err(ActionError::fatal(format!(
                "argument `condition` must be a boolean, got {}",
                other.unwrap_or(&Value::Null)
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// `core.fail`: fails `times` times, then succeeds. Counts failures in a checkpoint, so the count
/// survives retries and resumes (for testing retry policies and resume after a failure).
pub struct Fail;

static FAIL: ActionSpec = ActionSpec {
    name: "core.fail",
    summary: "fail `times` times (retryable), then succeed",
    params: &[
        Param {
            name: "times",
            ty: ParamType::Integer,
            required: false,
            description: "failures before success (default 1)",
        },
        Param {
            name: "message",
            ty: ParamType::String,
            required: false,
            description: "the error message",
        },
    ],
    outputs: &[OutputSpec {
        name: "failures",
        description: "how many times it failed before succeeding",
    }],
    mutates: false,
};

const FAILURES: &str = "failures";

#[async_trait]
impl Action for Fail {
    fn spec(&self) -> &'static ActionSpec {
        &FAIL
    }

    async fn describe(
        &self,
        _ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        Ok(Description {
            summary: format!("fail {} time(s), then succeed", args.display("times")),
            ..Default::default()
        })
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        let times = args.get("times").and_then(Value::as_u64).unwrap_or(1);
        let failures = ctx
            .checkpoints
            .get(FAILURES)
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if failures >= times {
            return Ok(one_output(FAILURES, json!(failures)));
        }
        ctx.checkpoint(FAILURES, json!(failures + 1)).await?;
        let message = args
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("core.fail failed as asked");
        Err(
            ActionError::retryable(format!("{message} (failure {} of {times})", failures + 1))
                .with_hint("resume the run: core.fail succeeds once it has failed `times` times"),
        )
    }
}

// ---------------------------------------------------------------------------------------------

/// `core.write_file`: writes (or appends) a file. A side effect the engine can be tested with:
/// its intent names the path, reconcile adopts a file that already holds the content, undo
/// removes a written file.
pub struct WriteFile;

static WRITE_FILE: ActionSpec = ActionSpec {
    name: "core.write_file",
    summary: "write (or append) `content` to the file at `path`",
    params: &[
        Param {
            name: "path",
            ty: ParamType::String,
            required: true,
            description: "file to write",
        },
        Param {
            name: "content",
            ty: ParamType::String,
            required: true,
            description: "text to write",
        },
        Param {
            name: "append",
            ty: ParamType::Boolean,
            required: false,
            description: "append instead of replacing (default false)",
        },
    ],
    outputs: &[
        OutputSpec {
            name: "path",
            description: "the file written",
        },
        OutputSpec {
            name: "bytes",
            description: "bytes written",
        },
    ],
    mutates: true,
};

impl WriteFile {
    fn append(args: &Args) -> bool {
        args.get("append").and_then(Value::as_bool).unwrap_or(false)
    }

    fn outputs(path: &Path, content: &str) -> Outputs {
        let mut outputs = one_output("path", json!(path.display().to_string()));
        outputs.insert("bytes".into(), json!(content.len()));
        outputs
    }

    fn io_error(what: &str, path: &Path, err: std::io::Error) -> ActionError {
        ActionError::fatal(format!("cannot {what} {}: {err}", path.display()))
            .with_hint("check that the directory exists and is writable")
    }
}

#[async_trait]
impl Action for WriteFile {
    fn spec(&self) -> &'static ActionSpec {
        &WRITE_FILE
    }

    async fn describe(
        &self,
        _ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        let verb = if args
            .known
            .get("append")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            "append to"
        } else {
            "write"
        };
        Ok(Description {
            summary: format!("{verb} file {}", args.display("path")),
            ..Default::default()
        })
    }

    fn intent(&self, _run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        let path = str_arg(args, "path")?;
        let append = Self::append(args);
        let creates = if append {
            Vec::new()
        } else {
            vec![ResourceRef {
                kind: "file".into(),
                id: path.into(),
            }]
        };
        Ok(Intent {
            detail: json!({ "path": path, "append": append }),
            creates,
            scaffolding: false,
        })
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        use std::io::Write;
        let path = PathBuf::from(str_arg(args, "path")?);
        let content = str_arg(args, "content")?;
        ctx.status(format!("writing {}", path.display()));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(Self::append(args))
            .truncate(!Self::append(args))
            .open(&path)
            .map_err(|e| Self::io_error("open", &path, e))?;
        file.write_all(content.as_bytes())
            .map_err(|e| Self::io_error("write", &path, e))?;
        file.sync_all()
            .map_err(|e| Self::io_error("sync", &path, e))?;
        Ok(Self::outputs(&path, content))
    }

    /// The content already there means the write happened before the crash.
    async fn reconcile(
        &self,
        _ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Reconciled, ActionError> {
        let path = PathBuf::from(str_arg(args, "path")?);
        let content = str_arg(args, "content")?;
        let done = match std::fs::read_to_string(&path) {
            Ok(existing) if Self::append(args) => existing.contains(content),
            Ok(existing) => existing == content,
            Err(_) => false,
        };
        Ok(if done {
            Reconciled::Adopt(Self::outputs(&path, content))
        } else {
            Reconciled::Redo
        })
    }

    fn describe_undo(&self, args: &Args, _outputs: &Outputs) -> Option<String> {
        (!Self::append(args)).then(|| {
            format!(
                "remove file {}",
                args.get("path").and_then(Value::as_str).unwrap_or("?")
            )
        })
    }

    async fn undo(
        &self,
        _ctx: &StepContext,
        args: &Args,
        _outputs: &Outputs,
    ) -> Result<(), ActionError> {
        if Self::append(args) {
            return Ok(());
        }
        let path = PathBuf::from(str_arg(args, "path")?);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Self::io_error("remove", &path, e))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration(&json!(2)).unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_duration(&json!(0.5)).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_duration(&json!("250ms")).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            parse_duration(&json!("1m 30s")).unwrap(),
            Duration::from_secs(90)
        );
        assert!(parse_duration(&json!("soon")).is_err());
        assert!(parse_duration(&json!(-1)).is_err());
    }
}
