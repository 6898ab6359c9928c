//! The typed workflow document. Built from the positioned YAML tree by `build`, so every
//! field keeps its source span for diagnostics. The schemars derive is what `rescue schema`
//! prints: the doc comments below are the descriptions editors show.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use super::diag::{Source, Span};

/// A value together with where it was written.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// The span is bookkeeping; the schema is the value's.
impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A rescue workflow: typed inputs, ordered steps, and outputs computed from the steps.
#[derive(Clone, Debug, JsonSchema)]
#[schemars(title = "rescue workflow", deny_unknown_fields)]
pub struct Workflow {
    /// Short name, shown in plans and run listings.
    pub name: String,
    /// What the workflow is for.
    pub description: Option<String>,
    /// Values the operator passes with `--input NAME=VALUE` or `--inputs FILE`.
    #[serde(default)]
    pub inputs: BTreeMap<String, Input>,
    /// Steps, run in order. Each step is journaled before and after it acts.
    pub steps: Vec<Step>,
    /// Results of the run, e.g. `repaired_disk: ${{ steps.copy.outputs.id }}`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub outputs: BTreeMap<String, Spanned<String>>,
    /// The file it was read from (path and text), for diagnostics and the content hash.
    #[schemars(skip)]
    pub source: Source,
}

impl Workflow {
    /// Hex SHA-256 of the file's text: a run refuses to resume when it changed.
    pub fn sha256(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.source.text.as_bytes()))
    }

    /// Whether any step acts on Azure (then the CLI connects before planning or running).
    pub fn needs_azure(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.uses.value.starts_with("azure."))
    }
}

/// The type of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    Integer,
    Boolean,
    /// One of `values`.
    Enum,
}

impl InputType {
    pub const NAMES: &'static [&'static str] = &["string", "integer", "boolean", "enum"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => InputType::String,
            "integer" => InputType::Integer,
            "boolean" => InputType::Boolean,
            "enum" => InputType::Enum,
            _ => return None,
        })
    }
}

impl std::fmt::Display for InputType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = *self as usize;
        f.write_str(Self::NAMES[i])
    }
}

/// A workflow input.
#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Input {
    #[serde(rename = "type")]
    pub ty: InputType,
    pub description: Option<String>,
    /// Whether `--input` must give it. Defaults to true unless a `default` is given.
    #[schemars(with = "Option<bool>")]
    pub required: bool,
    /// Used when the operator does not give a value.
    #[schemars(with = "Option<Value>")]
    pub default: Option<Spanned<Value>>,
    /// A regular expression the whole value must match (strings), e.g. Azure naming rules.
    #[schemars(with = "Option<String>")]
    pub pattern: Option<Spanned<String>>,
    /// The allowed values of an `enum` input.
    #[serde(default)]
    pub values: Vec<String>,
    /// `pattern`, anchored and compiled.
    #[schemars(skip)]
    pub regex: Option<Regex>,
    #[schemars(skip)]
    pub span: Span,
}

/// One step: an action and its arguments.
#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Step {
    /// Unique id ([a-z0-9_-]); later steps read its results as `steps.ID.outputs.NAME`.
    #[schemars(regex(pattern = r"^[a-z0-9_-]+$"))]
    pub id: Spanned<String>,
    /// Human name shown in progress and plans.
    pub name: Option<String>,
    pub description: Option<String>,
    /// The action to run, e.g. `core.echo` or `azure.snapshot.create`.
    pub uses: Spanned<String>,
    /// The action's arguments; strings may contain `${{ expressions }}`.
    #[serde(rename = "with", default)]
    #[schemars(with = "BTreeMap<String, Value>")]
    pub with: BTreeMap<String, Spanned<Value>>,
    /// Where each argument's name is written (unknown arguments point there).
    #[schemars(skip)]
    pub with_keys: BTreeMap<String, Span>,
    /// Run the step only when this expression is true, e.g. `${{ inputs.force }}`; else skip it.
    #[serde(rename = "if")]
    #[schemars(with = "Option<String>")]
    pub condition: Option<Spanned<String>>,
    /// Retry a failed attempt when the action says the error is retryable.
    pub retry: Option<Retry>,
    /// Give up on an attempt after this long, e.g. `10m`.
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// Ask before running the step (`true`, or the question to ask); `--yes` answers.
    #[schemars(with = "Option<ConfirmSchema>")]
    pub confirm: Option<String>,
    /// The steps that must have finished before this one, as GitHub Actions' jobs `needs:`
    /// (a step id or a list of them; `[]` for none). Without it a step needs the one above
    /// it, so a workflow without `needs` runs top to bottom.
    #[schemars(with = "Option<Vec<String>>")]
    pub needs: Option<Vec<Spanned<String>>>,
    /// Where the step's mapping starts.
    #[schemars(skip)]
    pub span: Span,
}

impl Step {
    /// The name to show: `name`, or the id.
    pub fn title(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id.value)
    }

    /// How many attempts the step gets in total.
    pub fn max_attempts(&self) -> u32 {
        self.retry.as_ref().map_or(1, |r| r.max_attempts)
    }
}

/// `confirm: true` or `confirm: "question to ask"`.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ConfirmSchema {
    Ask(bool),
    Question(String),
}

/// Retry policy of a step.
#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in total, including the first (default 3).
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// Wait before the second attempt, doubled each time (default `5s`).
    #[schemars(with = "Option<String>")]
    pub backoff: Duration,
    /// The longest wait between attempts (default `5m`).
    #[schemars(with = "Option<String>")]
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 3,
            backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl Retry {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_doubles_up_to_its_cap() {
        let retry = Retry {
            max_attempts: 6,
            backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(30),
        };
        let delays: Vec<u64> = (1..=5).map(|a| retry.delay(a).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 30, 30]);
        assert_eq!(retry.delay(200).as_secs(), 30, "no overflow on long runs");
    }
}
