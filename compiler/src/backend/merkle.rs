//! Embedding rows proven against a Poseidon Merkle root (DESIGN §3): the row's values are
//! range-checked and hashed to a leaf (`commit`), the index's bits steer the path of
//! `depth = ceil(log2 rows)` two-to-one hashes (one product each to order the pair), and the top
//! must be the table's root, a constant of the circuit. The table itself stays out of the
//! circuit, which is what makes a 50,257-row table affordable.

use super::commit::{commit, commit_gadget, hash, hash_gadget, sponge_cost, Commitment, Domain};
use super::range::{below, decompose, equal, Ranges};
use super::{witness, Wire, F};
use ark_ff::Zero;
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::path::Path;
use zkc_lang::DType;

/// A Merkle tree over the rows of a table; missing leaves (past the last row) are 0.
pub struct MerkleTree {
    levels: Vec<Vec<F>>,
}

const CACHE_MAGIC: &[u8] = b"zkc-merkle 1\n";

fn depth(rows: usize) -> usize {
    rows.next_power_of_two().trailing_zeros() as usize
}

impl MerkleTree {
    pub fn new(table: &[i64], width: usize, dtype: DType) -> MerkleTree {
        let rows = table.len() / width;
        let mut level: Vec<F> = table
            .par_chunks(width)
            .map(|row| commit(row, dtype))
            .collect();
        level.resize(rows.next_power_of_two(), F::zero());
        let mut levels = vec![level];
        while levels.last().expect("one level").len() > 1 {
            let next = levels
                .last()
                .expect("one level")
                .par_chunks(2)
                .map(|pair| hash(Domain::MerkleNode, pair))
                .collect();
            levels.push(next);
        }
        MerkleTree { levels }
    }

    /// The tree of `table` from the file `path` if it holds this table's tree intact, else
    /// built and written there (best effort: a directory it cannot write only costs building
    /// it again). gpt2-small's token embedding takes about 50 s to build on 2 cores and a few
    /// milliseconds to read, which is what a worker proving only the embedding pays.
    pub fn cached(path: &Path, table: &[i64], width: usize, dtype: DType) -> MerkleTree {
        let mut key = Sha256::new();
        key.update(CACHE_MAGIC);
        key.update((width as u64).to_le_bytes());
        key.update(dtype.to_string().as_bytes());
        for chunk in table.chunks(1 << 16) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            key.update(&bytes);
        }
        let key: [u8; 32] = key.finalize().into();
        if let Some(tree) = std::fs::read(path)
            .ok()
            .and_then(|b| MerkleTree::read(&b, &key))
        {
            return tree;
        }
        let tree = MerkleTree::new(table, width, dtype);
        let _ = crate::files::write_atomically(path, &tree.to_bytes(&key));
        tree
    }

    /// The cache file: a magic line, the table's key, the SHA-256 of the rest, then each
    /// level's length and elements.
    fn to_bytes(&self, key: &[u8; 32]) -> Vec<u8> {
        let mut payload = Vec::new();
        (self.levels.len() as u64)
            .serialize_compressed(&mut payload)
            .expect("writing to a Vec cannot fail");
        for level in &self.levels {
            level
                .serialize_compressed(&mut payload)
                .expect("writing to a Vec cannot fail");
        }
        let mut out = CACHE_MAGIC.to_vec();
        out.extend_from_slice(key);
        out.extend_from_slice(&Sha256::digest(&payload));
        out.extend(payload);
        out
    }

    /// The tree in `bytes` if they are a cache file for the table with `key`, intact, and
    /// shaped as a tree (each level half the one below, one root).
    fn read(bytes: &[u8], key: &[u8; 32]) -> Option<MerkleTree> {
        let rest = bytes.strip_prefix(CACHE_MAGIC)?.strip_prefix(&key[..])?;
        let (sum, mut payload) = rest.split_at_checked(32)?;
        if Sha256::digest(payload).as_slice() != sum {
            return None;
        }
        let count = u64::deserialize_compressed(&mut payload).ok()?;
        let levels = (0..count.min(64))
            .map(|_| Vec::<F>::deserialize_compressed(&mut payload).ok())
            .collect::<Option<Vec<_>>>()?;
        let shaped = levels.last().is_some_and(|top| top.len() == 1)
            && levels.windows(2).all(|w| w[0].len() == 2 * w[1].len());
        (shaped && payload.is_empty() && levels.len() as u64 == count)
            .then_some(MerkleTree { levels })
    }

    pub fn root(&self) -> F {
        self.levels.last().expect("one level")[0]
    }

    fn sibling(&self, level: usize, index: usize) -> F {
        self.levels[level]
            .get(index ^ 1)
            .copied()
            .unwrap_or_default()
    }
}

