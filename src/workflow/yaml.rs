//! YAML as a tree that remembers where every node is, so the analyzer can report all problems
//! with a line and column (serde stops at the first one and forgets positions).
//!
//! Every YAML file rescue reads (workflows, `--inputs`, emulator scenarios) first passes
//! [`check_limits`]: an alias repeats its anchored node, so a few hundred bytes of nested aliases
//! ("billion laughs") would otherwise expand to gigabytes before any check could run.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

use super::diag::{Diagnostics, Problem, Source, Span};

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// What the node is, for "expected a string, found a list".
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "nothing",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => Value::from(*f),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (key_text(k), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A mapping key as text (YAML allows `1:` or `true:`; we treat them as their text).
pub fn key_text(key: &Node) -> String {
    match &key.kind {
        Kind::Str(s) => s.clone(),
        other => Node {
            kind: other.clone(),
            span: key.span,
        }
        .to_json()
        .to_string(),
    }
}

/// What a YAML file rescue reads may hold. Real workflows, inputs and scenarios are a few KiB
/// with a few hundred nodes; the limits are far above that and far below what hurts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Size of the file itself.
    pub bytes: usize,
    /// Nodes of the document once every alias is expanded (each node costs ~100 bytes in
    /// memory, so this bounds the tree at ~10 MB).
    pub nodes: u64,
    /// Text of all scalars once every alias is expanded.
    pub scalar_bytes: u64,
    /// Nesting of lists and mappings (the tree is walked recursively).
    pub depth: usize,
}

pub const LIMITS: Limits = Limits {
    bytes: 1024 * 1024,
    nodes: 100_000,
    scalar_bytes: 4 * 1024 * 1024,
    depth: 64,
};

/// Reads a YAML file, refusing one larger than [`LIMITS`] without reading all of it.
/// `what` names the file in the error ("workflow", "inputs file"), `help` says what to check.
pub fn read_file(path: &Path, what: &str, help: &str) -> Result<String, Diagnostics> {
    let problem = |message: String| Diagnostics::from(Problem::plain(message).help(help));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(LIMITS.bytes as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| problem(format!("cannot read {what} {}: {e}", path.display())))?;
    if bytes.len() > LIMITS.bytes {
        return Err(problem(format!(
            "{what} {} is larger than {} (the limit for a YAML file rescue reads)",
            path.display(),
            size(LIMITS.bytes as u64)
        )));
    }
    String::from_utf8(bytes)
        .map_err(|e| problem(format!("cannot read {what} {}: {e}", path.display())))
}

fn size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

/// Refuses a document that is too large, too deep, or expands too far through aliases, with the
/// place where the limit was crossed. Streams parser events and counts what the expanded tree
/// would hold, so nothing is expanded to find out.
pub fn check_limits(source: &Source) -> Result<(), Diagnostics> {
    let text = &source.text;
    if text.len() > LIMITS.bytes {
        return Err(Problem::at(
            source,
            Span::new(0, 0),
            format!(
                "the file is {} bytes, more than {} (the limit for a YAML file rescue reads)",
                text.len(),
                size(LIMITS.bytes as u64)
            ),
        )
        .help("check that this is the file you meant")
        .into());
    }
    let mut meter = Meter {
        lines: line_starts(text),
        text,
        open: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        scalar_bytes: 0,
        exceeded: None,
    };
    // Syntax errors are `parse`'s to report, with its wording; only the limits matter here.
    let _ = Parser::new_from_str(text).load(&mut meter, true);
    match meter.exceeded {
        None => Ok(()),
        Some((offset, message, label)) => {
            let span = Span::new(offset, 1);
            Err(Problem::at(source, span, message)
                .label(label)
                .help("YAML aliases (`*name`) repeat their anchored node; a file that expands this far is an alias bomb or a mistake: write the values out, or use fewer aliases")
                .into())
        }
    }
}

/// Counts the nodes and scalar text of the tree the events describe, aliases expanded.
struct Meter<'a> {
    text: &'a str,
    lines: Vec<usize>,
    /// Open lists/mappings: (anchor, nodes and scalar bytes counted before it opened).
    open: Vec<(usize, u64, u64)>,
    /// Cost of each anchored node: (nodes, scalar bytes).
    anchors: HashMap<usize, (u64, u64)>,
    nodes: u64,
    scalar_bytes: u64,
    /// The first limit crossed: (offset, message, label).
    exceeded: Option<(usize, String, &'static str)>,
}

