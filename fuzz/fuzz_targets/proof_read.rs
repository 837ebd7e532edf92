//! Arbitrary bytes as a proof bundle, verifying data, a unit's proof file or a plan, and
//! arbitrary byte flips of an honest bundle: parsing and verifying must return errors, never panic or allocate beyond the input,
//! and no changed bundle may verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::{rngs::StdRng, SeedableRng};
use std::sync::OnceLock;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::{generate_gpt2, FloatModel, ModelConfig, WeightType};
use zkc_compiler::quantize::{quantize, QuantConfig};
use zkc_runtime::interp::Interpreter;
use zkc_runtime::proving::bundle::Bundle;
use zkc_runtime::proving::keys::{vk_path, VerifyingData};
use zkc_runtime::proving::plan::Plan;
use zkc_runtime::proving::prover::Prover;
use zkc_runtime::proving::setup::setup;
use zkc_runtime::proving::unit::UnitProof;
use zkc_runtime::proving::verifier::verify;

struct Honest {
    vd: VerifyingData,
    bundle: Vec<u8>,
}

/// A 1-block model set up and proven for 3 steps, once per fuzzing process.
fn honest() -> &'static Honest {
    static HONEST: OnceLock<Honest> = OnceLock::new();
    HONEST.get_or_init(|| {
        let cfg = ModelConfig {
            n_layer: 1,
            n_embd: 32,
            n_head: 2,
            n_ctx: 8,
            n_vocab: 256,
            n_ff: 128,
            seed: 1,
            weight_type: WeightType::F32,
        };
        let gguf = GgufFile::from_bytes(generate_gpt2(&cfg).to_bytes()).unwrap();
        let module = quantize(&FloatModel::load(&gguf).unwrap(), &QuantConfig::default()).unwrap();
        let dir = std::env::temp_dir().join(format!("zkc-fuzz-{}", std::process::id()));
        let mut rng = StdRng::seed_from_u64(0);
        setup(&module, "fuzz", None, None, &dir, &mut rng, &mut |_, _, _| {}).unwrap();
        let vd = VerifyingData::read(&vk_path(&dir)).unwrap();
        let interp = Interpreter::new(module).unwrap();
        let prover = Prover::new(&interp, "fuzz", &dir, &vd).unwrap();
        let out = dir.join("run.zkp");
        prover
            .generate(&[1, 2], 2, &out, &mut rng, &mut |_| {})
            .unwrap();
        let bundle = std::fs::read(&out).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(verify(&vd, &bundle, false).is_ok());
        Honest { vd, bundle }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(bundle) = Bundle::from_bytes(rest) {
                assert_eq!(Bundle::from_bytes(&bundle.to_bytes()).unwrap(), bundle);
            }
            let _ = verify(&honest().vd, rest, true);
        }
        1 => {
            let _ = VerifyingData::from_bytes(rest);
        }
        2 => {
            if let Ok(unit) = UnitProof::from_bytes(rest) {
                assert_eq!(UnitProof::from_bytes(&unit.to_bytes()).unwrap(), unit);
            }
            if let Ok(plan) = Plan::from_json(&String::from_utf8_lossy(rest)) {
                assert_eq!(Plan::from_json(&plan.to_json()).unwrap(), plan);
                let _ = (plan.stages(), plan.generated());
            }
        }
        _ => {
            // `rest` as (offset, xor) triples over the honest bundle.
            let honest = honest();
            let mut bytes = honest.bundle.clone();
            for c in rest.chunks_exact(3) {
                let at = u16::from_le_bytes([c[0], c[1]]) as usize % bytes.len();
                bytes[at] ^= c[2];
            }
            if bytes != honest.bundle {
                assert!(
                    verify(&honest.vd, &bytes, false).is_err(),
                    "a changed bundle verified"
                );
            }
        }
    }
});
