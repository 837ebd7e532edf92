//! zkc-lang: the integer IR that every stage of zkc speaks.
//!
//! Text in, [`Module`] out: [`parse`] builds an AST and resolves names with spans, [`validate`]
//! checks every invariant once so that later stages index without checks, [`print`] writes the
//! canonical text that [`parse`] reads back, and [`semantics`] defines what each op computes.
//! `docs/ir.md` is the reference for the text form.

pub mod ast;
pub mod attrs;
pub mod buckets;
pub mod diagnostics;
pub mod ir;
pub mod parser;
pub mod printer;
pub mod resolve;
pub mod semantics;
pub mod spans;
pub mod types;
pub mod validate;

pub use buckets::Stage;
pub use diagnostics::Error;
pub use ir::*;
pub use printer::print;
pub use spans::SpanMap;
pub use types::{DType, Scale, TensorType};
pub use validate::validate;

/// A module read from text, with where each entity was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub module: Module,
    pub spans: SpanMap,
}

/// Parses and resolves names; reports every syntax error, or else every name error.
pub fn parse(source: &str) -> Result<Parsed, Vec<Error>> {
    let ast = parser::parse_ast(source)
        .map_err(|es| es.into_iter().map(Error::from).collect::<Vec<_>>())?;
    let (module, spans) =
        resolve::resolve(&ast).map_err(|es| es.into_iter().map(Error::from).collect::<Vec<_>>())?;
    Ok(Parsed { module, spans })
}

/// [`parse`] and [`validate`]: what `zkc check` runs. Validation errors come with the spans
/// that locate them.
pub fn check(source: &str) -> Result<Parsed, (Vec<Error>, Option<SpanMap>)> {
    let parsed = parse(source).map_err(|e| (e, None))?;
    match validate(&parsed.module) {
        Ok(()) => Ok(parsed),
        Err(es) => Err((
            es.into_iter().map(Error::from).collect(),
            Some(parsed.spans),
        )),
    }
}
