//! Reading an IR file and reporting its errors, shared by the subcommands that take one.

use codespan_reporting::term::termcolor::{ColorChoice, StandardStream};
use std::io::IsTerminal;
use std::path::Path;
use zkc_lang::Parsed;

/// Reads and checks `path`; on failure prints the diagnostics to stderr.
pub fn load_checked(path: &Path) -> Option<(String, Parsed)> {
    let name = path.display().to_string();
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            return None;
        }
    };
    match zkc_lang::check(&source) {
        Ok(parsed) => Some((source, parsed)),
        Err((errors, spans)) => {
            let color = if std::io::stderr().is_terminal() {
                ColorChoice::Auto
            } else {
                ColorChoice::Never
            };
            let mut stderr = StandardStream::stderr(color);
            let shown =
                zkc_lang::diagnostics::emit(&mut stderr, &name, &source, &errors, spans.as_ref());
            if shown.is_err() {
                eprint!(
                    "{}",
                    zkc_lang::diagnostics::render(&name, &source, &errors, spans.as_ref())
                );
            }
            eprintln!("error: {name}: {} error(s)", errors.len());
            None
        }
    }
}

/// Prints `message` as an error at `span` of `source` (the file `name`), as the IR's own
/// diagnostics are printed: for rules checked outside `zkc_lang` (the model interface).
pub fn report_at(name: &str, source: &str, span: std::ops::Range<usize>, message: &str) {
    use codespan_reporting::diagnostic::{Diagnostic, Label};
    use codespan_reporting::files::SimpleFile;
    let file = SimpleFile::new(name, source);
    let diagnostic = Diagnostic::error()
        .with_message(message)
        .with_labels(vec![Label::primary((), span)]);
    let color = match std::io::stderr().is_terminal() {
        true => ColorChoice::Auto,
        false => ColorChoice::Never,
    };
    let config = codespan_reporting::term::Config::default();
    let mut stderr = StandardStream::stderr(color);
    let written =
        codespan_reporting::term::emit_to_write_style(&mut stderr, &config, &file, &diagnostic);
    if written.is_err() {
        eprintln!("error: {message}");
    }
}
