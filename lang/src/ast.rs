//! The syntax tree: what the text says, names unresolved, every piece with its byte span.

use crate::types::TensorType;
use std::ops::Range;

pub type Span = Range<usize>;

#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AstModule {
    pub consts: Vec<AstConst>,
    pub layers: Vec<AstLayer>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AstConst {
    pub name: Spanned<String>,
    pub ty: Spanned<TensorType>,
    pub data: Spanned<Option<Vec<i64>>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AstBinding {
    pub name: Spanned<String>,
    pub ty: Spanned<TensorType>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AstLayer {
    pub name: Spanned<String>,
    pub inputs: Vec<AstBinding>,
    pub states: Vec<AstBinding>,
    pub insts: Vec<AstInst>,
    pub outputs: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AstInst {
    pub results: Vec<Spanned<String>>,
    pub op: Spanned<String>,
    pub args: Vec<Spanned<AstOperand>>,
    pub attrs: Vec<AstAttr>,
    pub types: Vec<Spanned<TensorType>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AstOperand {
    Value(String),
    Const(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct AstAttr {
    pub key: Spanned<String>,
    pub value: Spanned<AstAttrValue>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AstAttrValue {
    Int(i64),
    List(Vec<i64>),
    Const(String),
}
