//! Proving as stateless units (docs/distributed.md): a plan fixes the transcript, each unit is
//! proven on its own (in any order, by a prover that keeps nothing), and the assembly makes the
//! bundle a single-process run makes; then every fault of a distributed run: units missing,
//! corrupt, for another step or another plan, and a plan the artifact does not generate.

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tempfile::TempDir;
use zkc_compiler::artifact;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::{generate_gpt2, FloatModel, ModelConfig, WeightType};
use zkc_compiler::quantize::{quantize, QuantConfig};
use zkc_runtime::interp::Interpreter;
use zkc_runtime::proving::assemble::{assemble, AssemblyError};
use zkc_runtime::proving::bundle::Bundle;
use zkc_runtime::proving::keys::{vk_path, VerifyingData};
use zkc_runtime::proving::plan::{digest, unit_path, Plan};
use zkc_runtime::proving::prover::Prover;
use zkc_runtime::proving::setup::setup;
use zkc_runtime::proving::unit::{self, UnitError, UnitProof};
use zkc_runtime::proving::verifier::verify;
use zkc_runtime::proving::ProvingError;

const PROMPT: [u32; 2] = [72, 105];
const MAX_NEW: usize = 3;

/// A 2-block model (d=32, context 8, buckets 2, 4 and 8) compiled and set up in `dir`.
struct Model {
    dir: TempDir,
    artifact: artifact::Artifact,
    vd: VerifyingData,
}

impl Model {
    fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    fn interp(&self) -> Interpreter {
        Interpreter::new(self.artifact.module.clone()).unwrap()
    }
}

/// The plan of the shared run, its file's digest, and the single-process bundle.
struct Run {
    model: Model,
    plan: Plan,
    plan_bytes: Vec<u8>,
    single: Bundle,
    /// The units proven one by one, in the directory `units`.
    units: PathBuf,
}

fn model() -> Model {
    let dir = tempfile::Builder::new()
        .prefix("zkc-distributed-")
        .tempdir()
        .unwrap();
    let cfg = ModelConfig {
        n_layer: 2,
        n_embd: 32,
        n_head: 2,
        n_head_kv: 2,
        n_ctx: 8,
        n_vocab: 256,
        n_ff: 128,
        seed: 21,
        weight_type: WeightType::F32,
    };
    let gguf = GgufFile::from_bytes(generate_gpt2(&cfg).to_bytes()).unwrap();
    let quant = QuantConfig {
        smallest_bucket: 2,
        ..QuantConfig::default()
    };
    let module = quantize(&FloatModel::load(&gguf).unwrap(), &quant).unwrap();
    let circ = dir.path().join("model.circ");
    artifact::write(&circ, &module, None, "test", "default").unwrap();
    let artifact = artifact::read(&circ).unwrap();
    let keys = dir.path().join("keys");
    let ir = artifact.header.ir_sha256.clone();
    let mut rng = StdRng::seed_from_u64(21);
    setup(
        &artifact.module,
        &ir,
        None,
        None,
        &keys,
        &mut rng,
        &mut |_, _, _| {},
    )
    .unwrap();
    let vd = VerifyingData::read(&vk_path(&keys)).unwrap();
    Model { dir, artifact, vd }
}

/// Proves every unit of `plan` into `dir` as separate workers would, last unit first.
fn prove_units(model: &Model, plan: &Plan, plan_digest: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let interp = model.interp();
    for k in (0..plan.units.len()).rev() {
        // A fresh prover per unit, keeping no key or matrices: nothing carries over.
        let prover = Prover::new(
            &interp,
            &model.artifact.header.ir_sha256,
            &model.keys(),
            &model.vd,
        )
        .unwrap()
        .with_key_budget(0)
        .with_shape_budget(0);
        let mut rng = StdRng::seed_from_u64(k as u64);
        let proof = unit::prove(&prover, plan, plan_digest, k, &mut rng, &mut |_| {}).unwrap();
        std::fs::write(unit_path(dir, k), proof.to_bytes()).unwrap();
    }
}

static RUN: OnceLock<Run> = OnceLock::new();

/// Removes the shared run's directory, with the copies of its units the tests damaged: a static
/// is never dropped, so this is registered with `atexit` once the run is made.
extern "C" fn remove_run() {
    if let Some(run) = RUN.get() {
        let _ = std::fs::remove_dir_all(run.model.dir.path());
    }
}

