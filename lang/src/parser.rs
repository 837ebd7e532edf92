//! Text -> [`AstModule`], with nom.
//!
//! The grammar is line-oriented (one declaration or instruction per line, `;` starts a comment),
//! which makes error recovery simple and total: a line that does not parse yields one
//! [`SyntaxError`] and parsing goes on with the next line, so one run reports every bad line.
//! Nothing here recurses on the input, so no input can exhaust the stack, and every loop consumes
//! input, so no input can hang the parser.

use crate::ast::*;
use crate::types::{DType, Scale, TensorType};
use nom::branch::alt;
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{char, digit1, space0};
use nom::combinator::{opt, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Parser};
use thiserror::Error;

/// A line that is not well formed: `expected` says what would have been accepted at `span`.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("expected {expected}")]
pub struct SyntaxError {
    pub span: Span,
    pub expected: String,
}

/// nom's error for one line: the furthest position reached and what was expected there.
#[derive(Debug)]
struct LineError<'a> {
    at: &'a str,
    expected: &'static str,
}

impl<'a> ParseError<&'a str> for LineError<'a> {
    fn from_error_kind(at: &'a str, _: ErrorKind) -> Self {
        LineError { at, expected: "" }
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }

    fn or(self, other: Self) -> Self {
        if other.at.len() < self.at.len() || self.expected.is_empty() {
            other
        } else {
            self
        }
    }
}

type R<'a, T> = IResult<&'a str, T, LineError<'a>>;

fn fail<'a, T>(at: &'a str, expected: &'static str) -> R<'a, T> {
    Err(nom::Err::Error(LineError { at, expected }))
}

