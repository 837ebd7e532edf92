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
use zkc_lang::DType;

/// A Merkle tree over the rows of a table; missing leaves (past the last row) are 0.
pub struct MerkleTree {
    levels: Vec<Vec<F>>,
}

fn depth(rows: usize) -> usize {
    rows.next_power_of_two().trailing_zeros() as usize
}

impl MerkleTree {
    pub fn new(table: &[i64], width: usize, dtype: DType) -> MerkleTree {
        let rows = table.len() / width;
        let mut level: Vec<F> = table.chunks(width).map(|row| commit(row, dtype)).collect();
        level.resize(rows.next_power_of_two(), F::zero());
        let mut levels = vec![level];
        while levels.last().expect("one level").len() > 1 {
            let next = levels
                .last()
                .expect("one level")
                .chunks(2)
                .map(|pair| hash(Domain::MerkleNode, pair))
                .collect();
            levels.push(next);
        }
        MerkleTree { levels }
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
}
