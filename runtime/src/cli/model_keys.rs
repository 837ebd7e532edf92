use crate::interp::Interpreter;
use crate::proving::keys::{vk_path, KeyError, VerifyingData};
use crate::proving::prover::Prover;
use std::path::PathBuf;
use zkc_compiler::artifact::{self, Header};
use zkc_compiler::tokenizer::Tokenizer;

/// The compiled model and its keys, as `prove`, `plan` and `prove-part` take them.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelKeys {
    /// The compiled model (`zkc compile`).
    pub artifact: PathBuf,
    /// The key directory (`zkc setup`).
    #[arg(long)]
    pub keys: PathBuf,
}

/// The artifact read and its module in the interpreter, which the prover borrows.
pub struct Loaded {
    pub header: Header,
    pub tokenizer: Option<Tokenizer>,
    pub interp: Interpreter,
}

impl ModelKeys {
    pub fn verifying_data(&self) -> Result<VerifyingData, KeyError> {
        VerifyingData::read(&vk_path(&self.keys))
    }

    pub fn load(&self) -> Result<Loaded, Box<dyn std::error::Error>> {
        let artifact::Artifact {
            header,
            module,
            tokenizer,
        } = artifact::read(&self.artifact)?;
        Ok(Loaded {
            header,
            tokenizer,
            interp: Interpreter::new(module)?,
        })
    }

    /// The prover of `loaded` with these keys, whose verifying data is `vd`.
    pub fn prover<'m>(
        &self,
        loaded: &'m Loaded,
        vd: &VerifyingData,
    ) -> Result<Prover<'m>, Box<dyn std::error::Error>> {
        Ok(Prover::new(
            &loaded.interp,
            &loaded.header.ir_sha256,
            &self.keys,
            vd,
        )?)
    }
}
