//! Ops that pick by a public index: `gather` (a row of a constant table) and `kv_append` (write
//! one cache slot). Both use a one-hot selector `φ` over the slots, with `sum φ = 1` and
//! `sum k φ_k = index` (which also proves the index in range).
//!
//! These are the in-circuit forms that keep the table and the cache as circuit data; the
//! commitment-based forms of docs/ir.md (Merkle-committed tables, hash-chained caches) replace
//! how the data is authenticated, not what is selected.

use super::range::{boolean, equal};
use super::{field, int, weighted_sum, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};

/// `φ` one-hot at `index` over `slots`: `slots + 2` constraints.
pub fn one_hot(
    cs: &ConstraintSystemRef<F>,
    index: &Wire,
    slots: usize,
) -> Result<Vec<Wire>, SynthesisError> {
    let phi: Vec<Wire> = (0..slots)
        .map(|k| {
            let v = (index.value == k as i128) as i128;
            Ok(Wire {
                lc: boolean(cs, v)?.into(),
                value: v,
            })
        })
        .collect::<Result<_, SynthesisError>>()?;
    equal(
        cs,
        &phi.iter().fold(LinearCombination::zero(), |a, f| a + &f.lc),
        &Variable::One.into(),
    )?;
    let weighted = phi
        .iter()
        .enumerate()
        .fold(LinearCombination::zero(), |a, (k, f)| {
            a + (field(k as i128), &f.lc)
        });
    equal(cs, &weighted, &index.lc)?;
    Ok(phi)
}

/// Row `index` of the constant `table[rows, width]`: `rows + 2` constraints (the row is a
/// combination of the selector with the table as coefficients).
pub fn gather(
    cs: &ConstraintSystemRef<F>,
    table: &[i64],
    width: usize,
    index: &Wire,
) -> Result<Vec<Wire>, SynthesisError> {
    let rows = table.len() / width;
    let phi = one_hot(cs, index, rows)?;
    Ok((0..width)
        .map(|t| {
            let mut terms = Vec::new();
            let mut value = 0;
            for (k, f) in phi.iter().enumerate() {
                let c = table[k * width + t] as i128;
                if c != 0 {
                    terms.push((field(c), &f.lc));
                    value += c * f.value;
                }
            }
            Wire {
                lc: weighted_sum(terms),
                value,
            }
        })
        .collect())
}