/// Row `index` of `table[rows, width]`, proven a leaf of `tree`.
pub fn gather(
    cs: &ConstraintSystemRef<F>,
    tree: &MerkleTree,
    table: &[i64],
    width: usize,
    dtype: DType,
    index: &Wire,
) -> Result<Vec<Wire>, SynthesisError> {
    let rows = table.len() / width;
    let at = usize::try_from(index.value)
        .ok()
        .filter(|&i| i < rows)
        .unwrap_or(0);
    let row: Vec<Wire> = table[at * width..(at + 1) * width]
        .iter()
        .map(|&v| witness(cs, v as i128))
        .collect::<Result<_, _>>()?;
    let mut node = commit_gadget(cs, &row, dtype)?;
    let checked = below(cs, index.value, rows as u128)?;
    equal(cs, &checked.lc, &index.lc)?;
    let (bits_wire, bits) = decompose(
        cs,
        index.value.clamp(0, (1 << depth(rows)) - 1),
        0,
        depth(rows) as u32,
    )?;
    equal(cs, &bits_wire.lc, &index.lc)?;
    let mut position = at;
    for (level, &bit) in bits.iter().enumerate() {
        let sibling = witness_field(cs, tree.sibling(level, position))?;
        // left = node + bit * (sibling - node); right = node + sibling - left
        let left_value = if position & 1 == 1 {
            sibling.value
        } else {
            node.value
        };
        let left = witness_field(cs, left_value)?;
        cs.enforce_r1cs_constraint(
            || bit.into(),
            || sibling.lc.clone() - &node.lc,
            || left.lc.clone() - &node.lc,
        )?;
        let right = Commitment {
            lc: node.lc.clone() + &sibling.lc - &left.lc,
            value: node.value + sibling.value - left.value,
        };
        node = hash_gadget(cs, Domain::MerkleNode, &[left, right])?;
        position /= 2;
    }
    equal(
        cs,
        &node.lc,
        &LinearCombination::from((tree.root(), Variable::One)),
    )?;
    Ok(row)
}

fn witness_field(cs: &ConstraintSystemRef<F>, value: F) -> Result<Commitment, SynthesisError> {
    Ok(Commitment {
        lc: cs.new_witness_variable(|| Ok(value))?.into(),
        value,
    })
}

/// The constraints of [`gather`].
pub fn cost(rows: usize, width: usize, dtype: DType, r: Ranges) -> usize {
    let packed = width.div_ceil(super::commit::per_element(dtype));
    width * (r.rc(dtype.bits()) + 1)
        + sponge_cost(Domain::Tensor, packed)
        + (r.below(rows as u128) + 1)
        + (depth(rows) + 1)
        + depth(rows) * (1 + sponge_cost(Domain::MerkleNode, 2))
        + 1
}

