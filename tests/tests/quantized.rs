//! The integer model: zkc's tiny GPT-2 quantized, run in integers, written as IR text and run
//! again from the text, and measured against the float reference.

use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::{generate_gpt2, FloatModel, ModelConfig};
use zkc_compiler::quantize::{calibration_tokens, quantize, QuantConfig};
use zkc_lang::{ConstData, Module};
use zkc_runtime::accuracy::{evaluate, Summary};
use zkc_runtime::interp::{Interpreter, ModelRunner};

fn tiny() -> GgufFile {
    GgufFile::from_bytes(generate_gpt2(&ModelConfig::tiny()).to_bytes()).unwrap()
}

fn tiny_module() -> Module {
    let gguf = tiny();
    let model = FloatModel::load(&gguf).unwrap();
    quantize(&model, &QuantConfig::default()).unwrap()
}

/// The layers and every instruction, constants without their data: the shape of the program.
#[test]
fn tiny_model_ir_snapshot() {
    let mut module = tiny_module();
    for c in &mut module.consts {
        c.data = ConstData::Extern;
    }
    insta::assert_snapshot!(zkc_lang::print(&module));
}

#[test]
fn ir_text_runs_bit_identically() {
    let module = tiny_module();
    let text = zkc_lang::print(&module);
    let parsed = zkc_lang::check(&text)
        .unwrap_or_else(|_| panic!("the printed module checks"))
        .module;
    assert!(
        parsed == module,
        "parse(print(module)) differs from the module"
    );
    let (a, b) = (
        Interpreter::new(module).unwrap(),
        Interpreter::new(parsed).unwrap(),
    );
    let (mut ra, mut rb) = (ModelRunner::new(&a).unwrap(), ModelRunner::new(&b).unwrap());
    let mut token = 7;
    for _ in 0..6 {
        let (sa, sb) = (ra.step(token, true).unwrap(), rb.step(token, true).unwrap());
        assert_eq!((sa.token, &sa.logits), (sb.token, &sb.logits));
        let (wa, wb) = (sa.witness.unwrap(), sb.witness.unwrap());
        for (la, lb) in wa.iter().zip(&wb) {
            assert_eq!(la.values, lb.values, "every recorded value agrees");
        }
        token = sa.token;
    }
}

#[test]
fn integer_model_tracks_the_float_reference() {
    let gguf = tiny();
    let model = FloatModel::load(&gguf).unwrap();
    let interp = Interpreter::new(quantize(&model, &QuantConfig::default()).unwrap()).unwrap();
    let tokens = calibration_tokens(model.text().unwrap(), 128, 1);
    let positions = evaluate(&model, &interp, &tokens).unwrap();
    let s = Summary::new(&positions, 0.02);
    assert!(s.top1_agreement >= 0.95, "{s:?}");
    assert!(s.clear_agreement >= 0.99, "{s:?}");
    assert!(s.mean_kl <= 1e-3, "{s:?}");
}

#[test]
fn layers_follow_the_model_interface() {
    let module = tiny_module();
    let stages = module.stages();
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["embed", "block.0", "block.1", "head"]);
    // The blocks in context buckets 16, 32 and 64 (the model's context).
    let contexts = |s: usize| -> Vec<Option<usize>> {
        stages[s]
            .layers
            .iter()
            .map(|&l| module.layers[l].context())
            .collect()
    };
    assert_eq!(contexts(0), [None]);
    assert_eq!(contexts(1), [Some(16), Some(32), Some(64)]);
    assert_eq!(contexts(2), [Some(16), Some(32), Some(64)]);
    assert_eq!(contexts(3), [None]);
    let inputs = |s: usize| -> Vec<&str> {
        let layer = &module.layers[stages[s].layers[0]];
        layer
            .inputs
            .iter()
            .map(|&v| layer.value(v).name.as_str())
            .collect()
    };
    assert_eq!(inputs(0), ["pos", "token"]);
    assert_eq!(inputs(1), ["embd", "pos"]);
    assert_eq!(inputs(3), ["blk.1.ffn_residual"]);
    // One K and one V cache per head, each [ctx, head_dim].
    let block = &module.layers[*stages[1].layers.last().unwrap()];
    assert_eq!(block.states.len(), 8);
    assert_eq!(block.value(block.states[0]).ty.shape, vec![64, 16]);
}

#[test]
fn generation_stops_when_the_context_is_full() {
    let module = tiny_module();
    let interp = Interpreter::new(module).unwrap();
    let mut runner = ModelRunner::new(&interp).unwrap();
    let (generated, _) = runner.generate(&[1; 60], 100).unwrap();
    assert_eq!(generated.len(), 5);
    let err = runner
        .step(1, false)
        .err()
        .expect("slot 64 does not exist")
        .to_string();
    assert!(
        err.contains("`%position_embd` (gather): index 64 is out of range 0..64"),
        "{err}"
    );
}

/// 32-bit GELU inputs sit at about 2^-30, finer than the fit takes (2^-16): the lowering shifts
/// them first, and the model still tracks the float reference.
#[test]
fn fine_gelu_inputs_are_shifted_before_the_gelu() {
    let gguf = tiny();
    let model = FloatModel::load(&gguf).unwrap();
    let mut config = QuantConfig::default();
    config.set_bits("gelu_in=32").unwrap();
    let module = quantize(&model, &config).unwrap();
    let block = &module.layers[1];
    let shifted = block
        .values
        .iter()
        .find(|v| v.name == "blk.0.ffn_gelu.in")
        .expect("a shifted GELU input");
    assert_eq!(shifted.ty.scale, zkc_lang::Scale::pow2(-16).unwrap());
    let interp = Interpreter::new(module).unwrap();
    let tokens = calibration_tokens(model.text().unwrap(), 64, 1);
    let s = Summary::new(&evaluate(&model, &interp, &tokens).unwrap(), 0.02);
    assert!(s.clear_agreement >= 0.99 && s.mean_kl <= 1e-3, "{s:?}");
}
