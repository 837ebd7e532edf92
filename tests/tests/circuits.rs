//! Every layer of zkc's tiny model, over several steps of generation, as constraint systems
//! built from the interpreter's witness: satisfied when honest, unsatisfied when any sampled
//! intermediate value is changed.

use ark_relations::gr1cs::ConstraintSystem;
use zkc_compiler::backend::layer::{synthesize, Tables};
use zkc_compiler::backend::lookup::AssignmentDigest;
use zkc_compiler::backend::{cost, F};
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::{generate_gpt2, FloatModel, ModelConfig};
use zkc_compiler::passes;
use zkc_compiler::quantize::{quantize, QuantConfig};
use zkc_lang::semantics::Tensor;
use zkc_lang::{Module, Op, ValueDef};
use zkc_runtime::interp::{Interpreter, ModelRunner};

/// A smaller tiny model (1 block, d=32, context 8) keeps the debug-build test quick.
fn module() -> Module {
    let module = quantized(&ModelConfig {
        n_layer: 1,
        n_embd: 32,
        n_head: 2,
        n_head_kv: 2,
        n_ctx: 8,
        n_vocab: 256,
        n_ff: 128,
        seed: 3,
        weight_type: zkc_compiler::model::WeightType::F32,
    });
    zkc_compiler::backend::check::check(&module)
        .expect("the backend takes the quantizer's modules");
    module
}

/// zkc's model of this shape as `zkc compile` makes it: quantized with the defaults, then
/// optimized by the default passes.
fn quantized(cfg: &ModelConfig) -> Module {
    let gguf = GgufFile::from_bytes(generate_gpt2(cfg).to_bytes()).unwrap();
    let module = quantize(&FloatModel::load(&gguf).unwrap(), &QuantConfig::default()).unwrap();
    let pipeline = passes::default_pipeline(false);
    passes::run(module, &pipeline, &passes::Limits::default())
        .unwrap()
        .0
}

fn satisfied(module: &Module, layer: usize, values: &[Tensor]) -> (bool, usize, Vec<i128>) {
    let cs = ConstraintSystem::<F>::new_ref();
    let tables = Tables::new(module);
    let outputs = synthesize(&cs, module, &tables, layer, values, &AssignmentDigest).unwrap();
    (
        cs.is_satisfied().unwrap(),
        cs.num_constraints(),
        outputs.iter().map(|w| w.value).collect(),
    )
}

#[test]
fn every_layer_of_every_step_is_satisfied_by_the_interpreters_witness() {
    let module = module();
    let interp = Interpreter::new(module.clone()).unwrap();
    let mut runner = ModelRunner::new(&interp).unwrap();
    let mut token = 65;
    for step in 0..4 {
        let result = runner.step(token, true).unwrap();
        for run in result.witness.unwrap().iter() {
            let index = run.layer;
            let layer = &module.layers[index];
            let (ok, constraints, outputs) = satisfied(&module, index, &run.values);
            assert!(
                ok,
                "step {step}, layer `{}` ({constraints} constraints)",
                layer.name
            );
            let counted = cost::layer(&module, layer).1;
            assert_eq!(
                constraints, counted,
                "layer `{}`: the counted cost is the real one",
                layer.name
            );
            let want: Vec<i128> = run
                .outputs(layer)
                .iter()
                .flat_map(|t| t.data().iter().map(|&v| v as i128))
                .collect();
            assert_eq!(outputs, want, "the circuit's outputs are the interpreter's");
        }
        token = result.token;
    }
}