impl Meter<'_> {
    fn add(&mut self, nodes: u64, scalar_bytes: u64, mark: &Marker, via_alias: bool) {
        self.nodes = self.nodes.saturating_add(nodes);
        self.scalar_bytes = self.scalar_bytes.saturating_add(scalar_bytes);
        if self.exceeded.is_some() {
            return;
        }
        let how = if via_alias {
            "with its aliases expanded, the document"
        } else {
            "the document"
        };
        let label = if via_alias { "this alias" } else { "here" };
        let message = if self.nodes > LIMITS.nodes {
            format!(
                "{how} has more than {} nodes (the limit for a YAML file rescue reads)",
                LIMITS.nodes
            )
        } else if self.scalar_bytes > LIMITS.scalar_bytes {
            format!(
                "{how} holds more than {} of text (the limit for a YAML file rescue reads)",
                size(LIMITS.scalar_bytes)
            )
        } else {
            return;
        };
        self.exceeded = Some((offset(self.text, &self.lines, mark), message, label));
    }
}

impl MarkedEventReceiver for Meter<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, _, anchor, _) => {
                let bytes = value.len() as u64;
                if anchor > 0 {
                    self.anchors.insert(anchor, (1, bytes));
                }
                self.add(1, bytes, &mark, false);
            }
            Event::Alias(id) => {
                let (nodes, bytes) = self.anchors.get(&id).copied().unwrap_or((1, 0));
                self.add(nodes, bytes, &mark, true);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.open.push((anchor, self.nodes, self.scalar_bytes));
                self.add(1, 0, &mark, false);
                if self.open.len() > LIMITS.depth && self.exceeded.is_none() {
                    self.exceeded = Some((
                        offset(self.text, &self.lines, &mark),
                        format!(
                            "lists and mappings are nested more than {} levels deep (the limit for a YAML file rescue reads)",
                            LIMITS.depth
                        ),
                        "too deep",
                    ));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, nodes, bytes)) = self.open.pop() {
                    if anchor > 0 {
                        self.anchors
                            .insert(anchor, (self.nodes - nodes, self.scalar_bytes - bytes));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Parses the first document of `source`, within [`LIMITS`]. Syntax errors and duplicate keys
/// are problems.
pub fn parse(source: &Source) -> Result<Node, Diagnostics> {
    check_limits(source)?;
    let mut builder = Builder {
        source,
        lines: line_starts(&source.text),
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        problems: Diagnostics::default(),
    };
    let mut parser = Parser::new_from_str(&source.text);
    if let Err(e) = parser.load(&mut builder, true) {
        let span = Span::new(builder.offset(e.marker()), 1);
        builder.problems.push(
            Problem::at(source, span, format!("invalid YAML: {}", e.info()))
                .label("syntax error")
                .help("check the indentation and quoting around this position"),
        );
        return Err(builder.problems);
    }
    let root = match builder.root.take() {
        Some(root) => root,
        None => {
            builder.problems.push(
                Problem::at(source, Span::new(0, 0), "the file is empty")
                    .help("a workflow needs at least `name` and `steps`"),
            );
            return Err(builder.problems);
        }
    };
    builder.problems.into_result(root)
}

enum Open {
    Seq {
        items: Vec<Node>,
        span: Span,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        span: Span,
        anchor: usize,
    },
}

struct Builder<'a> {
    source: &'a Source,
    lines: Vec<usize>,
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    problems: Diagnostics,
}

/// Byte offset of a marker (its line is 1-based, its column counts chars from 0).
fn offset(text: &str, lines: &[usize], mark: &Marker) -> usize {
    let Some(&line_start) = lines.get(mark.line().saturating_sub(1)) else {
        return text.len();
    };
    let line = &text[line_start..];
    let in_line = line
        .char_indices()
        .nth(mark.col())
        .map_or(line.len(), |(i, _)| i);
    line_start + in_line
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

impl Builder<'_> {
    fn offset(&self, mark: &Marker) -> usize {
        offset(&self.source.text, &self.lines, mark)
    }

    /// A span from `start` covering `len` bytes but not past the end of the line.
    fn span_on_line(&self, start: usize, len: usize) -> Span {
        let rest = &self.source.text[start..];
        let line_len = rest.find('\n').unwrap_or(rest.len());
        Span::new(start, len.min(line_len).max(1))
    }

    fn add(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    let name = key_text(&k);
                    if let Some((first, _)) = entries.iter().find(|(e, _)| key_text(e) == name) {
                        let (line, _) = self.source.line_col(first.span.start);
                        let problem =
                            Problem::at(self.source, k.span, format!("duplicate key `{name}`"))
                                .label("defined again here")
                                .help(format!(
                                    "`{name}` is already set on line {line}; keep one of them"
                                ));
                        self.problems.push(problem);
                    } else {
                        entries.push((k, node));
                    }
                }
            },
        }
    }
}

