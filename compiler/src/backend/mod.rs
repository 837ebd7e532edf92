//! The R1CS backend (in progress): gadgets that implement the IR ops' semantics as constraints
//! over the BN254 scalar field, each tested against `zkc_lang::semantics` for satisfiability with
//! the honest witness and unsatisfiability with perturbed ones.
//!
//! Values enter a circuit as [`Wire`]s: a linear combination and the integer it stands for.
//! Gadgets take claimed results (the interpreter's witness) rather than recomputing them, so a
//! test can hand them wrong ones; a gadget's constraints, not its Rust code, decide what is
//! accepted. Every range check goes through [`range::range_checked`].

pub mod argmax;
pub mod arith;
pub mod cache;
pub mod check;
pub mod clamp;
pub mod commit;
pub mod cost;
pub mod diagnose;
pub mod gelu;
pub mod int;
pub mod layer;
pub mod layernorm;
pub mod lookup;
pub mod measure;
pub mod merkle;
mod poseidon;
pub mod range;
pub mod requant;
pub mod select;
pub mod softmax;

use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};

/// The scalar field of BN254, where every circuit value lives.
pub type F = ark_bn254::Fr;

/// An integer embedded in the field: negative `x` as `p - |x|`.
pub fn field(v: i128) -> F {
    let magnitude = F::from(v.unsigned_abs());
    if v < 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// The constant `v` as a linear combination.
pub fn constant(v: i128) -> LinearCombination<F> {
    LinearCombination::from((field(v), Variable::One))
}

/// `Σ c·x` over `terms` as one combination, built at once: adding them one at a time
/// (`lc + (c, &x)`) merges into a new vector at each step, quadratic in the terms, which was most
/// of a d=768 block's proving time (its `linear` outputs have 768 or 3072 terms).
pub fn weighted_sum<'a>(
    terms: impl IntoIterator<Item = (F, &'a LinearCombination<F>)>,
) -> LinearCombination<F> {
    let mut out = Vec::new();
    for (c, x) in terms {
        out.extend(x.iter().map(|&(k, v)| (c * k, v)));
    }
    let mut lc = LinearCombination(out);
    lc.compactify();
    lc
}

/// A fresh witness variable holding `v`.
pub fn witness(cs: &ConstraintSystemRef<F>, v: i128) -> Result<Wire, SynthesisError> {
    Ok(Wire {
        lc: cs.new_witness_variable(|| Ok(field(v)))?.into(),
        value: v,
    })
}

/// A circuit value: its linear combination and the integer it is claimed to be.
#[derive(Clone, Debug)]
pub struct Wire {
    pub lc: LinearCombination<F>,
    pub value: i128,
}

/// How a test or a layer brings a value into a circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alloc {
    Constant,
    Input,
    Witness,
}

impl Wire {
    pub fn constant(value: i128) -> Wire {
        Wire {
            lc: LinearCombination::from((field(value), Variable::One)),
            value,
        }
    }

    pub fn new(
        cs: &ConstraintSystemRef<F>,
        value: i128,
        mode: Alloc,
    ) -> Result<Wire, SynthesisError> {
        let var = match mode {
            Alloc::Constant => return Ok(Wire::constant(value)),
            Alloc::Input => cs.new_input_variable(|| Ok(field(value)))?,
            Alloc::Witness => cs.new_witness_variable(|| Ok(field(value)))?,
        };
        Ok(Wire {
            lc: var.into(),
            value,
        })
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use ark_relations::gr1cs::ConstraintSystem;

    pub const MODES: [Alloc; 3] = [Alloc::Constant, Alloc::Input, Alloc::Witness];

    pub fn cs() -> ConstraintSystemRef<F> {
        ConstraintSystem::<F>::new_ref()
    }

    /// The ways of checking ranges gadget tests build in: bits, and tables of two widths (one
    /// narrower than most ranges, one wider than some).
    pub const RANGES: [range::Ranges; 3] = [
        range::Ranges::Bits,
        range::Ranges::Table { width: 4 },
        range::Ranges::Table { width: 8 },
    ];

    /// Builds a circuit with `build` once per way of [`RANGES`]; checks that its constraints
    /// (a lookup's counted where it is made) meet `cost`, and that every way agrees on whether
    /// it is satisfied, which it returns. A table's lookup argument is closed with the
    /// assignment's digest as its challenge.
    pub fn satisfied_in_every_mode(
        build: impl Fn(&ConstraintSystemRef<F>),
        cost: impl Fn(range::Ranges) -> usize,
    ) -> bool {
        let results: Vec<bool> = RANGES
            .iter()
            .map(|&r| {
                let cs = cs();
                if let range::Ranges::Table { width } = r {
                    lookup::begin(&cs, width);
                }
                build(&cs);
                assert_eq!(
                    cs.num_constraints() + lookup::count(&cs),
                    cost(r),
                    "{r:?}: the count meets the formula"
                );
                lookup::finish(&cs, &lookup::AssignmentDigest).unwrap();
                cs.is_satisfied().unwrap()
            })
            .collect();
        assert!(
            results.iter().all(|&s| s == results[0]),
            "ranges checked by {RANGES:?} disagree: {results:?}"
        );
        results[0]
    }

    pub fn wires(cs: &ConstraintSystemRef<F>, values: &[i64], mode: Alloc) -> Vec<Wire> {
        values
            .iter()
            .map(|&v| Wire::new(cs, v as i128, mode).unwrap())
            .collect()
    }

    /// A fixed LCG, so failures reproduce.
    pub struct Lcg(pub u64);

    impl Lcg {
        pub fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }

        pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + self.below((hi - lo + 1) as u64) as i64
        }
    }
}
