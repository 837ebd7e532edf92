//! AST -> [`Module`]: names become handles, op names and attributes become [`Op`]s.
//!
//! Errors here are about names (undefined, duplicate, used before definition) and the shape of
//! an instruction's text (unknown op, missing or unexpected attributes, results without types).
//! Everything about types and operand kinds is the validator's.

use crate::ast::*;
use crate::attrs::{attr_keys, build_op, AttrProblem, AttrSource, AttrValue, OP_NAMES};
use crate::ir::*;
use crate::spans::{InstSpans, LayerSpans, SpanMap};
use std::collections::HashMap;
use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("undefined value `%{name}`")]
    UndefinedValue { name: String, span: Span },
    #[error("undefined constant `@{name}`")]
    UndefinedConst { name: String, span: Span },
    #[error("`%{name}` is used before it is defined")]
    UsedBeforeDefinition { name: String, span: Span, def: Span },
    #[error("{what} `{name}` is defined twice")]
    Duplicate {
        what: &'static str,
        name: String,
        span: Span,
        first: Span,
    },
    #[error("unknown op `{name}`")]
    UnknownOp { name: String, span: Span },
    #[error("`{op}` needs the attribute `{key}`")]
    MissingAttr {
        op: String,
        key: &'static str,
        span: Span,
    },
    #[error("`{op}` has no attribute `{key}`")]
    UnexpectedAttr { op: String, key: String, span: Span },
    #[error("attribute `{key}` is given twice")]
    DuplicateAttr {
        key: String,
        span: Span,
        first: Span,
    },
    #[error("attribute `{key}` has an invalid value")]
    InvalidAttr {
        key: &'static str,
        expected: &'static str,
        span: Span,
    },
    #[error("{results} result(s) but {types} type(s)")]
    ResultTypes {
        results: usize,
        types: usize,
        span: Span,
    },
    #[error("layer `{name}` has no `return`")]
    MissingReturn { name: String, span: Span },
}

impl ResolveError {
    pub fn span(&self) -> Span {
        use ResolveError::*;
        match self {
            UndefinedValue { span, .. }
            | UndefinedConst { span, .. }
            | UsedBeforeDefinition { span, .. }
            | Duplicate { span, .. }
            | UnknownOp { span, .. }
            | MissingAttr { span, .. }
            | UnexpectedAttr { span, .. }
            | DuplicateAttr { span, .. }
            | InvalidAttr { span, .. }
            | ResultTypes { span, .. }
            | MissingReturn { span, .. } => span.clone(),
        }
    }

    /// What the primary label under the span says.
    pub fn label(&self) -> String {
        use ResolveError::*;
        match self {
            UndefinedValue { .. } => "not an input, state or result of this layer".into(),
            UndefinedConst { .. } => "not in the constant table".into(),
            UsedBeforeDefinition { .. } => "used here".into(),
            Duplicate { .. } => "defined again here".into(),
            UnknownOp { .. } => format!("expected one of: {}", OP_NAMES.join(", ")),
            MissingAttr { key, .. } => format!("add `{key}=...`"),
            UnexpectedAttr { .. } => "remove this attribute".into(),
            DuplicateAttr { .. } => "given again here".into(),
            InvalidAttr { expected, .. } => format!("expected {expected}"),
            ResultTypes { .. } => "give one type per result".into(),
            MissingReturn { .. } => "expected `return %output, ...` before `}`".into(),
        }
    }

    /// A second place the error involves, with its label.
    pub fn related(&self) -> Option<(Span, &'static str)> {
        match self {
            ResolveError::UsedBeforeDefinition { def, .. } => Some((def.clone(), "defined here")),
            ResolveError::Duplicate { first, .. } => Some((first.clone(), "first defined here")),
            ResolveError::DuplicateAttr { first, .. } => Some((first.clone(), "first given here")),
            _ => None,
        }
    }
}

