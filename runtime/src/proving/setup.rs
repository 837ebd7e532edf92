//! `zkc setup`: Groth16 keys (with a first round for layers with lookups, `super::committed`)
//! for every layer (every context bucket of a stage has its own), one
//! layer at a time (so memory is bounded by the largest layer), from OS randomness.

use super::keys::{pk_path, vk_path, write_pk, KeyError, LayerKey, PassTypes, VerifyingData};
use super::{committed, shapes, ProvingError};
use crate::interp::{layers_at_step_zero, Interpreter, ModelKind, ModelRunner};
use ark_relations::gr1cs::ConstraintSynthesizer;
use std::path::Path;
use std::time::{Duration, Instant};
use zkc_compiler::backend::cost;
use zkc_compiler::backend::layer::{LayerCircuit, Tables};
use zkc_lang::Module;

/// What setup did for one layer.
#[derive(Clone, Debug)]
pub struct LayerSetup {
    pub name: String,
    pub constraints: usize,
    pub seconds: f64,
    pub pk_bytes: u64,
}

/// Keys for every layer of `module` (constants inline) into `dir`, or with `buckets` only for
/// the context buckets it names (and the stages without caches). `on_layer` is called before
/// each layer with its index and name, and after it with its figures.
pub fn setup(
    module: &Module,
    ir_sha256: &str,
    vocabulary: Option<Vec<String>>,
    buckets: Option<&[usize]>,
    dir: &Path,
    rng: &mut dyn rand_core::CryptoRngCore,
    on_layer: &mut dyn FnMut(usize, &str, Option<&LayerSetup>),
) -> Result<VerifyingData, ProvingError> {
    zkc_compiler::backend::check::check(module)?;
    let wanted = |index: usize| zkc_lang::buckets::keyed(&module.layers[index], buckets);
    if let Some(buckets) = buckets {
        for stage in module.stages() {
            let has = |c: &usize| {
                stage
                    .layers
                    .iter()
                    .any(|&l| module.layers[l].context() == Some(*c))
            };
            let contexts: Vec<usize> = stage
                .layers
                .iter()
                .filter_map(|&l| module.layers[l].context())
                .collect();
            if !contexts.is_empty() && (buckets.is_empty() || !buckets.iter().all(has)) {
                return Err(ProvingError::Request(format!(
                    "--buckets {buckets:?}: stage `{}` has the buckets {contexts:?}",
                    stage.name
                )));
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    // The circuits' shape does not depend on the values; one step of any token gives a witness
    // to synthesize them with.
    let interp = Interpreter::new(module.clone())?;
    let witness = layers_at_step_zero(&interp, &wanted)?;
    // The trees setup builds stay beside the keys, for the provers.
    let tables = Tables::new(module).with_tree_cache(dir);
    let mut layers = Vec::new();
    for (index, run) in witness.iter().enumerate() {
        let Some(run) = run else { continue };
        let layer = &module.layers[index];
        on_layer(index, &layer.name, None);
        let start = Instant::now();
        let (pk, shape) = committed::setup(
            |cs, challenger| {
                LayerCircuit {
                    module,
                    tables: &tables,
                    index,
                    values: &run.values,
                    challenger,
                }
                .generate_constraints(cs)
            },
            rng,
        )
        .map_err(|e| ProvingError::Synthesis {
            layer: layer.name.clone(),
            problem: e.to_string(),
        })?;
        let path = pk_path(dir, index);
        write_pk(&path, &layer.name, ir_sha256, &pk)?;
        let vk = pk.verifying_key();
        if shape.bytes() <= shapes::CACHE_BYTES {
            // A cache: a prover without it builds the matrices.
            let digest = committed::Prepared::new(&vk).digest;
            let _ = shapes::write(&shapes::shape_path(dir, index), &digest, &shape);
        }
        drop(shape);
        let constraints = cost::layer(module, layer).1;
        layers.push(LayerKey::of(module, index, constraints, vk));
        drop(pk);
        let done = LayerSetup {
            name: cost::layer_label(module, index),
            constraints,
            seconds: Duration::as_secs_f64(&start.elapsed()),
            pk_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        };
        on_layer(index, &layer.name, Some(&done));
    }
    // The most positions the keys prove: the smallest of the stages' largest keyed buckets
    // (none for a single pass, whose verifier needs its input's and output's types instead).
    let (context, pass) = match ModelKind::of(module)? {
        ModelKind::TokenLoop => {
            let runner = ModelRunner::new(&interp)?.only(&|l| wanted(l));
            (runner.context(), None)
        }
        ModelKind::SinglePass { input, output } => (0, Some(PassTypes { input, output })),
    };
    let mut vd = VerifyingData {
        ir_sha256: ir_sha256.to_string(),
        context,
        vocabulary,
        pass,
        layers,
        commitment: String::new(),
    };
    vd.write(&vk_path(dir))?;
    Ok(vd)
}
