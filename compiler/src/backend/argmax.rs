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
            let (sigma, _) = row_argmax(cs, row, w, chosen)?;
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

/// `argmax_carry` (docs/ir.md): per row, the argmax gadget over the carried `top` followed by
/// the row, so the carried value sits before every column and wins ties; the result index is
/// `σ_0 * best + sum_{j >= 1} σ_j * (offset + j - 1)` (one product when `best` is a value,
/// none when it is a constant operand: `best_constant`) and the result value the gadget's
/// maximum `m`. `claimed` is the prover's `(best', top')` per row, from which the chosen slot
/// follows.
#[allow(clippy::too_many_arguments)]
pub fn argmax_carry(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    carried: (&[Wire], &[Wire]),
    best_constant: bool,
    row_len: usize,
    offset: usize,
    w: u32,
    claimed: (&[i64], &[i64]),
) -> Result<[Vec<Wire>; 2], SynthesisError> {
    let (mut bests, mut tops) = (Vec::new(), Vec::new());
    for (r, row) in x.chunks(row_len).enumerate() {
        let (best, top) = (&carried.0[r], &carried.1[r]);
        let kept = (claimed.0[r] as i128, claimed.1[r] as i128) == (best.value, top.value);
        let chosen = match kept {
            true => 0,
            false => claimed.0[r] - offset as i64 + 1,
        };
        let extended: Vec<Wire> = std::iter::once(top.clone())
            .chain(row.iter().cloned())
            .collect();
        let (sigma, m) = row_argmax(cs, &extended, w, chosen)?;
        let from_carry = match best_constant {
            true => LinearCombination::from((field(best.value), sigma[0])),
            false => {
                let value = if kept { best.value } else { 0 };
                let v = cs.new_witness_variable(|| Ok(field(value)))?;
                cs.enforce_r1cs_constraint(|| sigma[0].into(), || best.lc.clone(), || v.into())?;
                v.into()
            }
        };
        let columns: Vec<(F, Variable)> = sigma[1..]
            .iter()
            .enumerate()
            .map(|(j, &s)| (field((offset + j) as i128), s))
            .collect();
        bests.push(Wire {
            lc: from_carry + LinearCombination::from_sum_coeff_vars(&columns),
            value: claimed.0[r] as i128,
        });
        tops.push(m);
    }
    Ok([bests, tops])
}

/// One row: the one-hot selector `σ` of the `chosen` slot and the maximum `m` (a wire).
fn row_argmax(
    cs: &ConstraintSystemRef<F>,
    row: &[Wire],
    w: u32,
    chosen: i64,
) -> Result<(Vec<Variable>, Wire), SynthesisError> {
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
    Ok((
        sigma,
        Wire {
            lc: m.into(),
            value: m_value,
        },
    ))
}

pub fn cost(rows: usize, row_len: usize, w: u32, r: Ranges) -> usize {
    rows * (row_len * (r.rc(w) + 3) + 1 + row_len.saturating_sub(2))
}

/// [`argmax_carry`]'s constraints: the argmax of the row with the carried value before it, and
/// one product per row when the carried index is a wire.
pub fn carry_cost(rows: usize, row_len: usize, w: u32, carried_wire: bool, r: Ranges) -> usize {
    cost(rows, row_len + 1, w, r) + rows * carried_wire as usize
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

    /// `argmax_carry` over one or two rows with a carried (best, top) and offset 5.
    fn carry_satisfied(
        x: &[i64],
        len: usize,
        carried: (&[i64], &[i64]),
        best_constant: bool,
        claimed: (&[i64], &[i64]),
    ) -> bool {
        satisfied_in_every_mode(
            |cs| {
                let mode = crate::backend::Alloc::Witness;
                let (best, top) = (wires(cs, carried.0, mode), wires(cs, carried.1, mode));
                let x = wires(cs, x, mode);
                let [bests, tops] =
                    argmax_carry(cs, &x, (&best, &top), best_constant, len, 5, 16, claimed)
                        .unwrap();
                // The results read as the claimed values, as the layer's commitments do.
                for (w, &v) in bests
                    .iter()
                    .chain(&tops)
                    .zip(claimed.0.iter().chain(claimed.1))
                {
                    equal(
                        cs,
                        &w.lc,
                        &LinearCombination::from((field(v as i128), Variable::One)),
                    )
                    .unwrap();
                }
            },
            |r| carry_cost(x.len() / len, len, 16, !best_constant, r) + 2 * (x.len() / len),
        )
    }

    /// The honest carry satisfies; any other index (the carried one included), a result value
    /// off by one, and an index outside the slice do not: ties go to the carried value.
    #[test]
    fn only_the_carried_or_the_slices_lowest_maximum_is_accepted() {
        let mut rng = Lcg(33);
        for round in 0..40 {
            let len = 1 + rng.below(6) as usize;
            let x: Vec<i64> = (0..2 * len).map(|_| rng.range(-3, 3) * 10_000).collect();
            let best: Vec<i64> = (0..2).map(|_| rng.below(5) as i64).collect();
            let top: Vec<i64> = (0..2).map(|_| rng.range(-3, 3) * 10_000).collect();
            let (b, t) = semantics::argmax_carry(
                &Tensor::new(vec![2, len], x.clone()).unwrap(),
                &Tensor::new(vec![2], best.clone()).unwrap(),
                &Tensor::new(vec![2], top.clone()).unwrap(),
                5,
            )
            .unwrap();
            let (b, t) = (b.into_data(), t.into_data());
            let constant = round % 2 == 0;
            let carried = (&best[..], &top[..]);
            assert!(
                carry_satisfied(&x, len, carried, constant, (&b, &t)),
                "{x:?}"
            );
            // Every other candidate for row 0: the carried pair, each column with its value.
            let candidates = std::iter::once((best[0], top[0]))
                .chain((0..len).map(|j| (5 + j as i64, x[j])))
                .filter(|&c| c != (b[0], t[0]));
            for (ob, ot) in candidates {
                let wrong = ([ob, b[1]], [ot, t[1]]);
                assert!(
                    !carry_satisfied(&x, len, carried, constant, (&wrong.0, &wrong.1)),
                    "{x:?} carried {carried:?}: ({ob}, {ot}) instead of ({}, {})",
                    b[0],
                    t[0]
                );
            }
            for (ob, ot) in [
                (b[0], t[0] + 1),
                (b[0], t[0] - 1),
                (5 + len as i64, t[0]),
                (4, t[0]),
            ] {
                if (ob, ot) != (best[0], top[0]) {
                    let wrong = ([ob, b[1]], [ot, t[1]]);
                    assert!(!carry_satisfied(
                        &x,
                        len,
                        carried,
                        constant,
                        (&wrong.0, &wrong.1)
                    ));
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