fn run() -> &'static Run {
    RUN.get_or_init(|| {
        let model = model();
        let interp = model.interp();
        let ir = &model.artifact.header.ir_sha256;
        let prover = Prover::new(&interp, ir, &model.keys(), &model.vd).unwrap();
        let single_path = model.dir.path().join("single.zkp");
        let single = prover
            .generate(
                &PROMPT,
                MAX_NEW,
                &single_path,
                &mut StdRng::seed_from_u64(1),
                &mut |_| {},
            )
            .unwrap();
        let artifact_bytes = std::fs::metadata(model.dir.path().join("model.circ"))
            .unwrap()
            .len();
        let plan = Plan::make(&prover, &PROMPT, MAX_NEW, artifact_bytes).unwrap();
        let plan_bytes = plan.to_json().into_bytes();
        let units = model.dir.path().join("units");
        prove_units(&model, &plan, &digest(&plan_bytes), &units);
        // SAFETY: `remove_run` cannot unwind, as a handler that `exit` calls must not.
        unsafe { libc::atexit(remove_run) };
        Run {
            model,
            plan,
            plan_bytes,
            single,
            units,
        }
    })
}

/// Per step, per stage: the layer that proved it and its public inputs.
type PublicContent = Vec<(u32, Vec<(u32, Vec<zkc_compiler::backend::F>)>)>;

/// A bundle's public content: everything but the proofs' group elements.
fn public_content(b: &Bundle) -> PublicContent {
    b.steps
        .iter()
        .map(|s| {
            let layers = s
                .layers
                .iter()
                .map(|l| (l.layer, l.publics.clone()))
                .collect();
            (s.step, layers)
        })
        .collect()
}

/// A copy of the run's unit directory, for a test to damage.
fn copy_units(name: &str) -> PathBuf {
    let run = run();
    let dir = run.model.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for k in 0..run.plan.units.len() {
        std::fs::copy(unit_path(&run.units, k), unit_path(&dir, k)).unwrap();
    }
    dir
}

fn assembled(dir: &Path) -> Result<Bundle, AssemblyError> {
    let run = run();
    assemble(&run.model.vd, &run.plan, &digest(&run.plan_bytes), dir)
}

#[test]
fn the_plan_lists_a_unit_per_step_and_stage_with_its_bucket() {
    let run = run();
    let plan = &run.plan;
    assert_eq!(plan.inputs.len(), PROMPT.len() + MAX_NEW - 1);
    assert_eq!(plan.stages(), run.model.vd.stages().len());
    assert_eq!(plan.units.len(), plan.inputs.len() * plan.stages());
    assert_eq!(&plan.inputs[..2], &PROMPT);
    assert_eq!(plan.inputs[2..], plan.outputs[1..plan.outputs.len() - 1]);
    // Steps 0-1 prove the blocks in bucket 2, steps 2-3 in bucket 4.
    for u in &plan.units {
        let key = &run.model.vd.layers[u.key];
        assert!(run.model.vd.stages()[u.stage].contains(&u.key));
        if let Some(context) = key.context {
            assert_eq!(context, if u.step < 2 { 2 } else { 4 }, "{u:?}");
        }
        assert!(u.constraints > 0 && u.memory_bytes > 0);
    }
    let text = String::from_utf8(run.plan_bytes.clone()).unwrap();
    assert_eq!(Plan::from_json(&text).unwrap(), *plan);
}

#[test]
fn units_proven_apart_assemble_into_the_single_process_bundle() {
    let run = run();
    let bundle = assembled(&run.units).unwrap();
    let verified = verify(&run.model.vd, &bundle.to_bytes(), false).unwrap();
    assert_eq!(verified.generated, run.plan.generated());
    assert_eq!(
        (&bundle.model, &bundle.prompt, bundle.max_new),
        (&run.single.model, &run.single.prompt, run.single.max_new)
    );
    assert_eq!(public_content(&bundle), public_content(&run.single));
    // The proofs themselves are randomized: another draw, the same statement.
    assert_ne!(bundle, run.single);
}