/// Runs `p` after optional blanks; if it fails without getting past its first token, the error
/// says `expected` at that token.
fn tok<'a, T>(
    expected: &'static str,
    mut p: impl Parser<&'a str, Output = T, Error = LineError<'a>>,
) -> impl FnMut(&'a str) -> R<'a, T> {
    move |i: &'a str| {
        let (i, _) = space0(i)?;
        match p.parse(i) {
            Err(nom::Err::Error(e)) if e.expected.is_empty() || e.at.len() >= i.len() => {
                fail(i, expected)
            }
            other => other,
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Parses one source text. Spans are byte offsets into `src`.
pub fn parse_ast(src: &str) -> Result<AstModule, Vec<SyntaxError>> {
    LineParser { src }.module()
}

#[derive(Clone, Copy)]
struct LineParser<'a> {
    src: &'a str,
}

enum Scope {
    Header,
    Top,
    Layer(AstLayer),
    /// Inside a layer whose header did not parse: its lines are skipped up to the `}`.
    BrokenLayer,
}

impl<'a> LineParser<'a> {
    fn offset(self, rest: &str) -> usize {
        rest.as_ptr() as usize - self.src.as_ptr() as usize
    }

    fn span(self, before: &str, after: &str) -> Span {
        self.offset(before)..self.offset(after)
    }

    fn spanned<T>(
        self,
        mut p: impl FnMut(&'a str) -> R<'a, T>,
    ) -> impl FnMut(&'a str) -> R<'a, Spanned<T>> {
        move |i: &'a str| {
            let (i, _) = space0(i)?;
            let (rest, node) = p(i)?;
            Ok((
                rest,
                Spanned {
                    node,
                    span: self.span(i, rest),
                },
            ))
        }
    }

    fn module(self) -> Result<AstModule, Vec<SyntaxError>> {
        let mut module = AstModule::default();
        let mut errors = Vec::new();
        let mut scope = Scope::Header;
        let mut line_start = 0;
        for raw in self.src.split_inclusive('\n') {
            let start = line_start;
            line_start += raw.len();
            let code = raw.split(';').next().unwrap_or("").trim_end();
            let first = code.split_whitespace().next().unwrap_or("");
            if first.is_empty() {
                continue;
            }
            let result = match &mut scope {
                Scope::Header => {
                    scope = Scope::Top;
                    let header = self.whole(code, |i| self.header(i));
                    if first == "zkir" {
                        header
                    } else {
                        // No header at all: report it, and read the line as what it is.
                        errors.extend(header.err());
                        self.top_level(code, &mut module, &mut scope)
                    }
                }
                Scope::Layer(layer) if first == "const" || first == "layer" => {
                    let name = layer.name.clone();
                    errors.push(SyntaxError {
                        span: name.span,
                        expected: format!(
                            "`}}` to close layer `{}` before line {}",
                            name.node,
                            1 + self.src[..start].matches('\n').count()
                        ),
                    });
                    let Scope::Layer(layer) = std::mem::replace(&mut scope, Scope::Top) else {
                        unreachable!("matched a layer scope")
                    };
                    module.layers.push(layer);
                    self.top_level(code, &mut module, &mut scope)
                }
                Scope::Top => self.top_level(code, &mut module, &mut scope),
                Scope::BrokenLayer if first == "const" || first == "layer" => {
                    scope = Scope::Top;
                    self.top_level(code, &mut module, &mut scope)
                }
                Scope::BrokenLayer => {
                    if first == "}" {
                        scope = Scope::Top;
                    }
                    Ok(())
                }
                Scope::Layer(layer) => match first {
                    "}" => self.whole(code, |i| tok("`}`", char('}'))(i)).map(|_| {
                        let Scope::Layer(layer) = std::mem::replace(&mut scope, Scope::Top) else {
                            unreachable!("matched a layer scope")
                        };
                        module.layers.push(layer);
                    }),
                    _ if layer.outputs.is_some() => Err(SyntaxError {
                        span: self.offset(code.trim_start())
                            ..self.offset(code.trim_start()) + first.len(),
                        expected: "`}`: `return` ends a layer".into(),
                    }),
                    "state" if !layer.insts.is_empty() => Err(SyntaxError {
                        span: self.offset(code.trim_start())..self.offset(code.trim_start()) + 5,
                        expected: "an instruction: state declarations come before instructions"
                            .into(),
                    }),
                    "state" => self
                        .whole(code, |i| {
                            let (i, _) = tok("`state`", tag("state"))(i)?;
                            self.binding(i)
                        })
                        .map(|b| layer.states.push(b)),
                    "return" => self
                        .whole(code, |i| {
                            let (i, _) = tok("`return`", tag("return"))(i)?;
                            self.spanned(|i| self.comma_list(i, |i| self.value_name(i)))(i)
                        })
                        .map(|r| layer.outputs = Some(r)),
                    _ => self
                        .whole(code, |i| self.inst(i))
                        .map(|inst| layer.insts.push(inst)),
                },
            };
            if let Err(e) = result {
                errors.push(e);
            }
        }
        match scope {
            Scope::Header => errors.push(SyntaxError {
                span: 0..0,
                expected: format!("the header `zkir {}`", crate::ir::IR_VERSION),
            }),
            Scope::Layer(layer) => {
                errors.push(SyntaxError {
                    span: layer.name.span.clone(),
                    expected: format!(
                        "`}}` to close layer `{}` before the end of the file",
                        layer.name.node
                    ),
                });
                module.layers.push(layer);
            }
            Scope::Top | Scope::BrokenLayer => {}
        }
        if errors.is_empty() {
            Ok(module)
        } else {
            Err(errors)
        }
    }

    fn top_level(
        self,
        code: &'a str,
        module: &mut AstModule,
        scope: &mut Scope,
    ) -> Result<(), SyntaxError> {
        match code.split_whitespace().next() {
            Some("const") => self
                .whole(code, |i| self.constant(i))
                .map(|c| module.consts.push(c)),
            Some("layer") => {
                let header = self.whole(code, |i| self.layer_header(i));
                *scope = match &header {
                    Ok(l) => Scope::Layer(l.clone()),
                    Err(_) => Scope::BrokenLayer,
                };
                header.map(|_| ())
            }
            _ => self.whole(code, |i| fail(i.trim_start(), "`const` or `layer`")),
        }
    }

    /// Runs a line parser over the whole line; what it leaves over is an error.
    fn whole<T>(
        self,
        code: &'a str,
        p: impl FnOnce(&'a str) -> R<'a, T>,
    ) -> Result<T, SyntaxError> {
        let err = |e: LineError<'a>| {
            let start = self.offset(e.at);
            let len =
                e.at.find(|c: char| c.is_whitespace() || ",:=()[]{}".contains(c))
                    .unwrap_or(e.at.len());
            let len = if len == 0 {
                e.at.chars().next().map_or(0, char::len_utf8)
            } else {
                len
            };
            SyntaxError {
                span: start..start + len,
                expected: if e.expected.is_empty() {
                    "the end of the line".into()
                } else {
                    e.expected.into()
                },
            }
        };
        match p(code) {
            Ok((rest, value)) => {
                let rest = rest.trim_start();
                if rest.is_empty() {
                    Ok(value)
                } else {
                    Err(err(LineError {
                        at: rest,
                        expected: "the end of the line",
                    }))
                }
            }
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(err(e)),
            Err(nom::Err::Incomplete(_)) => Err(err(LineError {
                at: "",
                expected: "more input",
            })),
        }
    }

    fn header(self, i: &'a str) -> R<'a, ()> {
        let (i, _) = tok("the header `zkir 1`", tag("zkir"))(i)?;
        let (rest, version) = tok("the IR version number", |i| self.int(i))(i)?;
        if version != crate::ir::IR_VERSION as i64 {
            return fail(
                i.trim_start(),
                "IR version 1 (the only version this zkc reads)",
            );
        }
        Ok((rest, ()))
    }

    fn constant(self, i: &'a str) -> R<'a, AstConst> {
        let (i, _) = tok("`const`", tag("const"))(i)?;
        let (i, name) = self.spanned(|i| self.const_name(i))(i)?;
        let (i, _) = tok("`:`", char(':'))(i)?;
        let (i, ty) = self.ty(i)?;
        let (i, _) = tok("`=`", char('='))(i)?;
        let (i, data) = self.spanned(tok(
            "inline data `[1, 2, ...]` or `extern`",
            alt((
                |i| self.int_list(i).map(|(i, v)| (i, Some(v))),
                |i| tag("extern").parse(i).map(|(i, _)| (i, None)),
            )),
        ))(i)?;
        Ok((i, AstConst { name, ty, data }))
    }

    fn layer_header(self, i: &'a str) -> R<'a, AstLayer> {
        let (i, _) = tok("`layer`", tag("layer"))(i)?;
        let (i, name) = self.spanned(|i| {
            tok("a layer name", recognize(take_while1(is_name_char)))(i)
                .map(|(r, s)| (r, s.to_string()))
        })(i)?;
        let (i, _) = tok("`(`", char('('))(i)?;
        let (i, inputs) = self.comma_list(i, |i| self.binding(i))?;
        let (i, _) = tok("`)` or another input `%name: type`", char(')'))(i)?;
        let (i, _) = tok("`{`", char('{'))(i)?;
        Ok((
            i,
            AstLayer {
                name,
                inputs,
                states: Vec::new(),
                insts: Vec::new(),
                outputs: None,
            },
        ))
    }

    fn binding(self, i: &'a str) -> R<'a, AstBinding> {
        let (i, name) = self.value_name(i)?;
        let (i, _) = tok("`:`", char(':'))(i)?;
        let (i, ty) = self.ty(i)?;
        Ok((i, AstBinding { name, ty }))
    }

    fn inst(self, line: &'a str) -> R<'a, AstInst> {
        let (i, results) = self.comma_list(line, |i| self.value_name(i))?;
        if results.is_empty() {
            return fail(
                i.trim_start(),
                "an instruction `%result = op operands, attributes : type`",
            );
        }
        let (i, _) = tok("`=` or another result `%name`", char('='))(i)?;
        let (i, op) = self.spanned(|i| {
            tok(
                "an op name",
                take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_'),
            )(i)
            .map(|(r, s)| (r, s.to_string()))
        })(i)?;
        let mut args = Vec::new();
        let mut attrs = Vec::new();
        let mut i = i;
        let mut first = true;
        loop {
            let (rest, _) = space0(i)?;
            if rest.is_empty() || rest.starts_with(':') {
                break;
            }
            if !first {
                (i, _) = tok("`,` or `:` before the result type", char(','))(i)?;
            }
            first = false;
            let (rest, _) = space0(i)?;
            if rest.starts_with('%') || rest.starts_with('@') {
                if !attrs.is_empty() {
                    return fail(
                        rest,
                        "an attribute `key=value`: operands come before attributes",
                    );
                }
                let (rest, arg) = self.spanned(|i| self.operand(i))(i)?;
                args.push(arg);
                i = rest;
            } else {
                let (rest, attr) = self.attr(i)?;
                attrs.push(attr);
                i = rest;
            }
        }
        let (i, _) = tok("`:` and the result type", char(':'))(i)?;
        let (i, types) = self.comma_list(i, |i| self.ty(i))?;
        if types.is_empty() {
            return fail(i.trim_start(), "a result type such as `i8[1, 64] * 2^-4`");
        }
        let span = self.span(line.trim_start(), i);
        Ok((
            i,
            AstInst {
                results,
                op,
                args,
                attrs,
                types,
                span,
            },
        ))
    }

    fn operand(self, i: &'a str) -> R<'a, AstOperand> {
        alt((
            |i| {
                self.value_name(i)
                    .map(|(r, s)| (r, AstOperand::Value(s.node)))
            },
            |i| self.const_name(i).map(|(r, s)| (r, AstOperand::Const(s))),
        ))
        .parse(i)
    }

    fn attr(self, i: &'a str) -> R<'a, AstAttr> {
        let (i, key) = self.spanned(|i| {
            tok(
                "an operand `%value` / `@const` or an attribute `key=value`",
                take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_'),
            )(i)
            .map(|(r, s)| (r, s.to_string()))
        })(i)?;
        let (i, _) = tok("`=` after the attribute name", char('='))(i)?;
        let (i, value) = self.spanned(|i| {
            let (_, _) = space0(i)?;
            alt((
                |i| self.int(i).map(|(r, v)| (r, AstAttrValue::Int(v))),
                |i| self.int_list(i).map(|(r, v)| (r, AstAttrValue::List(v))),
                |i| self.const_name(i).map(|(r, v)| (r, AstAttrValue::Const(v))),
            ))
            .parse(i)
            .or_else(|e| match e {
                nom::Err::Failure(_) => Err(e),
                _ => fail(
                    i,
                    "an attribute value: an integer, `[integers]` or `@const`",
                ),
            })
        })(i)?;
        Ok((i, AstAttr { key, value }))
    }

    /// `%name`; the node carries the name's span for results and bindings.
    fn value_name(self, i: &'a str) -> R<'a, Spanned<String>> {
        let (i, _) = space0(i)?;
        let start = i;
        let (i, _) = tok("a value name `%name`", char('%'))(i)?;
        let (i, name) = take_while1::<_, &str, LineError>(is_name_char)(i)
            .or_else(|_| fail(i, "a name after `%`"))?;
        Ok((
            i,
            Spanned {
                node: name.to_string(),
                span: self.span(start, i),
            },
        ))
    }

    fn const_name(self, i: &'a str) -> R<'a, String> {
        let (i, _) = tok("a constant name `@name`", char('@'))(i)?;
        let (i, name) = take_while1::<_, &str, LineError>(is_name_char)(i)
            .or_else(|_| fail(i, "a name after `@`"))?;
        Ok((i, name.to_string()))
    }

    /// `item, item, ...`, possibly empty.
    fn comma_list<T>(self, i: &'a str, mut item: impl FnMut(&'a str) -> R<'a, T>) -> R<'a, Vec<T>> {
        let mut out = Vec::new();
        let mut i = match item(i) {
            Ok((rest, first)) => {
                out.push(first);
                rest
            }
            // An empty list, unless the first item got somewhere before failing: then its error
            // is the precise one.
            Err(nom::Err::Error(e)) if e.at.len() >= i.trim_start().len() => return Ok((i, out)),
            Err(e) => return Err(e),
        };
        loop {
            let Ok((rest, _)) = tok("`,`", char::<&str, LineError>(','))(i) else {
                return Ok((i, out));
            };
            let (rest, next) = item(rest)?;
            out.push(next);
            i = rest;
        }
    }

    fn int(self, i: &'a str) -> R<'a, i64> {
        let (rest, digits) = tok("an integer", recognize((opt(char('-')), digit1)))(i)?;
        match digits.parse() {
            Ok(v) => Ok((rest, v)),
            Err(_) => Err(nom::Err::Failure(LineError {
                at: i.trim_start(),
                expected: "an integer that fits in 64 bits",
            })),
        }
    }

    fn int_list(self, i: &'a str) -> R<'a, Vec<i64>> {
        let (i, _) = tok("`[`", char('['))(i)?;
        let (i, items) = self.comma_list(i, |i| self.int(i))?;
        let (i, _) = tok("`]` or `, integer`", char(']'))(i)?;
        Ok((i, items))
    }

    fn ty(self, i: &'a str) -> R<'a, Spanned<TensorType>> {
        let (i, _) = space0(i)?;
        let start = i;
        let (i, dtype) = tok("a type such as `i8[1, 64] * 2^-4`", |i| {
            alt((tag("i8"), tag("i16"), tag("i32"), tag("i64"))).parse(i)
        })(i)?;
        let dtype = DType::from_name(dtype).expect("matched a dtype name");
        let (i, _) = tok("`[` and the shape", char('['))(i)?;
        let (i, dims) = self.comma_list(i, |i| {
            let (rest, v) = self.int(i)?;
            match usize::try_from(v) {
                Ok(d) => Ok((rest, d)),
                Err(_) => Err(nom::Err::Failure(LineError {
                    at: i.trim_start(),
                    expected: "a dimension >= 0",
                })),
            }
        })?;
        let (i, _) = tok("`]` or `, dimension`", char(']'))(i)?;
        let (i, scale) = match tok("", char::<&str, LineError>('*'))(i) {
            Ok((i, _)) => self.scale(i)?,
            Err(_) => (i, Scale::ONE),
        };
        Ok((
            i,
            Spanned {
                node: TensorType::new(dtype, dims, scale),
                span: self.span(start, i),
            },
        ))
    }

    /// `2^e`, `m` or `m*2^e`.
    fn scale(self, i: &'a str) -> R<'a, Scale> {
        let (i, _) = space0(i)?;
        let start = i;
        let bad = || {
            nom::Err::Failure(LineError {
                at: start,
                expected: "a scale `2^e`, `m` or `m*2^e` with 0 < m < 2^64 and |e| <= 1024",
            })
        };
        let (i, exp) = match tag::<&str, &str, LineError>("2^")(i) {
            Ok((i, _)) => {
                let (i, e) = self.int(i)?;
                (i, (1u64, e))
            }
            Err(_) => {
                let (i, m) = tok("a scale `2^e`, `m` or `m*2^e`", digit1)(i)?;
                let m: u64 = m.parse().map_err(|_| bad())?;
                match (space0, char::<&str, LineError>('*'), space0, tag("2^")).parse(i) {
                    Ok((i, _)) => {
                        let (i, e) = self.int(i)?;
                        (i, (m, e))
                    }
                    Err(_) => (i, (m, 0)),
                }
            }
        };
        let scale = i32::try_from(exp.1)
            .ok()
            .and_then(|e| Scale::new(exp.0, e))
            .ok_or_else(bad)?;
        Ok((i, scale))
    }
}
