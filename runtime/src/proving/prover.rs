//! The autoregressive driver (`zkc prove`): per step it runs the interpreter (the witness),
//! proves each layer with its own key, checks each proof against its verifying key, and
//! rewrites the bundle with the step appended, so a long run can be watched and an interrupted
//! one leaves a valid prefix. A single-pass model is proven the same way, once: its one run is
//! step 0 ([`Prover::prove_pass`]).

use super::bundle::{planned_steps, Bundle, LayerProof, Pass, PassInput, StepProof};
use super::committed::{self, Prepared, ProvingKey, Shape};
use super::keys::{pk_path, read_pk, PreparedKeys, VerifyingData};
use super::shapes;
use super::ProvingError;
use crate::interp::{Interpreter, ModelRunner, SinglePass};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;
use zkc_compiler::backend::diagnose::{diagnose, Diagnosis};
use zkc_compiler::backend::layer::{public_inputs, public_value, LayerCircuit, Tables};
use zkc_compiler::backend::lookup::Challenger;
use zkc_compiler::backend::F;
use zkc_compiler::files::write_atomically;
use zkc_lang::semantics::Tensor;
use zkc_lang::Module;

/// Proving keys are kept in memory between steps while they add up to no more than this;
/// beyond it each layer's key is read again at every step, so memory stays bounded by the
/// largest layer.
const KEEP_KEYS_BYTES: u64 = 2 << 30;

/// Circuit shapes (constraint matrices) are kept between steps while they add up to no more
/// than this; a layer whose shape does not fit builds its matrices again at every step (a d=768
/// block's take about twice its proof's other work). gpt2-small shape's 13 layers hold about
/// 8 GiB of matrices: with this budget its prover stays under 12 GiB.
const KEEP_SHAPES_BYTES: u64 = 4 << 30;

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
    interp: &'m Interpreter,
    ir_sha256: String,
    tables: Tables<'m>,
    dir: PathBuf,
    /// Every layer's proving key, read at the first proof if they add up to at most
    /// `key_budget` (`None`: each proof reads its layer's key).
    kept: OnceLock<Option<Vec<ProvingKey>>>,
    key_budget: u64,
    prepared: PreparedKeys,
    model: String,
    context: usize,
    /// Per module layer, its circuit's shape, from its first proof (while they fit in
    /// [`KEEP_SHAPES_BYTES`]).
    shapes: Vec<OnceLock<Shape>>,
    shape_bytes: AtomicU64,
    shape_budget: u64,
    /// Per module layer, its key's index in the verifying data (`None`: not set up).
    key_of: Vec<Option<usize>>,
}

