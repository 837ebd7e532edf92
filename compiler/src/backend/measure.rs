//! A layer's constraint system built and measured: constraints, witness variables and matrix
//! nonzeros (after arkworks inlines every linear combination into the rows), per op kind and
//! for the boundary. [`super::cost`] gives constraints from formulas at any size; this gives the
//! rest where the layer is small enough to build (`zkc compile --emit stats --exact`).

use super::layer::{Section, Sections, Tables};
use super::F;
use ark_relations::gr1cs::predicate::polynomial_constraint::R1CS_PREDICATE_LABEL;
use ark_relations::gr1cs::{ConstraintSystem, OptimizationGoal, SynthesisError};
use std::collections::BTreeMap;
use zkc_lang::semantics::Tensor;
use zkc_lang::Module;

/// What one part of a constraint system holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub constraints: usize,
    pub witnesses: usize,
    /// Nonzero entries of the A, B and C matrices in its rows.
    pub nonzeros: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.constraints += other.constraints;
        self.witnesses += other.witnesses;
        self.nonzeros += other.nonzeros;
    }
}

/// Builds layer `index` from `values` (one run's record) and counts it, by op name and
/// `commitments` for the boundary and `lookup table` for the table, as `backend::cost::layer`
/// names them (each lookup's constraint counts with the op that made it).
pub fn layer(
    module: &Module,
    tables: &Tables,
    index: usize,
    values: &[Tensor],
) -> Result<BTreeMap<&'static str, Counts>, SynthesisError> {
    let cs = ConstraintSystem::<F>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    let (sections, built) = Sections::build(&cs, module, tables, index, values);
    built?;
    let parts = sections.parts(&cs);
    cs.finalize();
    let matrices = cs
        .to_matrices()?
        .remove(R1CS_PREDICATE_LABEL)
        .ok_or(SynthesisError::PredicateNotFound)?;
    let row = |r: usize| -> usize { matrices.iter().map(|m| m[r].len()).sum() };
    let mut counts: BTreeMap<&'static str, Counts> = BTreeMap::new();
    for part in parts {
        let name = match part.section {
            Section::Boundary => "commitments",
            Section::Inst { op, .. } => op,
            Section::Lookups => super::cost::TABLE,
        };
        let rows = || part.rows.iter().flat_map(|r| r.clone());
        if part.section == Section::Lookups && rows().next().is_none() {
            continue; // a circuit that checks ranges by bits
        }
        *counts.entry(name).or_default() += Counts {
            constraints: rows().count(),
            witnesses: part.witnesses,
            nonzeros: rows().map(row).sum(),
        };
    }
    Ok(counts)
}