/// The cache `state[slots, width]` with slot `pos` set to `x[width]`, given `phi`, the one-hot
/// at `pos` (shared by the layer's caches, see `backend::cache`): per element
/// `after = before + φ_j (x - before)`; `slots * width` constraints.
pub fn kv_append(
    cs: &ConstraintSystemRef<F>,
    state: &[Wire],
    x: &[Wire],
    phi: &[Wire],
) -> Result<Vec<Wire>, SynthesisError> {
    let width = x.len();
    state
        .iter()
        .enumerate()
        .map(|(i, before)| {
            let (f, xt) = (&phi[i / width], &x[i % width]);
            // Checked: `x` may be a free combination handed a wrong value.
            let value = int::add(
                before.value,
                int::mul(f.value, int::sub(xt.value, before.value)?)?,
            )?;
            let after = cs.new_witness_variable(|| Ok(field(value)))?;
            cs.enforce_r1cs_constraint(
                || f.lc.clone(),
                || xt.lc.clone() - &before.lc,
                || LinearCombination::from(after) - &before.lc,
            )?;
            Ok(Wire {
                lc: after.into(),
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::requant::bind;
    use crate::backend::test_util::{cs, wires, MODES};
    use crate::backend::Alloc;
    use zkc_lang::semantics::{self, Tensor};

    #[test]
    fn gather_selects_exactly_the_indexed_row() {
        let table: Vec<i64> = (0..12).map(|v| v * 7 - 30).collect();
        for idx in 0..4 {
            for mode in MODES {
                let cs = cs();
                let i = Wire::new(&cs, idx, mode).unwrap();
                let row = gather(&cs, &table, 3, &i).unwrap();
                assert_eq!(cs.num_constraints(), 4 + 2);
                let want = semantics::gather(
                    &Tensor::new(vec![4, 3], table.clone()).unwrap(),
                    &Tensor::scalar(idx as i64),
                )
                .unwrap();
                for (w, &v) in row.iter().zip(want.data()) {
                    assert_eq!(w.value, v as i128);
                    bind(&cs, w, w.value).unwrap();
                }
                assert!(cs.is_satisfied().unwrap());
                bind(&cs, &row[1], row[1].value + 7).unwrap();
                assert!(!cs.is_satisfied().unwrap(), "another row's value");
            }
        }
        for idx in [-1, 4] {
            let cs = cs();
            gather(&cs, &table, 3, &Wire::new(&cs, idx, Alloc::Input).unwrap()).unwrap();
            assert!(
                !cs.is_satisfied().unwrap(),
                "index {idx} is outside the table"
            );
        }
    }

    /// A full context of 64 slots of i64 values at the ends of the dtype: the last slot written
    /// exactly, a table's last row selected exactly.
    #[test]
    fn the_last_slot_and_row_at_the_ends_of_the_dtype() {
        let slots = 64;
        let before: Vec<i64> = (0..2 * slots)
            .map(|i| if i % 2 == 0 { i64::MIN } else { i64::MAX })
            .collect();
        let x = [i64::MAX, i64::MIN];
        let cs = cs();
        let state = wires(&cs, &before, Alloc::Witness);
        let p = Wire::new(&cs, slots as i128 - 1, Alloc::Input).unwrap();
        let phi = one_hot(&cs, &p, slots).unwrap();
        let after = kv_append(&cs, &state, &wires(&cs, &x, Alloc::Witness), &phi).unwrap();
        let want = semantics::kv_append(
            &Tensor::new(vec![slots, 2], before.clone()).unwrap(),
            &Tensor::new(vec![1, 2], x.to_vec()).unwrap(),
            &Tensor::scalar(slots as i64 - 1),
        )
        .unwrap();
        for (w, &v) in after.iter().zip(want.data()) {
            assert_eq!(w.value, v as i128);
            bind(&cs, w, w.value).unwrap();
        }
        assert!(cs.is_satisfied().unwrap());
        let row = gather(&cs, &before, 2, &p).unwrap();
        assert_eq!(
            row.iter().map(|w| w.value).collect::<Vec<_>>(),
            [i64::MIN as i128, i64::MAX as i128]
        );
        for w in &row {
            bind(&cs, w, w.value).unwrap();
        }
        assert!(cs.is_satisfied().unwrap());
        bind(&cs, &after[2 * slots - 1], i64::MAX as i128).unwrap();
        assert!(
            !cs.is_satisfied().unwrap(),
            "the last slot holds the new value"
        );
    }

    #[test]
    fn kv_append_writes_one_slot_and_nothing_else() {
        let before = [1, 2, 3, 4, 5, 6];
        for pos in 0..3 {
            let cs = cs();
            let state = wires(&cs, &before, Alloc::Witness);
            let x = wires(&cs, &[-8, 9], Alloc::Witness);
            let p = Wire::new(&cs, pos, Alloc::Input).unwrap();
            let phi = one_hot(&cs, &p, 3).unwrap();
            let after = kv_append(&cs, &state, &x, &phi).unwrap();
            assert_eq!(cs.num_constraints(), 3 + 2 + 6);
            let want = semantics::kv_append(
                &Tensor::new(vec![3, 2], before.to_vec()).unwrap(),
                &Tensor::new(vec![1, 2], vec![-8, 9]).unwrap(),
                &Tensor::scalar(pos as i64),
            )
            .unwrap();
            for (w, &v) in after.iter().zip(want.data()) {
                assert_eq!(w.value, v as i128);
                bind(&cs, w, w.value).unwrap();
            }
            assert!(cs.is_satisfied().unwrap());
            let other = (pos as usize * 2 + 2) % 6;
            bind(&cs, &after[other], -8).unwrap();
            assert!(
                !cs.is_satisfied().unwrap(),
                "a write to slot {} too",
                other / 2
            );
        }
        let cs = cs();
        let state = wires(&cs, &before, Alloc::Witness);
        let phi = one_hot(&cs, &Wire::new(&cs, 3, Alloc::Input).unwrap(), 3).unwrap();
        kv_append(&cs, &state, &wires(&cs, &[0, 0], Alloc::Witness), &phi).unwrap();
        assert!(!cs.is_satisfied().unwrap(), "a full context has no slot 3");
    }
}