impl<'m> Prover<'m> {
    /// `interp` runs the module `vd` was set up for; its constants serve the circuits too.
    pub fn new(
        interp: &'m Interpreter,
        ir_sha256: &str,
        dir: &Path,
        vd: &VerifyingData,
    ) -> Result<Prover<'m>, ProvingError> {
        let module = interp.module();
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
        Ok(Prover {
            interp,
            ir_sha256: ir_sha256.to_string(),
            tables: Tables::with_constants(module, interp.constants()).with_tree_cache(dir),
            dir: dir.to_path_buf(),
            kept: OnceLock::new(),
            key_budget: KEEP_KEYS_BYTES,
            prepared: vd.prepared(),
            model: vd.commitment.clone(),
            context: vd.context,
            shapes: module.layers.iter().map(|_| OnceLock::new()).collect(),
            shape_bytes: AtomicU64::new(0),
            shape_budget: KEEP_SHAPES_BYTES,
            key_of,
        })
    }

    /// The module it proves (its constants' data lives in the interpreter).
    pub fn module(&self) -> &'m Module {
        self.interp.module()
    }

    /// Keeps at most `bytes` of constraint matrices in memory (default [`KEEP_SHAPES_BYTES`]);
    /// the rest go to the keys' directory.
    pub fn with_shape_budget(mut self, bytes: u64) -> Prover<'m> {
        self.shape_budget = bytes;
        self
    }

    /// Keeps every proving key in memory between proofs while they add up to at most `bytes`
    /// (default [`KEEP_KEYS_BYTES`]); 0 reads each layer's key at its proof, as a worker
    /// proving one unit does.
    pub fn with_key_budget(mut self, bytes: u64) -> Prover<'m> {
        self.key_budget = bytes;
        self
    }

    /// Module layer `index`'s key index in the verifying data, if it was set up.
    pub fn key_of(&self, index: usize) -> Option<usize> {
        self.key_of[index]
    }

    /// Every proving key, if they fit the budget (read at the first call).
    fn kept_keys(&self) -> Result<Option<&Vec<ProvingKey>>, ProvingError> {
        if let Some(kept) = self.kept.get() {
            return Ok(kept.as_ref());
        }
        // In the verifying data's order: module layers by their key index.
        let mut layers: Vec<(usize, usize)> = (self.key_of.iter().enumerate())
            .filter_map(|(layer, key)| Some(((*key)?, layer)))
            .collect();
        layers.sort_unstable();
        let paths: Vec<PathBuf> = layers.iter().map(|&(_, l)| pk_path(&self.dir, l)).collect();
        let sizes: u64 = paths
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        let kept = match sizes <= self.key_budget {
            true => Some(
                paths
                    .iter()
                    .map(|p| read_pk(p, &self.ir_sha256))
                    .collect::<Result<_, _>>()?,
            ),
            false => None,
        };
        Ok(self.kept.get_or_init(|| kept).as_ref())
    }

    /// Proves one step from its witness (every layer's record), layer by layer.
    pub fn prove_step(
        &self,
        step: usize,
        witness: &[crate::interp::LayerRun],
        rng: &mut dyn rand_core::CryptoRngCore,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<StepProof, ProvingError> {
        let layers = witness
            .iter()
            .map(|run| self.prove_unit(step, run, rng, on_event))
            .collect::<Result<_, _>>()?;
        Ok(StepProof {
            step: step as u32,
            layers,
        })
    }

    /// Proves one layer of one step from its record (a unit of work, docs/distributed.md),
    /// and checks the proof against the layer's verifying key.
    pub fn prove_unit(
        &self,
        step: usize,
        run: &crate::interp::LayerRun,
        rng: &mut dyn rand_core::CryptoRngCore,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<LayerProof, ProvingError> {
        let index = run.layer;
        let layer = &self.module().layers[index];
        let key = self.key_of[index].ok_or_else(|| {
            ProvingError::Request(format!(
                "step {step}: layer `{}` (context {:?}) has no key; rerun `zkc setup` with its bucket",
                layer.name,
                layer.context()
            ))
        })?;
        let start = Instant::now();
        let read;
        let pk = match self.kept_keys()? {
            Some(keys) => &keys[key],
            None => {
                read = read_pk(&pk_path(&self.dir, index), &self.ir_sha256)?;
                &read
            }
        };
        let proof = match self.prove(index, &run.values, pk, self.prepared.get(key), rng) {
            Ok(proof) => proof,
            Err(e) => return Err(self.why(step, index, &run.values, Some(e))),
        };
        let publics = public_inputs(layer, &run.values);
        if !committed::verify(self.prepared.get(key), &proof, &publics) {
            return Err(self.why(step, index, &run.values, None));
        }
        on_event(Event::Layer {
            step,
            layer: &layer.name,
            key,
            seconds: start.elapsed().as_secs_f64(),
        });
        Ok(LayerProof {
            layer: key as u32,
            publics,
            proof,
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
        let layer = self.module().layers[index].name.clone();
        match diagnose(self.module(), &self.tables, index, values) {
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

    /// One proof of layer `index` from `values` (its record), in two rounds when it has
    /// lookups. The layer's shape is built at its first proof and kept if it fits the budget,
    /// else written to the keys' directory and read from there at the next proofs.
    fn prove(
        &self,
        index: usize,
        values: &[zkc_lang::semantics::Tensor],
        pk: &ProvingKey,
        prepared: &Prepared,
        rng: &mut dyn rand_core::CryptoRngCore,
    ) -> Result<committed::Proof, SynthesisError> {
        let build = |cs: ConstraintSystemRef<F>, challenger: &dyn Challenger| {
            LayerCircuit {
                module: self.module(),
                tables: &self.tables,
                index,
                values,
                challenger,
            }
            .generate_constraints(cs)
        };
        let cache = shapes::shape_path(&self.dir, index);
        let kept = self.shapes[index].get();
        let read = match kept {
            Some(_) => None,
            None => shapes::read(&cache, &prepared.digest),
        };
        let shape = kept.or(read.as_ref());
        let (proof, built) = committed::prove_circuit(pk, prepared.digest, build, shape, rng)?;
        let fresh = built.is_some();
        if let Some(shape) = built.or(read) {
            let bytes = shape.bytes();
            let kept = self.shape_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
            if kept <= self.shape_budget {
                drop(self.shapes[index].set(shape));
            } else {
                self.shape_bytes.fetch_sub(bytes, Ordering::Relaxed);
                if fresh && bytes <= shapes::CACHE_BYTES {
                    // A cache: a directory the prover cannot write only costs rebuilding.
                    let _ = shapes::write(&cache, &prepared.digest, &shape);
                }
            }
        }
        Ok(proof)
    }

    /// The model's commitment (the SHA-256 of the keys' `vk`) and the artifact's IR hash.
    pub fn model(&self) -> (&str, &str) {
        (&self.model, &self.ir_sha256)
    }

    /// The size of layer `index`'s proving key file.
    pub fn key_bytes(&self, index: usize) -> u64 {
        std::fs::metadata(pk_path(&self.dir, index)).map_or(0, |m| m.len())
    }

    /// Checks a generation's request and gives a runner over the layers with keys and the
    /// number of steps it takes.
    pub fn start(
        &self,
        prompt: &[u32],
        max_new: usize,
    ) -> Result<(ModelRunner<'m>, usize), ProvingError> {
        // A single-pass model says so before its context (0) is held against the prompt.
        let runner = ModelRunner::new(self.interp)?.only(&|l| self.key_of[l].is_some());
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
        Ok((runner, planned_steps(prompt.len(), max_new, self.context)))
    }

    /// Greedy generation from `prompt`, every step proven and appended to the bundle at
    /// `output` as soon as it is done. Returns the finished bundle.
    pub fn generate(
        &self,
        prompt: &[u32],
        max_new: usize,
        output: &Path,
        rng: &mut dyn rand_core::CryptoRngCore,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Bundle, ProvingError> {
        let (mut runner, steps) = self.start(prompt, max_new)?;
        let mut bundle = Bundle {
            model: self.model.clone(),
            prompt: prompt.to_vec(),
            max_new,
            pass: None,
            steps: Vec::new(),
        };
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

    /// Proves a single-pass model on `input` (the integers of `%input`): every layer once, as
    /// step 0, and writes the bundle to `output`. With `private`, the bundle holds only the
    /// input's commitment (the public input that stands for it in the first layer's proof),
    /// not its integers; the output is public either way.
    pub fn prove_pass(
        &self,
        input: Tensor,
        private: bool,
        output: &Path,
        rng: &mut dyn rand_core::CryptoRngCore,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Bundle, ProvingError> {
        let runner = SinglePass::new(self.interp)?;
        let ty = runner.input_type().clone();
        if private && ty.is_scalar() {
            return Err(ProvingError::Request(format!(
                "--private-input: the input `{ty}` is a scalar, which its layer's proof makes \
                 public as itself, not by a commitment"
            )));
        }
        let values = match private {
            true => PassInput::Committed(public_value(&ty, input.data())),
            false => PassInput::Public(input.data().to_vec()),
        };
        let pass = runner.run(input, true)?;
        let witness = pass.witness.expect("recorded");
        let step = self.prove_step(0, &witness, rng, on_event)?;
        let bundle = Bundle {
            model: self.model.clone(),
            prompt: Vec::new(),
            max_new: 0,
            pass: Some(Pass {
                input: values,
                output: pass.output.data().to_vec(),
            }),
            steps: vec![step],
        };
        write_atomically(output, &bundle.to_bytes()).map_err(|source| ProvingError::Io {
            path: output.display().to_string(),
            source,
        })?;
        Ok(bundle)
    }
}
