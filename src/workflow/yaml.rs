//! YAML as a tree that remembers where every node is, so the analyzer can report all problems
//! with a line and column (serde stops at the first one and forgets positions).

use std::collections::HashMap;

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

/// Parses the first document of `source`. Syntax errors and duplicate keys are problems.
pub fn parse(source: &Source) -> Result<Node, Diagnostics> {
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

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

impl Builder<'_> {
    /// Byte offset of a marker (its line is 1-based, its column counts chars from 0).
    fn offset(&self, mark: &Marker) -> usize {
        let text = &self.source.text;
        let Some(&line_start) = self.lines.get(mark.line().saturating_sub(1)) else {
            return text.len();
        };
        let line = &text[line_start..];
        let in_line = line
            .char_indices()
            .nth(mark.col())
            .map_or(line.len(), |(i, _)| i);
        line_start + in_line
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

    #[test]
    fn syntax_error_and_duplicates_are_located() {
        let err = parse(&src("a: [1\n")).unwrap_err();
        assert!(err.0[0].location.as_deref().unwrap().starts_with("t.yaml:"));
        let err = parse(&src("a: 1\nb: 2\na: 3\n")).unwrap_err();
        assert_eq!(err.0[0].location.as_deref(), Some("t.yaml:3:1"));
    }
}
