//! Groth16 keys per layer (DESIGN §4): `zkc setup` writes `KEYS/layer-N.pk` (the prover's, large,
//! uncompressed for fast loading) and `KEYS/vk`, the verifying data anyone needs: every layer's
//! verifying key, its public-input layout, the commitments of its states before the first step,
//! the model's IR hash and context, the vocabulary for printing text, and for a single-pass
//! model the types of its input and output (to print them as reals). The model commitment is
//! the SHA-256 of the `vk` file, so it covers the IR (and with it every constant) and every key.
//!
//! `vk` version 4 added the single-pass types (`pass`, `null` for a token loop); version 3
//! files, all token loops, are still read.
//!
//! A local setup is a trusted setup: whoever knows the randomness it drew can prove false
//! statements. zkc draws it from the OS and never writes it down (docs/proving.md).

use super::committed::{Prepared, ProvingKey, RoundOneKey, VerifyingKey};
use super::encoding::{
    field_hex, header_bytes, hex, parse_field_hex, put_u32, split_header, split_header_of,
    DecodeError, Reader,
};
use super::Curve;
use ark_bn254::{G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use zkc_compiler::backend::layer::{initial_states, layout, Public, Role};
use zkc_compiler::backend::F;
use zkc_compiler::files::write_atomically;
use zkc_lang::{DType, Module, Scale, TensorType};

pub const VK_KIND: &str = "zkc-vk";
pub const PK_KIND: &str = "zkc-pk";
/// The proving keys' version.
pub const VERSION: u64 = 3;
/// The verifying data's version; [`VK_OLDEST`] and later are read.
pub const VK_VERSION: u64 = 4;
pub const VK_OLDEST: u64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source} (rerun `zkc setup`)")]
    Decode { path: String, source: DecodeError },
    #[error("{path} was made for another model (IR {found}, the artifact's is {expected}): rerun `zkc setup`")]
    OtherModel {
        path: String,
        found: String,
        expected: String,
    },
}

/// One layer's verifying data.
#[derive(Clone, Debug)]
pub struct LayerKey {
    pub name: String,
    /// The module layer it is for (its `KEYS/layer-N.pk`): setup may key only some buckets.
    pub layer: usize,
    /// The context bucket (the caches' slots) of a layer with caches; adjacent keys of one
    /// name are the buckets of one stage, ascending.
    pub context: Option<usize>,
    pub constraints: usize,
    pub publics: Vec<Public>,
    /// The commitment of the layer's caches before step 0 (the empty chain), if it has caches.
    pub initial_states: Vec<F>,
    /// Groth16's key, with the first round's `[δ₁]₂` when the layer has lookups
    /// (`super::committed`).
    pub vk: VerifyingKey,
}

/// A single-pass model's interface: the types of `%input` and `%output`, whose scales turn
/// their integers into reals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassTypes {
    pub input: TensorType,
    pub output: TensorType,
}

/// The contents of `KEYS/vk`.
#[derive(Clone, Debug)]
pub struct VerifyingData {
    pub ir_sha256: String,
    /// The most positions a generation can have (the KV caches' slots); 0 for a single pass.
    pub context: usize,
    /// Token strings for printing text (decoding only), when the model has a tokenizer.
    pub vocabulary: Option<Vec<String>>,
    /// A single-pass model's input and output types; `None` for a token loop.
    pub pass: Option<PassTypes>,
    pub layers: Vec<LayerKey>,
    /// SHA-256 of the file's bytes: what a proof bundle names its model by.
    pub commitment: String,
}

impl LayerKey {
    /// Describes layer `index` of `module` for its verifying key.
    pub fn of(module: &Module, index: usize, constraints: usize, vk: VerifyingKey) -> Self {
        let layer = &module.layers[index];
        LayerKey {
            name: layer.name.clone(),
            layer: index,
            context: layer.context(),
            constraints,
            publics: layout(layer),
            initial_states: initial_states(layer),
            vk,
        }
    }
}

