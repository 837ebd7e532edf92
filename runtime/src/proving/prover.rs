//! The autoregressive driver (`zkc prove`): per step it runs the interpreter (the witness),
//! proves each layer with its own key, checks each proof against its verifying key, and
//! rewrites the bundle with the step appended, so a long run can be watched and an interrupted
//! one leaves a valid prefix.

use super::bundle::{planned_steps, Bundle, LayerProof, StepProof};
use super::keys::{pk_path, read_pk, VerifyingData};
use super::{Curve, ProvingError};
use crate::interp::{Interpreter, ModelRunner};
use ark_ff::UniformRand;
use ark_groth16::{Groth16, PreparedVerifyingKey, Proof, ProvingKey};
use ark_relations::gr1cs::predicate::polynomial_constraint::R1CS_PREDICATE_LABEL;
use ark_relations::gr1cs::{
    ConstraintSynthesizer, ConstraintSystem, OptimizationGoal, SynthesisError, SynthesisMode,
};
use ark_relations::utils::matrix::Matrix;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;
use zkc_compiler::backend::diagnose::{diagnose, Diagnosis};
use zkc_compiler::backend::layer::{public_inputs, LayerCircuit, Tables};
use zkc_compiler::backend::F;
use zkc_compiler::files::write_atomically;
use zkc_lang::Module;

/// Proving keys are kept in memory between steps while they add up to no more than this;
/// beyond it each layer's key is read again at every step, so memory stays bounded by the
/// largest layer.
const KEEP_KEYS_BYTES: u64 = 2 << 30;

/// What the driver reports as it goes.
pub enum Event<'a> {
    Layer {
        step: usize,
        layer: &'a str,
        /// The layer's key: its index in the verifying data's layers (which bucket of the stage).
        key: usize,
        seconds: f64,
    },
    Step {
        step: usize,
        of: usize,
        input: u32,
        output: u32,
        seconds: f64,
    },
}

/// Proves the layers of one model with the keys in one directory.
pub struct Prover<'m> {
    module: &'m Module,
    ir_sha256: String,
    tables: Tables,
    dir: PathBuf,
    kept: Option<Vec<ProvingKey<Curve>>>,
    prepared: Vec<PreparedVerifyingKey<Curve>>,
    model: String,
    context: usize,
    matrices: Vec<OnceLock<Matrices>>,
    /// Per module layer, its key's index in the verifying data (`None`: not set up).
    key_of: Vec<Option<usize>>,
}

/// A layer's constraint matrices and sizes, kept from its first proof.
struct Matrices {
    matrices: Vec<Matrix<F>>,
    inputs: usize,
    constraints: usize,
}

