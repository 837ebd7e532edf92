//! What the backend requires of a module before it builds circuits, beyond the validator:
//!
//! - no value's magnitude can reach 2^250, computed statically from dtypes and constants, so no
//!   integer identity a gadget proves can wrap modulo the field (docs/ir.md §4.3);
//! - `layernorm` and `rmsnorm` inputs of at most 32 bits, softmax inputs at least as wide as `ln2`, and
//!   positions of at most 32 bits (the widths the gadgets are built for);
//! - a layer's states share one dtype and one number of slots, and every `kv_append` of a state
//!   writes at the same position value (they are committed together by one hash chain, `backend::cache`).

use thiserror::Error;
use zkc_lang::{ConstData, Layer, Module, Op, Operand, ValueDef};

#[derive(Debug, Error, PartialEq, Eq)]
#[error("layer `{layer}`, `%{value}`: {problem}")]
pub struct CircuitError {
    pub layer: String,
    pub value: String,
    pub problem: String,
}

/// Largest magnitude any value may reach: 2^250.
const LIMIT: f64 = 1.809_251_394_333_066e75;

pub fn check(module: &Module) -> Result<(), CircuitError> {
    module.layers.iter().try_for_each(|l| layer(module, l))
}

/// [`check`] for one layer of `module` (or one about to be: `parts::join` checks what it joins).
pub fn layer(module: &Module, layer: &Layer) -> Result<(), CircuitError> {
    let const_max = |c: zkc_lang::ConstId| -> f64 {
        match &module.constant(c).data {
            ConstData::Inline(d) => d.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as f64,
            ConstData::Extern => module.constant(c).ty.dtype.max() as f64,
        }
    };
    caches(layer)?;
    let mut bound = vec![0f64; layer.values.len()];
    for (i, v) in layer.values.iter().enumerate() {
        if matches!(v.def, ValueDef::Input(_) | ValueDef::State(_)) {
            bound[i] = v.ty.dtype.max() as f64 + 1.0;
        }
    }
    for inst in &layer.insts {
        let arg = |k: usize| match inst.args[k] {
            Operand::Value(v) => bound[v.index()],
            Operand::Const(c) => const_max(c),
        };
        let ty = |k: usize| match inst.args[k] {
            Operand::Value(v) => &layer.value(v).ty,
            Operand::Const(c) => &module.constant(c).ty,
        };
        let out = &layer.value(inst.results[0]).ty;
        let checked = out.dtype.max() as f64 + 1.0;
        let fail = |problem: String| CircuitError {
            layer: layer.name.clone(),
            value: layer.value(inst.results[0]).name.clone(),
            problem,
        };
        let b = match &inst.op {
            Op::Linear => {
                ty(1).shape[0] as f64 * arg(0) * arg(1)
                    + if inst.args.len() == 3 { arg(2) } else { 0.0 }
            }
            Op::MatMul => *ty(0).shape.last().unwrap_or(&1) as f64 * arg(0) * arg(1),
            Op::Add | Op::Sub => arg(0) + arg(1),
            Op::Mul => arg(0) * arg(1),
            Op::Reshape { .. } | Op::Transpose { .. } | Op::Split { .. } => arg(0),
            Op::Concat { .. } => (0..inst.args.len()).map(arg).fold(0.0, f64::max),
            Op::KvAppend => arg(0).max(arg(1)),
            Op::Gather => arg(0),
            Op::ArgmaxCarry { .. } => arg(0).max(arg(2)).max(checked),
            Op::LayerNorm { .. } | Op::RmsNorm { .. } if ty(0).dtype.bits() > 32 => {
                let article = match inst.op {
                    Op::RmsNorm { .. } => "an",
                    _ => "a",
                };
                return Err(fail(format!(
                    "{article} {} input of {} bits; circuits take at most 32",
                    inst.op.name(),
                    ty(0).dtype.bits()
                )));
            }
            Op::Softmax { ln2, .. } if (*ln2 as f64) >= (2f64).powi(ty(0).dtype.bits() as i32) => {
                return Err(fail(format!(
                    "ln2 = {ln2} does not fit the {}-bit scores",
                    ty(0).dtype.bits()
                )));
            }
            _ => checked,
        };
        for k in 0..inst.args.len() {
            let position = matches!(
                (&inst.op, k),
                (Op::Softmax { .. }, 1) | (Op::KvAppend, 2) | (Op::Gather, 1)
            );
            if position && ty(k).dtype.bits() > 32 {
                return Err(fail(format!(
                    "a position or index of {} bits; circuits take at most 32",
                    ty(k).dtype.bits()
                )));
            }
        }
        if b >= LIMIT {
            return Err(fail(format!(
                "its magnitude may reach 2^{:.0}, and circuits need it below 2^250",
                b.log2()
            )));
        }
        for &r in &inst.results {
            bound[r.index()] = b;
        }
    }
    Ok(())
}