impl VerifyingData {
    /// The stages: runs of adjacent keys of one name (a stage's context buckets, ascending),
    /// as indices into `layers`.
    pub fn stages(&self) -> Vec<Vec<usize>> {
        let mut stages: Vec<Vec<usize>> = Vec::new();
        for (k, layer) in self.layers.iter().enumerate() {
            match stages.last_mut() {
                Some(stage) if self.layers[stage[0]].name == layer.name => stage.push(k),
                _ => stages.push(vec![k]),
            }
        }
        stages
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "layer": l.layer,
                    "context": l.context,
                    "constraints": l.constraints,
                    "publics": l.publics.iter().map(|p| json!({
                        "role": p.role.name(), "name": p.name,
                    })).collect::<Vec<_>>(),
                    "initial_states": l.initial_states.iter().map(field_hex).collect::<Vec<_>>(),
                })
            })
            .collect();
        let pass = self
            .pass
            .as_ref()
            .map(|p| json!({"input": type_json(&p.input), "output": type_json(&p.output)}));
        let header = json!({
            "zkc": env!("CARGO_PKG_VERSION"),
            "ir_sha256": self.ir_sha256,
            "context": self.context,
            "vocabulary": self.vocabulary,
            "pass": pass,
            "layers": layers,
        });
        let mut out = header_bytes(VK_KIND, VK_VERSION, &header);
        for l in &self.layers {
            let vk = l.vk.to_bytes();
            put_u32(&mut out, vk.len() as u32);
            out.extend_from_slice(&vk);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<VerifyingData, DecodeError> {
        let (_, header, rest) = split_header_of(bytes, VK_KIND, VK_OLDEST..=VK_VERSION)?;
        let bad = |what: &str| DecodeError::Header(format!("no valid `{what}`"));
        let text = |v: &Value, key: &str| v[key].as_str().map(String::from).ok_or_else(|| bad(key));
        let count =
            |v: &Value, key: &str| v[key].as_u64().map(|n| n as usize).ok_or_else(|| bad(key));
        let vocabulary = match &header["vocabulary"] {
            Value::Null => None,
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|t| {
                        t.as_str()
                            .map(String::from)
                            .ok_or_else(|| bad("vocabulary"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(bad("vocabulary")),
        };
        let mut reader = Reader::new(rest);
        let mut layers = Vec::new();
        for (k, l) in header["layers"]
            .as_array()
            .ok_or_else(|| bad("layers"))?
            .iter()
            .enumerate()
        {
            let publics: Vec<Public> = l["publics"]
                .as_array()
                .ok_or_else(|| bad("publics"))?
                .iter()
                .map(|p| {
                    Ok(Public {
                        role: p["role"]
                            .as_str()
                            .and_then(Role::from_name)
                            .ok_or_else(|| bad("role"))?,
                        name: text(p, "name")?,
                    })
                })
                .collect::<Result<_, DecodeError>>()?;
            let initial_states: Vec<F> = l["initial_states"]
                .as_array()
                .ok_or_else(|| bad("initial_states"))?
                .iter()
                .map(|c| {
                    c.as_str()
                        .and_then(parse_field_hex)
                        .ok_or_else(|| bad("initial_states"))
                })
                .collect::<Result<_, _>>()?;
            let roles = |role| publics.iter().filter(|p: &&Public| p.role == role).count();
            let states = (roles(Role::StateBefore), roles(Role::StateAfter));
            if states != (initial_states.len(), initial_states.len()) {
                return Err(DecodeError::Header(format!(
                    "layer {k} has {} states before, {} after and {} initial states",
                    states.0,
                    states.1,
                    initial_states.len()
                )));
            }
            let what = format!("layer {k}'s verifying key");
            let mut vk_bytes = Reader::new(reader.sized(&what)?);
            let vk = VerifyingKey {
                vk: vk_bytes.value(&what)?,
                delta1_g2: vk_bytes.value::<Option<G2Affine>>(&what)?,
            };
            // Groth16's verifier does not check the count of public inputs itself; a layer
            // with lookups has its challenge as one more.
            let inputs = publics.len() + 1 + usize::from(vk.delta1_g2.is_some());
            if !vk_bytes.is_empty() || vk.vk.gamma_abc_g1.len() != inputs {
                return Err(DecodeError::Invalid(format!(
                    "{what} (it does not take the layer's {} public inputs)",
                    publics.len()
                )));
            }
            // `[δ₁]₂ = 0` would let any first-round commitment pass.
            if vk.delta1_g2.is_some_and(|d| d.is_zero()) {
                return Err(DecodeError::Invalid(format!("{what} (its [δ₁]₂ is zero)")));
            }
            let context = match &l["context"] {
                Value::Null => None,
                c => Some(
                    c.as_u64()
                        .filter(|&c| c > 0)
                        .ok_or_else(|| bad("context"))? as usize,
                ),
            };
            let name = text(l, "name")?;
            if let Some(previous) = layers.last().filter(|p: &&LayerKey| p.name == name) {
                if !matches!((previous.context, context), (Some(a), Some(b)) if a < b) {
                    return Err(DecodeError::Header(format!(
                        "layer {k} repeats `{name}` but is not a larger context bucket"
                    )));
                }
            }
            layers.push(LayerKey {
                name,
                layer: count(l, "layer")?,
                context,
                constraints: count(l, "constraints")?,
                publics,
                initial_states,
                vk,
            });
        }
        if !reader.is_empty() {
            return Err(DecodeError::Invalid(format!(
                "the {} bytes after the last verifying key",
                reader.remaining()
            )));
        }
        let pass = match &header["pass"] {
            Value::Null => None,
            p => Some(PassTypes {
                input: type_from_json(&p["input"]).ok_or_else(|| bad("pass"))?,
                output: type_from_json(&p["output"]).ok_or_else(|| bad("pass"))?,
            }),
        };
        // A single pass has no states, so no stage with buckets: its layers' names differ.
        if pass.is_some() && layers.iter().any(|l| !l.initial_states.is_empty()) {
            return Err(DecodeError::Header(
                "a single-pass model's layer has states".into(),
            ));
        }
        Ok(VerifyingData {
            ir_sha256: text(&header, "ir_sha256")?,
            context: count(&header, "context")?,
            vocabulary,
            pass,
            layers,
            commitment: hex(&Sha256::digest(bytes)),
        })
    }

    pub fn read(path: &Path) -> Result<VerifyingData, KeyError> {
        let bytes = read_file(path)?;
        VerifyingData::from_bytes(&bytes).map_err(|source| KeyError::Decode {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn write(&mut self, path: &Path) -> Result<(), KeyError> {
        let bytes = self.to_bytes();
        self.commitment = hex(&Sha256::digest(&bytes));
        write_atomically(path, &bytes).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The layers' keys, each prepared for verifying when first used.
    pub fn prepared(&self) -> PreparedKeys {
        PreparedKeys {
            keys: self
                .layers
                .iter()
                .map(|l| (l.vk.clone(), OnceLock::new()))
                .collect(),
        }
    }
}

/// A tensor type as the verifying data writes it: `{"dtype": "i16", "shape": [1, 8],
/// "scale": [1, -8]}` (the scale as mantissa and power of two).
fn type_json(ty: &TensorType) -> Value {
    json!({
        "dtype": ty.dtype.name(),
        "shape": ty.shape,
        "scale": [ty.scale.mantissa(), ty.scale.exp()],
    })
}

fn type_from_json(v: &Value) -> Option<TensorType> {
    let dtype = DType::from_name(v["dtype"].as_str()?)?;
    let shape = (v["shape"].as_array()?.iter())
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<Vec<_>>>()?;
    let scale = match v["scale"].as_array()?.as_slice() {
        [m, e] => Scale::new(m.as_u64()?, i32::try_from(e.as_i64()?).ok()?)?,
        _ => return None,
    };
    let ty = TensorType::new(dtype, shape, scale);
    ty.is_supported().then_some(ty)
}

/// Verifying keys prepared when first used: a bundle uses only the buckets its steps ran in,
/// and preparing a key (a pairing and two G2 line tables) takes about 1.5 ms, so a verifier of a
/// few steps with keys for every bucket (86 on gpt2-small at context 1024) pays only for the
/// keys it uses.
pub struct PreparedKeys {
    keys: Vec<(VerifyingKey, OnceLock<Prepared>)>,
}

impl PreparedKeys {
    /// Key `k` (an index into the verifying data's layers), prepared.
    pub fn get(&self, k: usize) -> &Prepared {
        let (key, prepared) = &self.keys[k];
        prepared.get_or_init(|| Prepared::new(key))
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Where layer `index`'s proving key lives.
pub fn pk_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("layer-{index}.pk"))
}

pub fn vk_path(dir: &Path) -> PathBuf {
    dir.join("vk")
}

/// Writes a proving key with the layer and IR it belongs to.
pub fn write_pk(
    path: &Path,
    layer: &str,
    ir_sha256: &str,
    pk: &ProvingKey,
) -> Result<(), KeyError> {
    let mut out = header_bytes(
        PK_KIND,
        VERSION,
        &json!({"layer": layer, "ir_sha256": ir_sha256}),
    );
    let round_one = pk
        .round_one
        .as_ref()
        .map(|r| (r.query.clone(), r.delta1_g1, r.delta1_g2));
    (&pk.pk, round_one)
        .serialize_uncompressed(&mut out)
        .expect("writing to a Vec cannot fail");
    write_atomically(path, &out).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a proving key, refusing one made for another IR. The points are not re-checked: the
/// key is the prover's own file, and a wrong key only yields proofs that do not verify (the
/// prover checks each proof it makes).
pub fn read_pk(path: &Path, ir_sha256: &str) -> Result<ProvingKey, KeyError> {
    let bytes = read_file(path)?;
    let name = path.display().to_string();
    let decode = |source| KeyError::Decode {
        path: name.clone(),
        source,
    };
    let (header, mut rest) = split_header(&bytes, PK_KIND, VERSION).map_err(decode)?;
    let found = header["ir_sha256"]
        .as_str()
        .ok_or_else(|| decode(DecodeError::Header("no `ir_sha256`".into())))?;
    if found != ir_sha256 {
        return Err(KeyError::OtherModel {
            path: name,
            found: found.to_string(),
            expected: ir_sha256.to_string(),
        });
    }
    type RoundOne = Option<(Vec<G1Affine>, G1Affine, G2Affine)>;
    let (pk, round_one) =
        <(ark_groth16::ProvingKey<Curve>, RoundOne)>::deserialize_uncompressed_unchecked(&mut rest)
            .map_err(|_| decode(DecodeError::Invalid("the proving key".into())))?;
    Ok(ProvingKey {
        pk,
        round_one: round_one.map(|(query, delta1_g1, delta1_g2)| RoundOneKey {
            query,
            delta1_g1,
            delta1_g2,
        }),
    })
}