/// Resolves a parsed module; on success also returns where each entity was written.
pub fn resolve(ast: &AstModule) -> Result<(Module, SpanMap), Vec<ResolveError>> {
    let mut errors = Vec::new();
    let mut module = Module::default();
    let mut spans = SpanMap::default();
    let mut const_ids: HashMap<&str, ConstId> = HashMap::new();
    for c in &ast.consts {
        if let Some(first) = const_ids.get(c.name.node.as_str()) {
            errors.push(ResolveError::Duplicate {
                what: "constant",
                name: c.name.node.clone(),
                span: c.name.span.clone(),
                first: spans.consts[first.index()].clone(),
            });
        }
        const_ids
            .entry(&c.name.node)
            .or_insert(ConstId(module.consts.len() as u32));
        module.consts.push(Const {
            name: c.name.node.clone(),
            ty: c.ty.node.clone(),
            data: c
                .data
                .node
                .clone()
                .map_or(ConstData::Extern, ConstData::Inline),
        });
        spans.consts.push(c.name.span.clone());
        spans.const_data.push(c.data.span.clone());
    }
    let mut layer_names: HashMap<&str, Span> = HashMap::new();
    for (k, layer) in ast.layers.iter().enumerate() {
        // A name may repeat right after itself: the context buckets of one stage (validated).
        let bucket = k > 0 && ast.layers[k - 1].name.node == layer.name.node;
        if let Some(first) = layer_names
            .get(layer.name.node.as_str())
            .filter(|_| !bucket)
        {
            errors.push(ResolveError::Duplicate {
                what: "layer",
                name: layer.name.node.clone(),
                span: layer.name.span.clone(),
                first: first.clone(),
            });
        }
        layer_names
            .entry(&layer.name.node)
            .or_insert(layer.name.span.clone());
        let (l, s) = LayerResolver {
            consts: &const_ids,
            errors: &mut errors,
        }
        .layer(layer);
        module.layers.push(l);
        spans.layers.push(s);
    }
    if errors.is_empty() {
        Ok((module, spans))
    } else {
        Err(errors)
    }
}

struct LayerResolver<'m, 'e> {
    consts: &'m HashMap<&'m str, ConstId>,
    errors: &'e mut Vec<ResolveError>,
}

impl LayerResolver<'_, '_> {
    fn layer(&mut self, ast: &AstLayer) -> (Layer, LayerSpans) {
        let mut layer = Layer {
            name: ast.name.node.clone(),
            values: Vec::new(),
            inputs: Vec::new(),
            states: Vec::new(),
            insts: Vec::new(),
            outputs: Vec::new(),
        };
        let mut spans = LayerSpans {
            name: ast.name.span.clone(),
            ..LayerSpans::default()
        };
        // name -> (value, the instruction defining it, if any)
        let mut names: HashMap<String, (ValueId, Option<usize>)> = HashMap::new();
        let mut define = |layer: &mut Layer,
                          spans: &mut LayerSpans,
                          errors: &mut Vec<ResolveError>,
                          name: &Spanned<String>,
                          ty: &Spanned<crate::TensorType>,
                          def: ValueDef| {
            let id = ValueId(layer.values.len() as u32);
            let inst = match def {
                ValueDef::Inst { inst, .. } => Some(inst),
                _ => None,
            };
            if let Some((first, _)) = names.get(&name.node) {
                errors.push(ResolveError::Duplicate {
                    what: "value",
                    name: format!("%{}", name.node),
                    span: name.span.clone(),
                    first: spans.values[first.index()].clone(),
                });
            } else {
                names.insert(name.node.clone(), (id, inst));
            }
            layer.values.push(ValueData {
                name: name.node.clone(),
                ty: ty.node.clone(),
                def,
            });
            spans.values.push(name.span.clone());
            spans.value_types.push(ty.span.clone());
            id
        };
        let inputs = ast
            .inputs
            .iter()
            .enumerate()
            .map(|(k, b)| (b, ValueDef::Input(k)));
        let states = ast
            .states
            .iter()
            .enumerate()
            .map(|(k, b)| (b, ValueDef::State(k)));
        for (b, def) in inputs.chain(states) {
            let id = define(&mut layer, &mut spans, self.errors, &b.name, &b.ty, def);
            match def {
                ValueDef::Input(_) => layer.inputs.push(id),
                _ => layer.states.push(id),
            }
        }
        for (n, inst) in ast.insts.iter().enumerate() {
            if inst.results.len() != inst.types.len() {
                self.errors.push(ResolveError::ResultTypes {
                    results: inst.results.len(),
                    types: inst.types.len(),
                    span: inst.types[0].span.start..inst.types[inst.types.len() - 1].span.end,
                });
            }
            let results = inst
                .results
                .iter()
                .enumerate()
                .map(|(r, name)| {
                    let ty = inst
                        .types
                        .get(r)
                        .unwrap_or(&inst.types[inst.types.len() - 1]);
                    define(
                        &mut layer,
                        &mut spans,
                        self.errors,
                        name,
                        ty,
                        ValueDef::Inst { inst: n, result: r },
                    )
                })
                .collect();
            layer.insts.push(Inst {
                op: Op::Argmax,
                args: Vec::new(),
                results,
            });
        }
        let lookup =
            |errors: &mut Vec<ResolveError>, name: &str, span: &Span, at: usize| match names
                .get(name)
            {
                Some(&(id, Some(def))) if def >= at => {
                    errors.push(ResolveError::UsedBeforeDefinition {
                        name: name.to_string(),
                        span: span.clone(),
                        def: spans.values[id.index()].clone(),
                    });
                    None
                }
                Some(&(id, _)) => Some(id),
                None => {
                    errors.push(ResolveError::UndefinedValue {
                        name: name.to_string(),
                        span: span.clone(),
                    });
                    None
                }
            };
        let mut inst_spans = Vec::new();
        for (n, inst) in ast.insts.iter().enumerate() {
            let mut args = Vec::new();
            for arg in &inst.args {
                let resolved = match &arg.node {
                    AstOperand::Value(name) => {
                        lookup(self.errors, name, &arg.span, n).map(Operand::Value)
                    }
                    AstOperand::Const(name) => self.constant(name, &arg.span).map(Operand::Const),
                };
                args.extend(resolved);
            }
            if let Some(op) = self.op(inst) {
                layer.insts[n].op = op;
            }
            layer.insts[n].args = args;
            inst_spans.push(InstSpans {
                whole: inst.span.clone(),
                op: inst.op.span.clone(),
                args: inst.args.iter().map(|a| a.span.clone()).collect(),
                attrs: inst
                    .attrs
                    .iter()
                    .map(|a| (a.key.node.clone(), a.key.span.start..a.value.span.end))
                    .collect(),
                types: inst.types.iter().map(|t| t.span.clone()).collect(),
            });
        }
        spans.insts = inst_spans;
        match &ast.outputs {
            Some(outputs) => {
                for out in &outputs.node {
                    if let Some(id) = lookup(self.errors, &out.node, &out.span, usize::MAX) {
                        layer.outputs.push(id);
                        spans.outputs.push(out.span.clone());
                    }
                }
            }
            None => self.errors.push(ResolveError::MissingReturn {
                name: ast.name.node.clone(),
                span: ast.name.span.clone(),
            }),
        }
        (layer, spans)
    }