/// The states of `layer` can share one hash chain.
fn caches(layer: &Layer) -> Result<(), CircuitError> {
    let Some(&first) = layer.states.first() else {
        return Ok(());
    };
    let (dtype, slots) = (layer.value(first).ty.dtype, layer.value(first).ty.shape[0]);
    let mut pos = None;
    for inst in layer.insts.iter().filter(|i| i.op == Op::KvAppend) {
        let Operand::Value(state) = inst.args[0] else {
            continue;
        };
        if !matches!(layer.value(state).def, ValueDef::State(_)) {
            continue;
        }
        let ty = &layer.value(state).ty;
        let fail = |problem: String| CircuitError {
            layer: layer.name.clone(),
            value: layer.value(state).name.clone(),
            problem,
        };
        if ty.dtype != dtype || ty.shape[0] != slots {
            return Err(fail(format!(
                "a cache of {} x {}; the layer's caches must all be {slots} slots of {dtype} (they share one commitment)",
                ty.shape[0], ty.dtype
            )));
        }
        if *pos.get_or_insert(inst.args[2]) != inst.args[2] {
            return Err(fail(
                "appended at another position than the layer's other caches".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(text: &str) -> Module {
        zkc_lang::check(text).expect("valid").module
    }

    #[test]
    fn products_that_could_wrap_are_refused() {
        let ok = "zkir 1\n\nlayer l(%a: i64[2], %b: i64[2]) {\n  %p = mul %a, %b : i64[2]\n  return %p\n}\n";
        assert_eq!(check(&module(ok)), Ok(()));
        let deep = "zkir 1\n\nlayer l(%a: i64[2], %b: i64[2]) {\n  %p = mul %a, %b : i64[2]\n  %q = mul %p, %p : i64[2]\n  %r = mul %q, %b : i64[2]\n  return %r\n}\n";
        let err = check(&module(deep)).unwrap_err().to_string();
        assert!(err.contains("`%q`") && err.contains("2^250"), "{err}");
    }

    #[test]
    fn widths_the_gadgets_do_not_take_are_refused() {
        let ln = "zkir 1\n\nconst @g: i16[2] = [1, 1]\nconst @b: i32[2] = [0, 0]\n\nlayer l(%x: i64[1, 2]) {\n  %y = layernorm %x, @g, @b, eps=1, shift=0 : i8[1, 2]\n  return %y\n}\n";
        assert!(check(&module(ln))
            .unwrap_err()
            .to_string()
            .contains("layernorm input of 64 bits"));
        let rms = "zkir 1\n\nconst @g: i16[2] = [1, 1]\n\nlayer l(%x: i64[1, 2]) {\n  %y = rmsnorm %x, @g, eps=1, shift=0 : i8[1, 2]\n  return %y\n}\n";
        assert!(check(&module(rms))
            .unwrap_err()
            .to_string()
            .contains("an rmsnorm input of 64 bits"));
        let fine = rms.replace("i64[1, 2]", "i32[1, 2]");
        assert_eq!(check(&module(&fine)), Ok(()));
        let sm = "zkir 1\n\nlayer l(%x: i8[1, 4]) {\n  %y = softmax %x, ln2=300, b=1, c=1, shift=8 : i16[1, 4] * 2^-8\n  return %y\n}\n";
        assert!(check(&module(sm))
            .unwrap_err()
            .to_string()
            .contains("ln2 = 300"));
    }

    #[test]
    fn caches_that_cannot_share_a_chain_are_refused() {
        let layer = |v_cache: &str, v_pos: &str| {
            format!("zkir 1\n\nlayer l(%k: i8[1, 2], %p: i32[], %q: i32[]) {{\n  state %kc: i8[4, 2]\n  state %vc: {v_cache}\n  %keys = kv_append %kc, %k, %p : i8[4, 2]\n  %values = kv_append %vc, %k, {v_pos} : {v_cache}\n  return %keys, %values\n}}\n")
        };
        assert_eq!(check(&module(&layer("i8[4, 2]", "%p"))), Ok(()));
        let wider = check(&module(&layer("i8[8, 2]", "%p"))).unwrap_err();
        assert!(
            wider.to_string().contains("must all be 4 slots of i8"),
            "{wider}"
        );
        let elsewhere = check(&module(&layer("i8[4, 2]", "%q"))).unwrap_err();
        assert!(
            elsewhere.to_string().contains("another position"),
            "{elsewhere}"
        );
    }
}