#[test]
fn changing_any_sampled_intermediate_value_breaks_the_circuit() {
    let module = module();
    let interp = Interpreter::new(module.clone()).unwrap();
    let mut runner = ModelRunner::new(&interp).unwrap();
    runner.step(7, false).unwrap();
    let witness = runner.step(9, true).unwrap().witness.unwrap();
    let mut checked = 0;
    for run in witness.iter() {
        let index = run.layer;
        let layer = &module.layers[index];
        // Every value the prover claims (the other gadgets compute their results from their
        // operands, and data movement has no witness of its own).
        for inst in &layer.insts {
            let claims = matches!(
                inst.op,
                Op::Requant { .. }
                    | Op::Softmax { .. }
                    | Op::LayerNorm { .. }
                    | Op::RmsNorm { .. }
                    | Op::Argmax
                    | Op::Mul
            );
            if !claims {
                continue;
            }
            let v = inst.results[0];
            assert!(matches!(layer.value(v).def, ValueDef::Inst { .. }));
            let mut values = run.values.clone();
            let t = &values[v.index()];
            let k = t.len() / 2;
            let mut data = t.data().to_vec();
            data[k] += 1;
            values[v.index()] = Tensor::new(t.shape().to_vec(), data).unwrap();
            let (still, _, _) = satisfied(&module, index, &values);
            assert!(
                !still,
                "layer `{}`: `%{}` + 1 at element {k} still satisfies",
                layer.name,
                layer.value(v).name
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "sampled {checked} values");
}

/// The public inputs link: each layer's output commitment is the next layer's input commitment,
/// and each state's commitment after a step is its commitment before the next step.
#[test]
fn public_commitments_link_layers_and_steps() {
    use zkc_compiler::backend::layer::public_inputs;
    let module = module();
    let interp = Interpreter::new(module.clone()).unwrap();
    let mut runner = ModelRunner::new(&interp).unwrap();
    let mut previous_after: Option<F> = None;
    let mut token = 3;
    for _ in 0..3 {
        let step = runner.step(token, true).unwrap();
        let witness = step.witness.unwrap();
        let publics: Vec<Vec<F>> = witness
            .iter()
            .map(|run| public_inputs(&module.layers[run.layer], &run.values))
            .collect();
        // embed: [pos, token | embd]; block: [embd, pos | cache before, after | out]; head: [in | token]
        let inputs = module.layers[1].inputs.len();
        assert_eq!(
            publics[0].last(),
            publics[1].first(),
            "embed's output is block 0's input"
        );
        assert_eq!(
            publics[1].last(),
            publics[2].first(),
            "block 0's output is the head's input"
        );
        let (before, after) = (publics[1][inputs], publics[1][inputs + 1]);
        if let Some(prev) = previous_after {
            assert_eq!(prev, before, "the caches carry over between steps");
        }
        assert_ne!(before, after, "a step writes the caches");
        previous_after = Some(after);
        token = step.token;
    }
}

/// The layer circuits are real Groth16 statements: each layer of one step proves and verifies
/// against its public inputs, and a proof does not verify with another step's inputs.
/// The tiny model's constraint counts per layer and op, as `zkc compile --emit stats` reports
/// them: a change of any gadget's cost shows up here.
#[test]
fn tiny_model_stats_snapshot() {
    let module = quantized(&ModelConfig::tiny());
    let mut text = String::new();
    for layer in &module.layers {
        let (by_op, total) = cost::layer(&module, layer);
        text += &format!("{}: {total}\n", layer.name);
        for (op, n) in by_op {
            text += &format!("  {op}: {n}\n");
        }
    }
    insta::assert_snapshot!(text);
}

/// With a vocabulary large enough, the token row is proven by Merkle path against the table's
/// root instead of by selection over every row.
#[test]
fn a_large_vocabulary_is_gathered_by_merkle_path() {
    let module = quantized(&ModelConfig {
        n_layer: 1,
        n_embd: 32,
        n_head: 2,
        n_head_kv: 2,
        n_ctx: 8,
        n_vocab: 8000,
        n_ff: 128,
        seed: 5,
        weight_type: zkc_compiler::model::WeightType::F32,
    });
    let interp = Interpreter::new(module.clone()).unwrap();
    let witness = ModelRunner::new(&interp)
        .unwrap()
        .step(7777, true)
        .unwrap()
        .witness
        .unwrap();
    let (ok, constraints, _) = satisfied(&module, 0, &witness[0].values);
    assert!(ok);
    assert_eq!(constraints, cost::layer(&module, &module.layers[0]).1);
    assert!(
        constraints < 8000,
        "{constraints} constraints: a path, not a selection over 8000 rows"
    );
}

/// Built and measured, every layer of the tiny model has the constraints its formulas count,
/// op by op; its witness variables and matrix nonzeros (`zkc compile --emit stats --exact`) are
/// a snapshot.
#[test]
fn tiny_model_measured_stats_match_the_formulas() {
    use zkc_compiler::backend::measure;
    let module = quantized(&ModelConfig::tiny());
    let interp = Interpreter::new(module.clone()).unwrap();
    let witness = zkc_runtime::interp::layers_at_step_zero(&interp, &|_| true).unwrap();
    let tables = Tables::new(&module);
    let mut text = String::new();
    for (index, run) in witness.iter().enumerate() {
        let run = run.as_ref().expect("every layer was wanted");
        let layer = &module.layers[index];
        let measured = measure::layer(&module, &tables, index, &run.values).unwrap();
        let (formulas, _) = cost::layer(&module, layer);
        text += &format!("{}:\n", cost::layer_label(&module, index));
        for (op, counted) in formulas {
            let m = measured.get(op).copied().unwrap_or_default();
            assert_eq!(m.constraints, counted, "layer `{}`, {op}", layer.name);
            if m.constraints + m.witnesses > 0 {
                text += &format!(
                    "  {op}: {} constraints, {} witnesses, {} nonzeros\n",
                    m.constraints, m.witnesses, m.nonzeros
                );
            }
        }
    }
    insta::assert_snapshot!(text);

    // Joined as `zkc compile` joins them (one lookup table, the blocks' functions' tables
    // shared where equal, links turned wires): the smallest bucket's circuit, measured.
    let joined = zkc_compiler::parts::join(module, 1 << 21);
    let interp = Interpreter::new(joined.clone()).unwrap();
    let index = 0;
    let witness = zkc_runtime::interp::layers_at_step_zero(&interp, &|l| l == index).unwrap();
    let tables = Tables::new(&joined);
    assert!(joined.layers[index]
        .name
        .starts_with("embed_block.0_block.1"));
    assert!(witness
        .iter()
        .enumerate()
        .all(|(l, run)| run.is_some() == (l == index)));
    let run = witness[index].as_ref().expect("wanted");
    let measured = measure::layer(&joined, &tables, index, &run.values).unwrap();
    for (op, counted) in cost::layer(&joined, &joined.layers[index]).0 {
        let m = measured.get(op).copied().unwrap_or_default();
        assert_eq!(m.constraints, counted, "joined layer, {op}");
    }
}

/// Llama's ops end to end: an `rmsnorm` then a `silu` fitted by the quantizer's SiLU fit, run by
/// the interpreter, proved by the backend's gadgets at the cost the formulas give, with results
/// close to float SiLU; a result off by one in either breaks the circuit.
#[test]
fn rmsnorm_and_silu_prove_the_interpreters_results() {
    use zkc_compiler::quantize::gelu::{fit_activation, Activation, DEGREE};
    let fit = fit_activation(Activation::Silu, 8, 16, 8).unwrap();
    let a = fit.attrs;
    let list = |v: &[i64]| {
        v.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let gamma = [4096, 3000, 5000, -4096, 4500, 4096, 2048, 8191];
    let text = format!(
        "zkir 1\n\nconst @g: i16[8] * 2^-12 = [{}]\nconst @coef: i64[{}, {}] = [{}]\n\n\
         layer mlp(%x: i16[2, 8] * 2^-8) {{\n  \
         %h = rmsnorm %x, @g, eps=1, shift=-4 : i16[2, 8] * 2^-8\n  \
         %y = silu %h, @coef, bound={}, width={}, tail={}, shift={} : i16[2, 8] * 2^-8\n  \
         return %y\n}}\n",
        list(&gamma),
        fit.segments,
        DEGREE + 1,
        list(&fit.coef),
        a.bound,
        a.width,
        a.tail,
        a.shift
    );
    let module = zkc_lang::check(&text).expect("valid").module;
    zkc_compiler::backend::check::check(&module).expect("the backend takes it");
    let x: Vec<i64> = (0..16).map(|i| (i * 397 % 2001) - 700).collect();
    let interp = Interpreter::new(module.clone()).unwrap();
    let run = interp
        .run_layer(0, vec![Tensor::new(vec![2, 8], x).unwrap()], vec![])
        .unwrap();
    let layer = &module.layers[0];
    let (ok, constraints, _) = satisfied(&module, 0, &run.values);
    assert!(ok);
    assert_eq!(constraints, cost::layer(&module, layer).1);
    let value = |name: &str| {
        layer
            .values
            .iter()
            .position(|v| v.name == name)
            .expect("named")
    };
    let (h, y) = (&run.values[value("h")], &run.values[value("y")]);
    for (&hv, &yv) in h.data().iter().zip(y.data()) {
        let real = hv as f64 / 256.0;
        let want = real / (1.0 + (-real).exp());
        assert!(
            (yv as f64 / 256.0 - want).abs() <= 0.5 / 256.0 + 5e-5,
            "silu({real})"
        );
    }
    for name in ["h", "y"] {
        for k in [0, 11] {
            let mut values = run.values.clone();
            let t = &values[value(name)];
            let mut data = t.data().to_vec();
            data[k] += 1;
            values[value(name)] = Tensor::new(t.shape().to_vec(), data).unwrap();
            assert!(!satisfied(&module, 0, &values).0, "%{name}[{k}] + 1");
        }
    }
}