fn scalar(value: String, style: TScalarStyle, tag: Option<&yaml_rust2::parser::Tag>) -> Kind {
    if style != TScalarStyle::Plain || tag.is_some_and(|t| t.suffix == "str") {
        return Kind::Str(value);
    }
    match Yaml::from_str(&value) {
        Yaml::Integer(i) => Kind::Int(i),
        Yaml::Real(r) => r.parse().map_or(Kind::Str(value), Kind::Float),
        Yaml::Boolean(b) => Kind::Bool(b),
        Yaml::Null => Kind::Null,
        _ => Kind::Str(value),
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let start = self.offset(&mark);
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let quotes = if matches!(
                    style,
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted
                ) {
                    2
                } else {
                    0
                };
                let span = self.span_on_line(start, value.len() + quotes);
                let kind = scalar(value, style, tag.as_ref());
                self.add(Node { kind, span }, anchor);
            }
            Event::Alias(id) => {
                let span = self.span_on_line(start, 1);
                let node = self.anchors.get(&id).cloned().map_or(
                    Node {
                        kind: Kind::Null,
                        span,
                    },
                    |n| Node { span, ..n },
                );
                self.add(node, 0);
            }
            Event::SequenceStart(anchor, _) => {
                let span = self.span_on_line(start, usize::MAX);
                self.stack.push(Open::Seq {
                    items: Vec::new(),
                    span,
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                let span = self.span_on_line(start, usize::MAX);
                self.stack.push(Open::Map {
                    entries: Vec::new(),
                    key: None,
                    span,
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq {
                        items,
                        span,
                        anchor,
                    }) => (
                        Node {
                            kind: Kind::Seq(items),
                            span,
                        },
                        anchor,
                    ),
                    Some(Open::Map {
                        entries,
                        span,
                        anchor,
                        ..
                    }) => {
                        // A block mapping's start mark is imprecise; its first key is where it begins.
                        let span = entries
                            .first()
                            .map_or(span, |(k, _)| self.span_on_line(k.span.start, usize::MAX));
                        (
                            Node {
                                kind: Kind::Map(entries),
                                span,
                            },
                            anchor,
                        )
                    }
                    None => return,
                };
                self.add(node, anchor);
            }
            Event::DocumentStart if self.root.is_some() => {
                let span = self.span_on_line(start, 3);
                self.problems.push(
                    Problem::at(self.source, span, "a second YAML document in the same file")
                        .label("second document")
                        .help("a workflow file holds one document; remove this `---` and what follows, or move it to its own file"),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source::new("t.yaml", text)
    }

    #[test]
    fn positions_point_at_values() {
        let s = src("name: demo\nsteps:\n  - id: a\n    uses: core.echo\n");
        let root = parse(&s).unwrap();
        let Kind::Map(entries) = &root.kind else {
            panic!()
        };
        let Kind::Seq(steps) = &entries[1].1.kind else {
            panic!()
        };
        let Kind::Map(step) = &steps[0].kind else {
            panic!()
        };
        assert_eq!(s.line_col(step[1].1.span.start), (4, 11));
        assert_eq!(
            &s.text[step[1].1.span.start..][..step[1].1.span.len],
            "core.echo"
        );
    }

    #[test]
    fn scalars_are_typed_like_yaml() {
        let root = parse(&src("a: 1\nb: 'x'\nc: true\nd: \"2\"\ne:\n"))
            .unwrap()
            .to_json();
        assert_eq!(
            root,
            serde_json::json!({"a": 1, "b": "x", "c": true, "d": "2", "e": null})
        );
    }

    /// The classic "billion laughs": nine levels of nine aliases, 10^9 strings when expanded.
    const BOMB: &str = include_str!("../../tests/it/engine/fixtures/bomb.yaml");

    #[test]
    fn an_alias_bomb_is_refused_where_it_crosses_the_limit() {
        let err = parse(&src(BOMB)).unwrap_err();
        let problem = &err.0[0];
        // e holds 9^4 * 10-ish nodes; the first alias past 100000 is on line 6 (f).
        assert_eq!(
            problem.location.as_deref().map(|l| &l[..9]),
            Some("t.yaml:6:")
        );
        assert!(
            problem.message.contains("100000 nodes"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn long_text_through_aliases_and_deep_nesting_are_refused() {
        let long = format!(
            "a: &a \"{}\"\nb: [{}]\n",
            "x".repeat(100_000),
            ["*a"; 50].join(",")
        );
        let err = parse(&src(&long)).unwrap_err();
        assert!(
            err.0[0].message.contains("4 MiB of text"),
            "{}",
            err.0[0].message
        );
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let err = parse(&src(&deep)).unwrap_err();
        assert!(
            err.0[0].message.contains("64 levels"),
            "{}",
            err.0[0].message
        );
        assert_eq!(err.0[0].location.as_deref(), Some("t.yaml:1:65"));
        // Anchors and aliases in normal use are fine.
        let ok = "base: &base {sku: Premium_LRS, zone: '1'}\ndisks: [*base, *base]\n";
        assert!(parse(&src(ok)).is_ok());
    }

    #[test]
    fn syntax_error_and_duplicates_are_located() {
        let err = parse(&src("a: [1\n")).unwrap_err();
        assert!(err.0[0].location.as_deref().unwrap().starts_with("t.yaml:"));
        let err = parse(&src("a: 1\nb: 2\na: 3\n")).unwrap_err();
        assert_eq!(err.0[0].location.as_deref(), Some("t.yaml:3:1"));
    }
}
