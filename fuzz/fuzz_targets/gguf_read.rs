//! Arbitrary bytes as a GGUF file: the reader, the dequantizers, the tokenizer, the model mapping
//! and one float step must return errors, never panic, hang or allocate beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::FloatModel;
use zkc_compiler::tokenizer::Tokenizer;

fuzz_target!(|data: &[u8]| {
    let Ok(gguf) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    for t in gguf.tensors() {
        if let Ok(values) = gguf.tensor_f32(t) {
            assert_eq!(values.len() as u64, t.elements());
        }
    }
    if let Ok(tokenizer) = Tokenizer::from_gguf(&gguf) {
        let ids = tokenizer.encode("fuzz 123 héllo");
        let _ = tokenizer.decode(&ids);
    }
    if let Ok(model) = FloatModel::load(&gguf) {
        let _ = model.session().step(0);
    }
});
