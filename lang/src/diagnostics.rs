//! Every front-end error becomes a codespan-reporting [`Diagnostic`] here, in one place.

use crate::parser::SyntaxError;
use crate::resolve::ResolveError;
use crate::spans::SpanMap;
use crate::validate::{Location, ValidationError};
use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor::WriteColor};
use thiserror::Error;

/// Anything wrong with an IR text: its syntax, its names, or an invariant of the validator.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Error {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Validation(#[from] ValidationError),
}

impl Error {
    /// The diagnostic for this error; `spans` locate validator errors in the text.
    pub fn to_diagnostic(&self, spans: Option<&SpanMap>) -> Diagnostic<()> {
        match self {
            Error::Syntax(e) => Diagnostic::error()
                .with_message(format!("syntax error: expected {}", e.expected))
                .with_labels(vec![Label::primary((), e.span.clone())
                    .with_message(format!("expected {}", e.expected))]),
            Error::Resolve(e) => {
                let mut labels = vec![Label::primary((), e.span()).with_message(e.label())];
                if let Some((span, text)) = e.related() {
                    labels.push(Label::secondary((), span).with_message(text));
                }
                Diagnostic::error()
                    .with_message(e.to_string())
                    .with_labels(labels)
            }
            Error::Validation(e) => {
                let d = Diagnostic::error().with_message(format!("invalid IR: {e}"));
                match spans.and_then(|s| s.span(&e.location)) {
                    Some(span) => {
                        d.with_labels(vec![Label::primary((), span).with_message(e.label())])
                    }
                    None if e.location == Location::Module => d,
                    None => d.with_notes(vec![format!("at {}", e.location)]),
                }
            }
        }
    }
}

/// Renders errors as plain text, the way `zkc check` prints them without colour.
pub fn render(file_name: &str, source: &str, errors: &[Error], spans: Option<&SpanMap>) -> String {
    let file = SimpleFile::new(file_name, source);
    let config = term::Config::default();
    let mut out = String::new();
    for e in errors {
        let text = term::emit_into_string(&config, &file, &e.to_diagnostic(spans))
            .unwrap_or_else(|err| format!("error: {e} (and the span could not be shown: {err})\n"));
        out.push_str(&text);
    }
    out
}

/// Writes errors to a terminal, in colour where it supports it.
pub fn emit(
    writer: &mut dyn WriteColor,
    file_name: &str,
    source: &str,
    errors: &[Error],
    spans: Option<&SpanMap>,
) -> std::io::Result<()> {
    let file = SimpleFile::new(file_name, source);
    let config = term::Config::default();
    for e in errors {
        term::emit_to_write_style(writer, &config, &file, &e.to_diagnostic(spans))
            .map_err(std::io::Error::other)?;
    }
    Ok(())
}
