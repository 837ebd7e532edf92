//! Where each entity of a parsed module was written, kept beside the [`crate::Module`] so that
//! the IR itself carries no source positions.

use crate::ast::Span;
use crate::validate::Location;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanMap {
    /// Per constant: its name, and its data (`[...]` or `extern`).
    pub consts: Vec<Span>,
    pub const_data: Vec<Span>,
    pub layers: Vec<LayerSpans>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerSpans {
    pub name: Span,
    /// Per value: where it is defined, and its type annotation.
    pub values: Vec<Span>,
    pub value_types: Vec<Span>,
    pub insts: Vec<InstSpans>,
    pub outputs: Vec<Span>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstSpans {
    pub whole: Span,
    pub op: Span,
    pub args: Vec<Span>,
    /// Each attribute's key and its `key=value` span.
    pub attrs: Vec<(String, Span)>,
    pub types: Vec<Span>,
}

impl SpanMap {
    /// Where a validator [`Location`] was written, if it was written at all.
    pub fn span(&self, location: &Location) -> Option<Span> {
        let layer = |l: &usize| self.layers.get(*l);
        let inst = |l: &usize, n: &usize| layer(l).and_then(|s| s.insts.get(*n));
        match location {
            Location::Module => None,
            Location::Const(c) => self.consts.get(c.index()).cloned(),
            Location::ConstData(c) => self.const_data.get(c.index()).cloned(),
            Location::Layer(l) => layer(l).map(|s| s.name.clone()),
            Location::Value { layer: l, value } => {
                layer(l).and_then(|s| s.values.get(value.index()).cloned())
            }
            Location::Inst { layer: l, inst: n } => inst(l, n).map(|s| s.whole.clone()),
            Location::Arg {
                layer: l,
                inst: n,
                arg,
            } => inst(l, n).and_then(|s| s.args.get(*arg).cloned().or(Some(s.whole.clone()))),
            Location::Attr {
                layer: l,
                inst: n,
                key,
            } => inst(l, n).map(|s| {
                s.attrs
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(s.op.clone(), |(_, span)| span.clone())
            }),
            Location::ResultType {
                layer: l,
                inst: n,
                result,
            } => inst(l, n).and_then(|s| s.types.get(*result).cloned()),
            Location::Output { layer: l, index } => {
                layer(l).and_then(|s| s.outputs.get(*index).cloned())
            }
        }
    }
}
