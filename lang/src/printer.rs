//! [`Module`] -> canonical text, the form [`crate::parse`] reads back: constants first, then
//! layers, each section after one blank line, two-space indentation, operands before
//! attributes in a fixed order. Comments are not kept.

use crate::attrs::{attributes, AttrValue};
use crate::ir::*;
use std::fmt::{self, Write};

pub fn print(module: &Module) -> String {
    module.to_string()
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "zkir {IR_VERSION}")?;
        if !self.consts.is_empty() {
            writeln!(f)?;
        }
        for c in &self.consts {
            write!(f, "const @{}: {} = ", c.name, c.ty)?;
            match &c.data {
                ConstData::Inline(data) => write_list(f, data)?,
                ConstData::Extern => f.write_str("extern")?,
            }
            writeln!(f)?;
        }
        for layer in &self.layers {
            writeln!(f)?;
            write_layer(f, self, layer)?;
        }
        Ok(())
    }
}

fn write_list(f: &mut impl Write, items: &[i64]) -> fmt::Result {
    f.write_char('[')?;
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{v}")?;
    }
    f.write_char(']')
}

fn write_layer(f: &mut fmt::Formatter<'_>, module: &Module, layer: &Layer) -> fmt::Result {
    let name = |v: ValueId| &layer.value(v).name;
    write!(f, "layer {}(", layer.name)?;
    for (i, &v) in layer.inputs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "%{}: {}", name(v), layer.value(v).ty)?;
    }
    writeln!(f, ") {{")?;
    for &s in &layer.states {
        writeln!(f, "  state %{}: {}", name(s), layer.value(s).ty)?;
    }
    for inst in &layer.insts {
        f.write_str("  ")?;
        for (i, &r) in inst.results.iter().enumerate() {
            write!(f, "{}%{}", if i > 0 { ", " } else { "" }, name(r))?;
        }
        write!(f, " = {}", inst.op.name())?;
        let mut sep = " ";
        for arg in &inst.args {
            match *arg {
                Operand::Value(v) => write!(f, "{sep}%{}", name(v))?,
                Operand::Const(c) => write!(f, "{sep}@{}", module.constant(c).name)?,
            }
            sep = ", ";
        }
        for (key, value) in attributes(&inst.op) {
            write!(f, "{sep}{key}=")?;
            match value {
                AttrValue::Int(v) => write!(f, "{v}")?,
                AttrValue::List(v) => write_list(f, &v)?,
                AttrValue::Const(c) => write!(f, "@{}", module.constant(c).name)?,
            }
            sep = ", ";
        }
        f.write_str(" :")?;
        for (i, &r) in inst.results.iter().enumerate() {
            write!(f, "{}{}", if i > 0 { ", " } else { " " }, layer.value(r).ty)?;
        }
        writeln!(f)?;
    }
    f.write_str("  return")?;
    for (i, &o) in layer.outputs.iter().enumerate() {
        write!(f, "{}%{}", if i > 0 { ", " } else { " " }, name(o))?;
    }
    writeln!(f, "\n}}")
}