impl<'m> Prover<'m> {
    /// `module` must carry its constants and be the one `vd` was set up for.
    pub fn new(
        module: &'m Module,
        ir_sha256: &str,
        dir: &Path,
        vd: &VerifyingData,
    ) -> Result<Prover<'m>, ProvingError> {
        zkc_compiler::backend::check::check(module)?;
        let fits = vd
            .layers
            .iter()
            .all(|k| module.layers.get(k.layer).is_some_and(|l| l.name == k.name));
        if vd.ir_sha256 != ir_sha256 || !fits {
            return Err(ProvingError::KeysForAnotherModel {
                keys: vd.ir_sha256.clone(),
                artifact: ir_sha256.to_string(),
            });
        }
        let mut key_of = vec![None; module.layers.len()];
        for (k, key) in vd.layers.iter().enumerate() {
            key_of[key.layer] = Some(k);
        }
        let sizes: u64 = vd
            .layers
            .iter()
            .map(|k| std::fs::metadata(pk_path(dir, k.layer)).map_or(0, |m| m.len()))
            .sum();
        let kept = if sizes <= KEEP_KEYS_BYTES {
            Some(
                vd.layers
                    .iter()
                    .map(|k| read_pk(&pk_path(dir, k.layer), ir_sha256))
                    .collect::<Result<_, _>>()?,
            )
        } else {
            None
        };
        Ok(Prover {
            module,
            ir_sha256: ir_sha256.to_string(),
            tables: Tables::new(module),
            dir: dir.to_path_buf(),
            kept,
            prepared: vd.prepared(),
            model: vd.commitment.clone(),
            context: vd.context,
            matrices: module.layers.iter().map(|_| OnceLock::new()).collect(),
            key_of,
        })
    }

    /// Proves one step from its witness (every layer's record), layer by layer.
    pub fn prove_step(
        &self,
        step: usize,
        witness: &[crate::interp::LayerRun],
        rng: &mut dyn rand_core::CryptoRngCore,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<StepProof, ProvingError> {
        let mut layers = Vec::with_capacity(witness.len());
        for run in witness {
            let index = run.layer;
            let layer = &self.module.layers[index];
            let key = self.key_of[index].ok_or_else(|| {
                ProvingError::Request(format!(
                    "step {step}: layer `{}` (context {:?}) has no key; rerun `zkc setup` with its bucket",
                    layer.name,
                    layer.context()
                ))
            })?;
            let start = Instant::now();
            let read;
            let pk = match &self.kept {
                Some(keys) => &keys[key],
                None => {
                    read = read_pk(&pk_path(&self.dir, index), &self.ir_sha256)?;
                    &read
                }
            };
            let circuit = LayerCircuit {
                module: self.module,
                tables: &self.tables,
                index,
                values: &run.values,
            };
            let proof = match self.prove(index, circuit, pk, rng) {
                Ok(proof) => proof,
                Err(e) => return Err(self.why(step, index, &run.values, Some(e))),
            };
            let publics = public_inputs(layer, &run.values);
            let valid = Groth16::<Curve>::verify_proof(&self.prepared[key], &proof, &publics)
                .unwrap_or(false);
            if !valid {
                return Err(self.why(step, index, &run.values, None));
            }
            on_event(Event::Layer {
                step,
                layer: &layer.name,
                key,
                seconds: start.elapsed().as_secs_f64(),
            });
            layers.push(LayerProof {
                layer: key as u32,
                publics,
                proof,
            });
        }
        Ok(StepProof {
            step: step as u32,
            layers,
        })
    }

    /// Why layer `index` gave no valid proof from `values` (its build failed with `error`, or
    /// its proof failed the self-check): the layer is rebuilt and checked constraint by
    /// constraint ([`diagnose`]), so that a witness the circuit rejects names the instruction
    /// whose gadget produced it, and only a satisfied witness blames the keys.
    fn why(
        &self,
        step: usize,
        index: usize,
        values: &[zkc_lang::semantics::Tensor],
        error: Option<SynthesisError>,
    ) -> ProvingError {
        let layer = self.module.layers[index].name.clone();
        match diagnose(self.module, &self.tables, index, values) {
            Diagnosis::Unsatisfied { constraint, origin } => ProvingError::WitnessUnsatisfied {
                step,
                layer,
                constraint,
                origin,
            },
            Diagnosis::Failed { error, origin } => ProvingError::WitnessFailed {
                step,
                layer,
                origin,
                problem: error.to_string(),
            },
            Diagnosis::Satisfied => match error {
                // Proving failed after a build that succeeds here: not the witness.
                Some(e) => ProvingError::Synthesis {
                    layer,
                    problem: e.to_string(),
                },
                None => ProvingError::ProofRejected { step, layer },
            },
        }
    }

    /// One Groth16 proof of layer `index`. The constraint matrices are built once, at the
    /// layer's first proof, and kept: later proofs only compute the witness (the circuit's
    /// shape does not depend on its values), which skips building and inlining every linear
    /// combination again.
    fn prove(
        &self,
        index: usize,
        circuit: LayerCircuit,
        pk: &ProvingKey<Curve>,
        rng: &mut dyn rand_core::CryptoRngCore,
    ) -> Result<Proof<Curve>, SynthesisError> {
        let cs = ConstraintSystem::<F>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        let kept = self.matrices[index].get();
        cs.set_mode(SynthesisMode::Prove {
            construct_matrices: kept.is_none(),
            generate_lc_assignments: false,
        });
        circuit.generate_constraints(cs.clone())?;
        let kept = match kept {
            Some(kept) => kept,
            None => {
                cs.finalize();
                let matrices = cs
                    .to_matrices()?
                    .remove(R1CS_PREDICATE_LABEL)
                    .ok_or(SynthesisError::PredicateNotFound)?;
                let shape = Matrices {
                    matrices,
                    inputs: cs.num_instance_variables(),
                    constraints: cs.num_constraints(),
                };
                self.matrices[index].get_or_init(|| shape)
            }
        };
        let assignment = [cs.instance_assignment()?, cs.witness_assignment()?].concat();
        let (r, s) = (
            F::rand(&mut rng.as_rngcore()),
            F::rand(&mut rng.as_rngcore()),
        );
        Groth16::<Curve>::create_proof_with_reduction_and_matrices(
            pk,
            r,
            s,
            &kept.matrices,
            kept.inputs,
            kept.constraints,
            &assignment,
        )
    }

    /// Greedy generation from `prompt`, every step proven and appended to the bundle at
    /// `output` as soon as it is done. Returns the finished bundle.
    pub fn generate(
        &self,
        interp: &Interpreter,
        prompt: &[u32],
        max_new: usize,
        output: &Path,
        rng: &mut dyn rand_core::CryptoRngCore,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Bundle, ProvingError> {
        if prompt.is_empty() || max_new == 0 {
            return Err(ProvingError::Request(
                "give at least one prompt token and --max-new of at least 1".into(),
            ));
        }
        if prompt.len() > self.context {
            return Err(ProvingError::Request(format!(
                "the prompt has {} tokens; the model's context holds {}",
                prompt.len(),
                self.context
            )));
        }
        let mut runner = ModelRunner::new(interp)?.only(&|l| self.key_of[l].is_some());
        let mut bundle = Bundle {
            model: self.model.clone(),
            prompt: prompt.to_vec(),
            max_new,
            steps: Vec::new(),
        };
        let steps = planned_steps(prompt.len(), max_new, self.context);
        let mut next = prompt[0];
        for step in 0..steps {
            let start = Instant::now();
            let input = prompt.get(step).copied().unwrap_or(next);
            let result = runner.step(input, true)?;
            let witness = result.witness.expect("recorded");
            bundle
                .steps
                .push(self.prove_step(step, &witness, rng, on_event)?);
            write_atomically(output, &bundle.to_bytes()).map_err(|source| ProvingError::Io {
                path: output.display().to_string(),
                source,
            })?;
            next = result.token;
            on_event(Event::Step {
                step,
                of: steps,
                input,
                output: next,
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        Ok(bundle)
    }
}
