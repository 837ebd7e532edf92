//! Why a layer's witness gives no valid proof. The layer's constraint system is rebuilt from the
//! witness, recording where each instruction's constraints begin ([`Sections::build`]); its
//! first unsatisfied constraint, or the error that stopped the build, is traced back to the
//! instruction that emitted it. The prover runs this when a proof fails its own check, to tell a
//! bug in a gadget's witness generation (which names the op) from keys of another setup.

use super::layer::{Section, Sections, Tables};
use super::F;
use ark_relations::gr1cs::predicate::polynomial_constraint::R1CS_PREDICATE_LABEL;
use ark_relations::gr1cs::{ConstraintSystem, ConstraintSystemRef, SynthesisError};
use std::fmt;
use zkc_lang::semantics::Tensor;
use zkc_lang::Module;

/// What emitted a constraint of a layer's circuit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The public boundary: the commitments of the inputs and outputs, the KV-cache chain.
    Boundary,
    /// Instruction `index` of the layer: its (first) result's name and its op.
    Inst {
        index: usize,
        result: String,
        op: &'static str,
    },
    /// The lookup table's side of the lookup argument.
    Lookups,
}

impl Origin {
    /// The op, or `boundary`: what the witness generation that failed was for.
    pub fn op(&self) -> &'static str {
        match self {
            Origin::Boundary => "boundary",
            Origin::Inst { op, .. } => op,
            Origin::Lookups => "lookup table",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Boundary => write!(
                f,
                "the layer's boundary (commitments of its inputs and outputs, the KV-cache chain)"
            ),
            Origin::Inst { result, op, .. } => write!(f, "`%{result}` ({op})"),
            Origin::Lookups => write!(f, "the lookup table's multiplicities and inverses"),
        }
    }
}

/// What [`diagnose`] finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Diagnosis {
    /// Every constraint holds: a proof from this witness that does not verify points at the
    /// keys, not the witness.
    Satisfied,
    /// `constraint` (its index in the layer's R1CS) is the first that fails, emitted by `origin`.
    Unsatisfied { constraint: usize, origin: Origin },
    /// Building the circuit failed while `origin` was being built.
    Failed {
        error: SynthesisError,
        origin: Origin,
    },
}

/// Rebuilds layer `index` of `module` from `values` (one run's record, as for
/// [`super::layer::synthesize`]) and checks every constraint.
pub fn diagnose(module: &Module, tables: &Tables, index: usize, values: &[Tensor]) -> Diagnosis {
    let layer = &module.layers[index];
    let cs = ConstraintSystem::<F>::new_ref();
    let (sections, built) = Sections::build(&cs, module, tables, index, values);
    let origin = |section: Section| match section {
        Section::Boundary => Origin::Boundary,
        Section::Inst { index, op } => Origin::Inst {
            index,
            result: layer.value(layer.insts[index].results[0]).name.clone(),
            op,
        },
        Section::Lookups => Origin::Lookups,
    };
    if let Err(error) = built {
        return Diagnosis::Failed {
            error,
            origin: origin(sections.last()),
        };
    }
    match first_unsatisfied(&cs) {
        None => Diagnosis::Satisfied,
        Some(constraint) => Diagnosis::Unsatisfied {
            constraint,
            origin: origin(sections.owner(&cs, constraint)),
        },
    }
}

/// The index of the first unsatisfied constraint. zkc's circuits hold only R1CS constraints, so
/// the index within arkworks' R1CS predicate is the layer's constraint index (the order in
/// which the gadgets enforced them).
fn first_unsatisfied(cs: &ConstraintSystemRef<F>) -> Option<usize> {
    let inner = cs.borrow()?;
    inner
        .predicate_constraint_systems
        .get(R1CS_PREDICATE_LABEL)?
        .which_constraint_is_unsatisfied(&inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkc_lang::semantics::{self as sem, Tensor};
    use zkc_lang::DType;

    /// Two instructions, so that the diagnosis has to tell them apart.
    const LAYER: &str = "zkir 1\n\nlayer l(%x: i16[1, 4] * 2^-6) {\n  %sq = mul %x, %x : i32[1, 4] * 2^-12\n  %probs = softmax %x, ln2=44, b=86, c=3930, shift=12 : i16[1, 4] * 2^-12\n  return %sq, %probs\n}\n";

    fn honest() -> (Module, Vec<Tensor>) {
        let module = zkc_lang::check(LAYER).ok().unwrap().module;
        let x = Tensor::new(vec![1, 4], vec![-32768, 900, 32767, 4]).unwrap();
        let sq = sem::mul(&x, &x, DType::I32).unwrap();
        let probs = sem::softmax(&x, None, [44, 86, 3930], 12, DType::I16).unwrap();
        (module, vec![x, sq, probs])
    }

    fn with(values: &[Tensor], at: usize, element: usize, delta: i64) -> Vec<Tensor> {
        let mut out = values.to_vec();
        let mut data = out[at].data().to_vec();
        data[element] += delta;
        out[at] = Tensor::new(out[at].shape().to_vec(), data).unwrap();
        out
    }

    #[test]
    fn an_honest_witness_is_satisfied() {
        let (module, values) = honest();
        let tables = Tables::new(&module);
        assert_eq!(diagnose(&module, &tables, 0, &values), Diagnosis::Satisfied);
    }

    /// A wrong claimed result of one instruction is traced to that instruction, by name and op,
    /// whichever instruction it is.
    #[test]
    fn a_wrong_result_names_its_instruction() {
        let (module, values) = honest();
        let tables = Tables::new(&module);
        for (at, result, op) in [(2, "probs", "softmax"), (1, "sq", "mul")] {
            let diagnosis = diagnose(&module, &tables, 0, &with(&values, at, 3, 1));
            let Diagnosis::Unsatisfied { origin, .. } = diagnosis else {
                panic!("{result}: {diagnosis:?}");
            };
            assert_eq!(origin.to_string(), format!("`%{result}` ({op})"));
            assert_eq!(origin.op(), op);
        }
    }

    /// A witness whose integers leave i128 (here a free `linear`: 2^126 + 2^126) stops
    /// the build with an error, not a wrapped witness or a panic, and the error is traced to
    /// the instruction too.
    #[test]
    fn a_failed_build_names_its_instruction() {
        let source = "zkir 1\n\nconst @w: i64[2, 1] = [-9223372036854775808, -9223372036854775808]\n\nlayer l(%x: i64[1, 2]) {\n  %y = linear %x, @w : i64[1, 1]\n  return %y\n}\n";
        let module = zkc_lang::check(source).ok().unwrap().module;
        let x = Tensor::new(vec![1, 2], vec![i64::MIN, i64::MIN]).unwrap();
        let values = vec![x, Tensor::new(vec![1, 1], vec![0]).unwrap()];
        let diagnosis = diagnose(&module, &Tables::new(&module), 0, &values);
        let Diagnosis::Failed { error, origin } = diagnosis else {
            panic!("{diagnosis:?}");
        };
        assert_eq!(error, SynthesisError::Unsatisfiable);
        assert_eq!(origin.to_string(), "`%y` (linear)");
    }
}