    fn constant(&mut self, name: &str, span: &Span) -> Option<ConstId> {
        let id = self.consts.get(name).copied();
        if id.is_none() {
            self.errors.push(ResolveError::UndefinedConst {
                name: name.to_string(),
                span: span.clone(),
            });
        }
        id
    }

    fn op(&mut self, inst: &AstInst) -> Option<Op> {
        let name = &inst.op.node;
        let Some(keys) = attr_keys(name) else {
            self.errors.push(ResolveError::UnknownOp {
                name: name.clone(),
                span: inst.op.span.clone(),
            });
            return None;
        };
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut attrs = Vec::new();
        let mut complete = true;
        for a in &inst.attrs {
            let span = a.key.span.start..a.value.span.end;
            if !keys.contains(&a.key.node.as_str()) {
                self.errors.push(ResolveError::UnexpectedAttr {
                    op: name.clone(),
                    key: a.key.node.clone(),
                    span,
                });
                complete = false;
                continue;
            }
            if let Some(first) = seen.get(a.key.node.as_str()) {
                self.errors.push(ResolveError::DuplicateAttr {
                    key: a.key.node.clone(),
                    span,
                    first: first.clone(),
                });
                complete = false;
                continue;
            }
            seen.insert(&a.key.node, span.clone());
            let value = match &a.value.node {
                AstAttrValue::Int(v) => AttrValue::Int(*v),
                AstAttrValue::List(v) => AttrValue::List(v.clone()),
                AstAttrValue::Const(c) => match self.constant(c, &a.value.span) {
                    Some(id) => AttrValue::Const(id),
                    None => {
                        complete = false;
                        continue;
                    }
                },
            };
            attrs.push(TakenAttr {
                key: a.key.node.clone(),
                value: Some(value),
                span,
            });
        }
        for &key in keys {
            if !seen.contains_key(key) {
                self.errors.push(ResolveError::MissingAttr {
                    op: name.clone(),
                    key,
                    span: inst.op.span.clone(),
                });
                complete = false;
            }
        }
        if !complete {
            return None;
        }
        let mut source = Attrs(attrs);
        match build_op(name, &mut source).expect("known op") {
            Ok(op) => Some(op),
            Err(AttrProblem::Missing(key)) => {
                self.errors.push(ResolveError::MissingAttr {
                    op: name.clone(),
                    key,
                    span: inst.op.span.clone(),
                });
                None
            }
            Err(AttrProblem::Invalid { key, expected }) => {
                let span = source
                    .0
                    .iter()
                    .find(|a| a.key == key)
                    .map_or(inst.op.span.clone(), |a| a.span.clone());
                self.errors.push(ResolveError::InvalidAttr {
                    key,
                    expected,
                    span,
                });
                None
            }
        }
    }
}

struct TakenAttr {
    key: String,
    value: Option<AttrValue>,
    span: Span,
}

struct Attrs(Vec<TakenAttr>);

impl AttrSource for Attrs {
    fn take(&mut self, key: &'static str) -> Option<AttrValue> {
        self.0
            .iter_mut()
            .find(|a| a.key == key)
            .and_then(|a| a.value.take())
    }
}