/// Whether a table is cheaper proven by Merkle path than by one-hot selection over its rows
/// (weighed with bit range checks, so the choice does not depend on the circuit's table).
pub fn cheaper(rows: usize, width: usize, dtype: DType) -> bool {
    cost(rows, width, dtype, Ranges::Bits) < rows + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::requant::bind;
    use crate::backend::test_util::{cs, Lcg};
    use crate::backend::Alloc;

    fn table(rows: usize, width: usize) -> Vec<i64> {
        let mut rng = Lcg(81);
        (0..rows * width)
            .map(|_| rng.range(-32768, 32767))
            .collect()
    }

    #[test]
    fn every_row_is_proven_and_no_other() {
        for rows in [1, 2, 5, 8] {
            let t = table(rows, 3);
            let tree = MerkleTree::new(&t, 3, DType::I16);
            for idx in 0..rows as i128 {
                let cs = cs();
                let i = Wire::new(&cs, idx, Alloc::Input).unwrap();
                let row = gather(&cs, &tree, &t, 3, DType::I16, &i).unwrap();
                assert_eq!(
                    cs.num_constraints(),
                    cost(rows, 3, DType::I16, Ranges::Bits),
                    "rows {rows}"
                );
                let want = &t[idx as usize * 3..idx as usize * 3 + 3];
                assert_eq!(row.iter().map(|w| w.value as i64).collect::<Vec<_>>(), want);
                for w in &row {
                    bind(&cs, w, w.value).unwrap();
                }
                assert!(cs.is_satisfied().unwrap(), "rows {rows}, index {idx}");
            }
            for idx in [-1, rows as i128] {
                let cs = cs();
                gather(
                    &cs,
                    &tree,
                    &t,
                    3,
                    DType::I16,
                    &Wire::new(&cs, idx, Alloc::Input).unwrap(),
                )
                .unwrap();
                assert!(!cs.is_satisfied().unwrap(), "index {idx} of {rows} rows");
            }
        }
    }

    #[test]
    fn a_row_of_another_table_is_rejected() {
        let t = table(4, 3);
        let tree = MerkleTree::new(&t, 3, DType::I16);
        let mut other = t.clone();
        other[7] += 1;
        let changed = cs();
        gather(
            &changed,
            &tree,
            &other,
            3,
            DType::I16,
            &Wire::new(&changed, 2, Alloc::Input).unwrap(),
        )
        .unwrap();
        assert!(!changed.is_satisfied().unwrap(), "row 2 changed");
        let unchanged = cs();
        gather(
            &unchanged,
            &tree,
            &other,
            3,
            DType::I16,
            &Wire::new(&unchanged, 1, Alloc::Input).unwrap(),
        )
        .unwrap();
        assert!(unchanged.is_satisfied().unwrap(), "row 1 is unchanged");
    }

    #[test]
    fn big_tables_choose_merkle_paths() {
        assert!(!cheaper(256, 64, DType::I16));
        assert!(cheaper(50257, 768, DType::I16));
        assert!(cost(50257, 768, DType::I16, Ranges::Bits) < 30_000);
    }

    /// The cache gives the tree it would build; a corrupt or truncated file, or one of another
    /// table, is rebuilt over rather than believed.
    #[test]
    fn a_cached_tree_is_the_built_one_and_a_bad_cache_is_rebuilt() {
        let dir = tempfile::Builder::new()
            .prefix("zkc-merkle-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("table-0.merkle");
        let (data, width) = (table(37, 5), 5);
        let built = MerkleTree::new(&data, width, DType::I16);
        let first = MerkleTree::cached(&path, &data, width, DType::I16);
        assert_eq!(first.levels, built.levels);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            MerkleTree::cached(&path, &data, width, DType::I16).levels,
            built.levels
        );
        let mut other = data.clone();
        other[3] += 1;
        let other_tree = MerkleTree::cached(&path, &other, width, DType::I16);
        assert_ne!(other_tree.root(), built.root());
        assert_eq!(
            other_tree.levels,
            MerkleTree::new(&other, width, DType::I16).levels
        );
        for damaged in [bytes[..bytes.len() - 9].to_vec(), {
            let mut b = bytes.clone();
            let at = b.len() - 40;
            b[at] ^= 1;
            b
        }] {
            std::fs::write(&path, &damaged).unwrap();
            assert_eq!(
                MerkleTree::cached(&path, &data, width, DType::I16).levels,
                built.levels
            );
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "rewritten");
        }
        dir.close().unwrap();
    }
}
