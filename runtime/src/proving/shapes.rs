//! The prover's cache of constraint matrices on disk (`KEYS/layer-N.shape`): a layer's matrices
//! take arkworks about as long to build as the rest of its proof, so `zkc setup` writes the
//! ones it gets from its own synthesis, and a prover whose memory budget they do not fit writes
//! them too; a later proof, in this process or another, reads them back instead (a d=768
//! block's are about 0.5 GB: under a second to read, 15-45 s to build).
//!
//! The file is a cache, never trusted for soundness (a wrong shape only gives proofs that fail
//! the prover's own check): it names the verifying key it was made under (its digest, which
//! differs at every setup) and carries the SHA-256 of its matrices, and anything that does not
//! match is ignored and rebuilt.

use super::committed::Shape;
use super::encoding::{header_bytes, split_header};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use zkc_compiler::backend::F;
use zkc_compiler::files::write_atomically;

/// The largest matrices written to the disk cache: reading and hashing gpt2-small's head's
/// (3.2 GB) took 20-31 s a step against 24 s to build them, while a block's (0.5 GB) read in
/// about a second against 15 s.
pub const CACHE_BYTES: u64 = 1 << 30;

const KIND: &str = "zkc-shape";
const VERSION: u64 = 1;

/// Where layer `index`'s cached matrices live.
pub fn shape_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("layer-{index}.shape"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `shape`, made under the verifying key with digest `key`, to `path`.
pub fn write(path: &Path, key: &[u8; 32], shape: &Shape) -> std::io::Result<()> {
    let mut payload = Vec::new();
    (
        shape.inputs as u64,
        shape.constraints as u64,
        &shape.matrices,
    )
        .serialize_uncompressed(&mut payload)
        .expect("writing to a Vec cannot fail");
    let header = json!({"key": hex(key), "sha256": hex(&Sha256::digest(&payload))});
    let mut out = header_bytes(KIND, VERSION, &header);
    out.extend(payload);
    write_atomically(path, &out)
}

/// The shape at `path` if it was made under the verifying key with digest `key` and is intact;
/// `None` otherwise (absent, another setup's, corrupt). Read as a stream, hashed as it goes,
/// so that no copy of the file's bytes is held beside the matrices.
pub fn read(path: &Path, key: &[u8; 32]) -> Option<Shape> {
    let mut file = BufReader::new(File::open(path).ok()?);
    let mut header = Vec::new();
    for _ in 0..2 {
        (&mut file).take(4096).read_until(b'\n', &mut header).ok()?;
    }
    let (header, rest) = split_header(&header, KIND, VERSION).ok()?;
    if !rest.is_empty() || header["key"].as_str() != Some(hex(key).as_str()) {
        return None;
    }
    let mut payload = Hashing {
        inner: file,
        hash: Sha256::new(),
    };
    type Stored = (u64, u64, Vec<Vec<Vec<(F, usize)>>>);
    let (inputs, constraints, mut matrices) =
        Stored::deserialize_uncompressed_unchecked(&mut payload).ok()?;
    // Read element by element, every row grew by doubling: up to twice its length held. The
    // prover keeps these in memory, so give back the slack.
    for row in matrices.iter_mut().flatten() {
        row.shrink_to_fit();
    }
    let ended = payload.read(&mut [0u8]).ok()? == 0;
    let sha256 = hex(&payload.hash.finalize());
    if !ended || header["sha256"].as_str() != Some(sha256.as_str()) {
        return None;
    }
    Some(Shape {
        matrices,
        inputs: usize::try_from(inputs).ok()?,
        constraints: usize::try_from(constraints).ok()?,
    })
}

/// A reader that hashes what it reads.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        let m = |k: u64| vec![vec![(F::from(k), 0usize), (F::from(k + 1), 2)], vec![]];
        Shape {
            matrices: vec![m(1), m(3), m(5)],
            inputs: 1,
            constraints: 2,
        }
    }

    #[test]
    fn a_shape_reads_back_only_under_its_key_and_intact() {
        let dir = tempfile::Builder::new()
            .prefix("zkc-shapes-")
            .tempdir()
            .unwrap();
        let path = shape_path(dir.path(), 3);
        let key = [7u8; 32];
        write(&path, &key, &shape()).unwrap();
        let back = read(&path, &key).expect("its own key");
        assert_eq!(back.matrices, shape().matrices);
        assert_eq!((back.inputs, back.constraints), (1, 2));
        assert!(read(&path, &[8u8; 32]).is_none(), "another setup's");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&path, &key).is_none(), "a changed byte");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(read(&path, &key).is_none(), "truncated");
        assert!(read(&dir.path().join("absent"), &key).is_none());
    }
}
