//! `argmax` per row of length `L`: a one-hot selector `σ` (L booleanity + 1 sum), the chosen
//! value `m` with `σ_j * (m - x_j) = 0` (L), and `m - x_j - before_j` in `w` bits (`rc(w) + 1`
//! each), where `before_j = sum_{k > j} σ_k` is 1 exactly before the chosen index: `m >= x_j`
//! everywhere and `m > x_j` before it, the lowest-index tie rule. `before_j` is a running sum,
//! one variable per slot (`before_j = before_{j+1} + σ_{j+1}`, `L - 2` constraints), so that
//! every row stays short: as one combination per slot it would put `L^2 / 2` terms in the
//! matrices (1.3 billion for GPT-2's vocabulary).
//! `R * (L * (rc(w) + 3) + 1 + max(L - 2, 0))` constraints. Witness: the gaps
//! `m - x_j - before_j` are checked ([`super::int`]; honest ones are below 2^65).

use super::range::{boolean, equal, range_checked, Ranges};
use super::{field, int, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};

/// `claimed[r]` is the prover's index for row `r`; `w` the bit width of `x`'s dtype.
pub fn argmax(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    row_len: usize,
    w: u32,
    claimed: &[i64],
) -> Result<Vec<Wire>, SynthesisError> {
    x.chunks(row_len)
        .zip(claimed)
        .map(|(row, &chosen)| {
            let sigma: Vec<Variable> = (0..row.len())
                .map(|j| boolean(cs, (j as i64 == chosen) as i128))
                .collect::<Result<_, SynthesisError>>()?;
            equal(
                cs,
                &LinearCombination::sum_vars(&sigma),
                &Variable::One.into(),
            )?;
            let m_value = usize::try_from(chosen)
                .ok()
                .and_then(|c| row.get(c))
                .map_or(0, |x| x.value);
            let m = cs.new_witness_variable(|| Ok(field(m_value)))?;
            // From the last slot back: before = sum of σ after slot j.
            let mut before = LinearCombination::zero();
            for (j, xj) in row.iter().enumerate().rev() {
                cs.enforce_r1cs_constraint(
                    || sigma[j].into(),
                    || LinearCombination::from(m) - &xj.lc,
                    LinearCombination::zero,
                )?;
                let before_value = (chosen as i128 > j as i128) as i128;
                let gap_value = int::sub(int::sub(m_value, xj.value)?, before_value)?;
                let gap = range_checked(cs, gap_value, 0, w)?;
                let lhs = LinearCombination::from(m) - &xj.lc - &before;
                equal(cs, &lhs, &gap.lc)?;
                // before_{j-1} = before_j + σ_j: a new variable but for the last two slots.
                before = match j {
                    0 => break,
                    _ if j == row.len() - 1 => sigma[j].into(),
                    _ => {
                        let value = (chosen as i128 >= j as i128) as i128;
                        let next = cs.new_witness_variable(|| Ok(field(value)))?;
                        cs.enforce_r1cs_constraint(
                            || before.clone() + sigma[j],
                            || Variable::One.into(),
                            || next.into(),
                        )?;
                        next.into()
                    }
                };
            }
            let index: Vec<(F, Variable)> = sigma
                .iter()
                .enumerate()
                .map(|(j, &s)| (field(j as i128), s))
                .collect();
            Ok(Wire {
                lc: LinearCombination::from_sum_coeff_vars(&index),
                value: chosen as i128,
            })
        })
        .collect()
}

pub fn cost(rows: usize, row_len: usize, w: u32, r: Ranges) -> usize {
    rows * (row_len * (r.rc(w) + 3) + 1 + row_len.saturating_sub(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_util::{cs, satisfied_in_every_mode, wires, Lcg, MODES};
    use zkc_lang::semantics::{self, Tensor};
    use zkc_lang::DType;

    fn satisfied(x: &[i64], len: usize, claimed: &[i64], mode: crate::backend::Alloc) -> bool {
        satisfied_in_every_mode(
            |cs| {
                argmax(cs, &wires(cs, x, mode), len, 16, claimed).unwrap();
            },
            |r| cost(x.len() / len, len, 16, r),
        )
    }

    #[test]
    fn only_the_lowest_index_of_the_maximum_is_accepted() {
        let mut rng = Lcg(21);
        for _ in 0..30 {
            let len = 1 + rng.below(9) as usize;
            // Few distinct values, so ties are common.
            let x: Vec<i64> = (0..2 * len).map(|_| rng.range(-3, 3) * 10_000).collect();
            let honest =
                semantics::argmax(&Tensor::new(vec![2, len], x.clone()).unwrap(), DType::I32)
                    .unwrap()
                    .into_data();
            for mode in MODES {
                assert!(satisfied(&x, len, &honest, mode), "{x:?} -> {honest:?}");
                for other in 0..len as i64 {
                    if other != honest[0] {
                        assert!(
                            !satisfied(&x, len, &[other, honest[1]], mode),
                            "{x:?}: index {other} in row 0"
                        );
                    }
                }
                assert!(
                    !satisfied(&x, len, &[len as i64, honest[1]], mode),
                    "an index past the row"
                );
                assert!(
                    !satisfied(&x, len, &[-1, honest[1]], mode),
                    "a negative index"
                );
            }
        }
    }

    /// Rows of 64 at the ends of every dtype: all at the minimum (index 0 by the tie rule), all
    /// at the maximum, the maximum alone at the last slot; honest indices satisfy, any other
    /// index fails.
    #[test]
    fn full_rows_at_the_ends_of_every_dtype() {
        let l = 64;
        for dtype in DType::ALL {
            let (min, max) = (dtype.min(), dtype.max());
            let mut last = vec![min; l];
            last[l - 1] = max;
            for x in [vec![min; l], vec![max; l], last] {
                let honest =
                    semantics::argmax(&Tensor::new(vec![1, l], x.clone()).unwrap(), DType::I32)
                        .unwrap()
                        .into_data();
                let cs = cs();
                argmax(&cs, &wires(&cs, &x, MODES[2]), l, dtype.bits(), &honest).unwrap();
                assert_eq!(cs.num_constraints(), cost(1, l, dtype.bits(), Ranges::Bits));
                assert!(cs.is_satisfied().unwrap(), "{dtype} {honest:?}");
                for other in [0, 1, l as i64 - 1] {
                    if other != honest[0] {
                        let wrong = crate::backend::test_util::cs();
                        argmax(
                            &wrong,
                            &wires(&wrong, &x, MODES[2]),
                            l,
                            dtype.bits(),
                            &[other],
                        )
                        .unwrap();
                        assert!(!wrong.is_satisfied().unwrap(), "{dtype}: index {other}");
                    }
                }
            }
        }
    }

    #[test]
    fn extremes_of_the_dtype_are_handled() {
        let x = [-32768, 32767, 32767, -32768];
        assert!(satisfied(&x, 4, &[1], crate::backend::Alloc::Witness));
        assert!(!satisfied(&x, 4, &[2], crate::backend::Alloc::Witness));
    }
}
