//! Diagnostics: every problem names the file, line and column, shows the line and says what
//! to do. Rendered by miette; the `[file:line:col]` header is the stable form tests assert on.

use std::fmt;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode,
    SourceSpan,
};

/// A byte range in a source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

impl Span {
    pub fn new(start: usize, len: usize) -> Self {
        Span { start, len }
    }
}

impl From<Span> for SourceSpan {
    fn from(span: Span) -> Self {
        SourceSpan::new(span.start.into(), span.len)
    }
}

/// A named text (a workflow file, an inputs file) that diagnostics point into.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: Arc<str>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column of a byte offset, as shown in diagnostics.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

/// One problem found in a workflow, an inputs file or a `--input` value.
#[derive(Debug)]
pub struct Problem {
    pub message: String,
    pub label: String,
    pub help: Option<String>,
    source: Option<NamedSource<Arc<str>>>,
    span: Option<Span>,
    /// `file:line:col`, kept for sorting and for plain-text consumers.
    pub location: Option<String>,
}

impl Problem {
    /// A problem with no place in a file (e.g. a bad `--input` value).
    pub fn plain(message: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            label: String::new(),
            help: None,
            source: None,
            span: None,
            location: None,
        }
    }

    /// A problem at `span` of `source`.
    pub fn at(source: &Source, span: Span, message: impl Into<String>) -> Self {
        let (line, col) = source.line_col(span.start);
        Problem {
            message: message.into(),
            label: String::from("here"),
            help: None,
            source: Some(NamedSource::new(source.name.clone(), source.text.clone())),
            span: Some(span),
            location: Some(format!("{}:{line}:{col}", source.name)),
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds "did you mean `x`?" when one of `candidates` is close to `word`.
    pub fn suggest<'a>(self, word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        match did_you_mean(word, candidates) {
            Some(best) => self.help(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    fn span_start(&self) -> usize {
        self.span.map_or(0, |s| s.start)
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.label.clone()),
            span,
        ))))
    }
}

/// All problems found; never empty when returned as an error.
#[derive(Debug, Default)]
pub struct Diagnostics(pub Vec<Problem>);

impl Diagnostics {
    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// Ok(value) when nothing was found, else all problems in file order.
    pub fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            return Ok(value);
        }
        self.0.sort_by_key(|p| {
            (
                p.source.as_ref().map(|s| s.name().to_string()),
                p.span_start(),
            )
        });
        Err(self)
    }

    /// Every problem rendered with its source line; colored only when `color`.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
        let mut out = String::new();
        for problem in &self.0 {
            if handler.render_report(&mut out, problem).is_err() {
                out.push_str(&problem.message);
            }
            out.push('\n');
        }
        let n = self.0.len();
        out.push_str(&format!(
            "{n} error{}; nothing was changed\n",
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

impl From<Problem> for Diagnostics {
    fn from(problem: Problem) -> Self {
        Diagnostics(vec![problem])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0 {
            match &problem.location {
                Some(loc) => writeln!(f, "{loc}: {}", problem.message)?,
                None => writeln!(f, "{}", problem.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
