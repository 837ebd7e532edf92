//! Assembly (`zkc bundle`, docs/distributed.md): the units' proof files of a plan become the
//! ordinary proof bundle that `zkc verify` reads, after every unit file is checked on its own
//! (its plan, unit, key and proof) and the whole bundle is checked as a verifier would (every
//! link between units). A set with units missing names them all.

use super::bundle::{Bundle, StepProof};
use super::keys::VerifyingData;
use super::plan::{unit_path, Plan};
use super::unit::{UnitError, UnitProof};
use super::verifier::{verify, Rejection};
use std::path::Path;

/// Why a plan's units do not make a bundle.
#[derive(Debug, thiserror::Error)]
pub enum AssemblyError {
    #[error("the plan is for model {plan}; these keys are for model {keys}")]
    OtherModel { plan: String, keys: String },
    #[error("{} of the plan's {total} units have no proof in {dir}: {} (prove them with `zkc prove-part --unit N`)", .missing.len(), list(.missing))]
    Missing {
        dir: String,
        missing: Vec<usize>,
        total: usize,
    },
    #[error("unit {unit} ({path}): {problem}; delete it and prove the unit again")]
    Unit {
        unit: usize,
        path: String,
        problem: UnitError,
    },
    #[error("the assembled bundle is rejected: {0}")]
    Rejected(Rejection),
    #[error("the proven run generates {proven:?}; the plan says {planned:?}")]
    OtherTokens { proven: Vec<u32>, planned: Vec<u32> },
}

/// The bundle of `plan`'s units, whose proofs are in `dir` (`unit-N.zkunit`).
pub fn assemble(
    vd: &VerifyingData,
    plan: &Plan,
    digest: &str,
    dir: &Path,
) -> Result<Bundle, AssemblyError> {
    if plan.model != vd.commitment {
        return Err(AssemblyError::OtherModel {
            plan: plan.model.clone(),
            keys: vd.commitment.clone(),
        });
    }
    let files: Vec<Option<Vec<u8>>> = (0..plan.units.len())
        .map(|k| std::fs::read(unit_path(dir, k)).ok())
        .collect();
    let missing: Vec<usize> = (0..files.len()).filter(|&k| files[k].is_none()).collect();
    if !missing.is_empty() {
        return Err(AssemblyError::Missing {
            dir: dir.display().to_string(),
            missing,
            total: plan.units.len(),
        });
    }
    let keys = vd.prepared();
    let mut bundle = Bundle {
        model: plan.model.clone(),
        prompt: plan.prompt.clone(),
        max_new: plan.max_new,
        pass: None,
        steps: Vec::with_capacity(plan.inputs.len()),
    };
    for (k, bytes) in files.iter().flatten().enumerate() {
        let proof = UnitProof::check(bytes, plan, digest, k, &keys).map_err(|problem| {
            AssemblyError::Unit {
                unit: k,
                path: unit_path(dir, k).display().to_string(),
                problem,
            }
        })?;
        let step = plan.units[k].step;
        if bundle.steps.len() == step {
            bundle.steps.push(StepProof {
                step: step as u32,
                layers: Vec::with_capacity(plan.stages()),
            });
        }
        bundle.steps[step].layers.push(proof);
    }
    let verified = verify(vd, &bundle.to_bytes(), false).map_err(AssemblyError::Rejected)?;
    if verified.generated != plan.generated() {
        return Err(AssemblyError::OtherTokens {
            proven: verified.generated,
            planned: plan.generated().to_vec(),
        });
    }
    Ok(bundle)
}

/// Unit numbers, runs shortened (`0-3, 7`).
fn list(units: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &u in units {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == u => *end = u,
            _ => runs.push((u, u)),
        }
    }
    runs.iter()
        .map(|&(a, b)| match a == b {
            true => a.to_string(),
            false => format!("{a}-{b}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_units_are_listed_as_runs() {
        assert_eq!(super::list(&[0, 1, 2, 3, 7, 9, 10]), "0-3, 7, 9-10");
        assert_eq!(super::list(&[5]), "5");
    }
}