#[test]
fn a_set_with_units_missing_names_every_one() {
    let run = run();
    let dir = copy_units("missing");
    for k in [1, 2, 3, 9] {
        std::fs::remove_file(unit_path(&dir, k)).unwrap();
    }
    // A temporary file an interrupted writer left behind is not a unit.
    std::fs::write(dir.join(".unit-1.zkunit.zkc-tmp-1-0"), b"half").unwrap();
    match assembled(&dir) {
        Err(e @ AssemblyError::Missing { .. }) => {
            let AssemblyError::Missing { missing, total, .. } = &e else {
                unreachable!()
            };
            assert_eq!(missing, &[1, 2, 3, 9]);
            assert_eq!(*total, run.plan.units.len());
            assert!(e.to_string().contains("units have no proof in"), "{e}");
            assert!(e.to_string().contains(": 1-3, 9 (prove them"), "{e}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

fn unit_problem(dir: &Path) -> (usize, UnitError) {
    match assembled(dir) {
        Err(AssemblyError::Unit { unit, problem, .. }) => (unit, problem),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn a_corrupt_unit_is_refused_by_name() {
    let dir = copy_units("corrupt");
    let path = unit_path(&dir, 5);
    let honest = std::fs::read(&path).unwrap();
    // Truncated, then a flipped byte in the proof (undecodable or not verifying).
    std::fs::write(&path, &honest[..honest.len() - 7]).unwrap();
    assert!(matches!(unit_problem(&dir), (5, UnitError::Malformed(_))));
    let mut bytes = honest.clone();
    let at = bytes.len() - 60;
    bytes[at] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        unit_problem(&dir),
        (5, UnitError::Malformed(_) | UnitError::Invalid)
    ));
    // A public input changed: decodes, does not verify.
    let mut unit = UnitProof::from_bytes(&honest).unwrap();
    unit.proof.publics[0] += zkc_compiler::backend::F::from(1u64);
    std::fs::write(&path, unit.to_bytes()).unwrap();
    assert_eq!(unit_problem(&dir), (5, UnitError::Invalid));
}

#[test]
fn a_unit_of_another_step_or_another_plan_is_refused() {
    let run = run();
    let dir = copy_units("swapped");
    let stages = run.plan.stages();
    // Step 2's proof of stage 1 where step 0's belongs.
    std::fs::copy(unit_path(&run.units, 2 * stages + 1), unit_path(&dir, 1)).unwrap();
    assert_eq!(
        unit_problem(&dir),
        (
            1,
            UnitError::OtherUnit {
                found: 2 * stages + 1,
                step: 2,
                stage: 1,
                expected: 1
            }
        )
    );
    // Renumbered to claim unit 1: the bucket (key) gives it away, and were the key the same,
    // the proof's public inputs (position, states) would fail the links.
    let mut unit =
        UnitProof::from_bytes(&std::fs::read(unit_path(&run.units, 2 * stages + 1)).unwrap())
            .unwrap();
    (unit.unit, unit.step) = (1, 0);
    std::fs::write(unit_path(&dir, 1), unit.to_bytes()).unwrap();
    assert!(matches!(
        unit_problem(&dir),
        (1, UnitError::OtherKey { .. })
    ));
    let mut unit =
        UnitProof::from_bytes(&std::fs::read(unit_path(&run.units, stages + 1)).unwrap()).unwrap();
    (unit.unit, unit.step) = (1, 0);
    std::fs::write(unit_path(&dir, 1), unit.to_bytes()).unwrap();
    match assembled(&dir) {
        Err(AssemblyError::Rejected(why)) => {
            assert!(why.to_string().contains("step 0"), "{why}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    // A unit proven from another plan (another max_new: another file).
    let dir = copy_units("other-plan");
    let mut unit =
        UnitProof::from_bytes(&std::fs::read(unit_path(&run.units, 0)).unwrap()).unwrap();
    unit.plan = digest(b"another plan");
    std::fs::write(unit_path(&dir, 0), unit.to_bytes()).unwrap();
    assert!(matches!(
        unit_problem(&dir),
        (0, UnitError::OtherPlan { .. })
    ));
}

#[test]
fn a_worker_refuses_a_plan_its_artifact_does_not_generate() {
    let run = run();
    let interp = run.model.interp();
    let prover = Prover::new(
        &interp,
        &run.model.artifact.header.ir_sha256,
        &run.model.keys(),
        &run.model.vd,
    )
    .unwrap();
    let mut plan = run.plan.clone();
    plan.outputs[1] ^= 1;
    let last = plan.units.len() - 1;
    let why = unit::prove(
        &prover,
        &plan,
        "d",
        last,
        &mut StdRng::seed_from_u64(0),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(&why, ProvingError::Request(m) if m.contains("step 1: the model chooses token")),
        "{why}"
    );
    let mut plan = run.plan.clone();
    plan.model = "another".into();
    let why = unit::prove(
        &prover,
        &plan,
        "d",
        0,
        &mut StdRng::seed_from_u64(0),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        why.to_string().contains("the plan is for model another"),
        "{why}"
    );
    let why = unit::prove(
        &prover,
        &run.plan,
        "d",
        run.plan.units.len(),
        &mut StdRng::seed_from_u64(0),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(why.to_string().contains("there is no unit"), "{why}");
}
