//! `layernorm`, per row of length `L` (docs/ir.md, §3): the floored mean (`sum x = mu*L + r0`),
//! the squares of `d = x - mu`, the floored variance, the integer square root
//! (`s^2 <= var <= s^2 + 2s`), and per element the floored division
//! `q * (s * 2^down) = d * gamma * 2^up - r`, `0 <= r < s * 2^down`, with `y = q + beta` in the
//! result's range. `rmsnorm` is the same gadget without the mean (`d = x`, so the "variance" is
//! the floored mean square) and without beta (`y = q`).
//!
//! Witness: honest inputs have at most 32 bits (`backend::check`), so the sum, `d`, the squares
//! and their sum, `s < 2^33` and `s * 2^down < 2^95` are small; `d * gamma * 2^up` and
//! `q * s * 2^down` are not bounded by the types alone (64-bit `gamma`, `up` up to 62): they
//! and everything computed from an operand's integer go through [`super::int`] (the
//! interpreter refuses an honest overflow there, `IntermediateOverflow`).

use super::range::{below, bits_of, equal, range_checked, Ranges};
use super::{constant, field, int, witness, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use zkc_lang::semantics::{floor_div, isqrt};
use zkc_lang::DType;

/// Bits of the square root of the largest variance (`sb` in docs/ir.md). Total for every
/// width, as the cost model asks it of any valid module (the gadget itself takes `w <= 32`).
fn sqrt_bits(w: u32, eps: i64) -> u32 {
    let max_var = 1u128
        .checked_shl(2 * w)
        .map_or(u128::MAX, |v| v - 1)
        .saturating_add(eps.max(0) as u128);
    bits_of(max_var.isqrt())
}

/// `claimed[i]` is the prover's result for `x[i]`.
#[allow(clippy::too_many_arguments)]
pub fn layernorm(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    gamma: &[i64],
    beta: &[i64],
    eps: i64,
    shift: i32,
    dtypes: (DType, DType),
    claimed: &[i64],
) -> Result<Vec<Wire>, SynthesisError> {
    normalise(cs, x, gamma, Some(beta), eps, shift, dtypes, claimed)
}

/// `rmsnorm`: [`layernorm`] without the mean (`d = x`) and without beta.
pub fn rmsnorm(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    gamma: &[i64],
    eps: i64,
    shift: i32,
    dtypes: (DType, DType),
    claimed: &[i64],
) -> Result<Vec<Wire>, SynthesisError> {
    normalise(cs, x, gamma, None, eps, shift, dtypes, claimed)
}

/// Both norms: with `beta`, each row is centred on its floored mean (proved) and `beta` added to
/// the quotient; without, `d = x` and `y = q`.
#[allow(clippy::too_many_arguments)]
fn normalise(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    gamma: &[i64],
    beta: Option<&[i64]>,
    eps: i64,
    shift: i32,
    dtypes: (DType, DType),
    claimed: &[i64],
) -> Result<Vec<Wire>, SynthesisError> {
    let (input, out) = dtypes;
    let (l, w) = (gamma.len(), input.bits());
    let (up, down) = (shift.max(0) as u32, shift.min(0).unsigned_abs());
    let sb = sqrt_bits(w, eps);
    let mut ys = Vec::with_capacity(x.len());
    for (row, claimed) in x.chunks(l).zip(claimed.chunks(l)) {
        let d: Vec<Wire> = match beta {
            Some(_) => {
                let sum = int::sum(row.iter().map(|v| v.value))?;
                let sum_lc = row
                    .iter()
                    .fold(LinearCombination::zero(), |acc, v| acc + &v.lc);
                let (mu, r0) = floor_div(sum, l as i128).unwrap_or((0, 0));
                let mu = range_checked(cs, mu, input.min() as i128, w)?;
                let r0 = below(cs, r0, l as u128)?;
                equal(cs, &sum_lc, &(&mu.lc * field(l as i128) + &r0.lc))?;
                row.iter()
                    .map(|v| {
                        Ok(Wire {
                            lc: v.lc.clone() - &mu.lc,
                            value: int::sub(v.value, mu.value)?,
                        })
                    })
                    .collect::<Result<_, SynthesisError>>()?
            }
            None => row.to_vec(),
        };
        let mut squares = LinearCombination::zero();
        let mut sq_sum = 0;
        for di in &d {
            let sq = witness(cs, int::mul(di.value, di.value)?)?;
            cs.enforce_r1cs_constraint(|| di.lc.clone(), || di.lc.clone(), || sq.lc.clone())?;
            squares = squares + &sq.lc;
            sq_sum = int::add(sq_sum, sq.value)?;
        }
        let (v, r1) = floor_div(sq_sum, l as i128).unwrap_or((0, 0));
        let v = range_checked(cs, v, 0, 2 * w)?;
        let r1 = below(cs, r1, l as u128)?;
        equal(cs, &squares, &(&v.lc * field(l as i128) + &r1.lc))?;
        let var = Wire {
            lc: v.lc.clone() + (field(eps as i128), Variable::One),
            value: int::add(v.value, eps as i128)?,
        };
        let s = range_checked(cs, isqrt(var.value).unwrap_or(0), 0, sb)?;
        let s2 = witness(cs, s.value * s.value)?;
        cs.enforce_r1cs_constraint(|| s.lc.clone(), || s.lc.clone(), || s2.lc.clone())?;
        let t1 = range_checked(cs, var.value - s2.value, 0, sb + 1)?;
        equal(cs, &(var.lc.clone() - &s2.lc), &t1.lc)?;
        let t2 = range_checked(cs, s2.value + 2 * s.value - var.value, 0, sb + 1)?;
        equal(cs, &(s2.lc.clone() + &(&s.lc * field(2)) - &var.lc), &t2.lc)?;
        let divisor = Wire {
            lc: &s.lc * field(1i128 << down),
            value: int::shl(s.value, down)?,
        };
        for (i, (di, &yc)) in d.iter().zip(claimed).enumerate() {
            let y = range_checked(cs, yc as i128, out.min() as i128, out.bits())?;
            let offset = beta.map_or(0, |b| b[i] as i128);
            let q = Wire {
                lc: y.lc.clone() - &constant(offset),
                value: y.value - offset,
            };
            let num = Wire {
                lc: &di.lc * field((gamma[i] as i128) << up),
                value: int::shl(int::mul(di.value, gamma[i] as i128)?, up)?,
            };
            let rem = int::sub(num.value, int::mul(q.value, divisor.value)?)?;
            let r = range_checked(cs, rem, 0, sb + down)?;
            let slack = range_checked(cs, divisor.value - 1 - r.value, 0, sb + down)?;
            equal(cs, &(divisor.lc.clone() - &constant(1) - &r.lc), &slack.lc)?;
            cs.enforce_r1cs_constraint(
                || q.lc.clone(),
                || divisor.lc.clone(),
                || num.lc.clone() - &r.lc,
            )?;
            ys.push(y);
        }
    }
    Ok(ys)
}

/// `R * LN_row` of docs/ir.md.
pub fn cost(
    rows: usize,
    l: usize,
    eps: i64,
    shift: i32,
    dtypes: (DType, DType),
    r: Ranges,
) -> usize {
    rows * (mean_cost(l, dtypes.0, r) + row_cost(l, eps, shift, dtypes, r))
}

/// `R * RMS_row` of docs/ir.md: `LN_row` without the mean's `rc(w) + lt(L) + 1`.
pub fn rms_cost(
    rows: usize,
    l: usize,
    eps: i64,
    shift: i32,
    dtypes: (DType, DType),
    r: Ranges,
) -> usize {
    rows * row_cost(l, eps, shift, dtypes, r)
}

/// The floored mean: `mu` in `w` bits, `r0 < L` and their equation.
fn mean_cost(l: usize, input: DType, r: Ranges) -> usize {
    r.rc(input.bits()) + r.below(l as u128) + 1
}

/// Everything of a row after the mean: the squares, their floored mean, the square root and
/// the divisions.
fn row_cost(l: usize, eps: i64, shift: i32, dtypes: (DType, DType), r: Ranges) -> usize {
    let (w, b) = (dtypes.0.bits(), dtypes.1.bits());
    let sb = sqrt_bits(w, eps);
    let down = shift.min(0).unsigned_abs();
    let lt = r.below(l as u128);
    l + (r.rc(2 * w) + lt + 1)
        + (r.rc(sb) + 2 * r.rc(sb + 1) + 3)
        + l * (r.rc(b) + 2 * r.rc(sb + down) + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_util::{cs, satisfied_in_every_mode, wires, Lcg, MODES};
    use crate::backend::Alloc;
    use zkc_lang::semantics::{self, Tensor};

    fn satisfied(
        x: &[i64],
        g: &[i64],
        b: &[i64],
        shift: i32,
        claimed: &[i64],
        mode: Alloc,
    ) -> bool {
        let dtypes = (DType::I16, DType::I8);
        satisfied_in_every_mode(
            |cs| {
                layernorm(cs, &wires(cs, x, mode), g, b, 3, shift, dtypes, claimed).unwrap();
            },
            |r| cost(x.len() / g.len(), g.len(), 3, shift, dtypes, r),
        )
    }

    /// Rows of 64 at the ends of i8, i16 and i32 (the widest input the backend takes): all at the
    /// minimum (a constant row: `d = 0`, the variance is `eps`), all at the maximum, the maximum
    /// alone at the last slot (the largest variance); gains at the ends of i16, shifts up and
    /// down. Honest rows satisfy; a result off by one fails.
    #[test]
    fn full_rows_at_the_ends_of_every_dtype() {
        let l = 64;
        let g: Vec<i64> = (0..l as i64)
            .map(|i| if i % 2 == 0 { 32767 } else { -32768 })
            .collect();
        let b: Vec<i64> = (0..l as i64).map(|i| i - 32).collect();
        for (input, eps, shift) in [
            (DType::I8, 1, 4),
            (DType::I16, 3, -2),
            (DType::I32, 1 << 40, 0),
            (DType::I32, 1, -20),
        ] {
            let (min, max) = (input.min(), input.max());
            let mut last = vec![min; l];
            last[l - 1] = max;
            for x in [vec![min; l], vec![max; l], last] {
                let t = |d: &[i64]| Tensor::new(vec![d.len() / l, l], d.to_vec()).unwrap();
                let gamma = Tensor::new(vec![l], g.clone()).unwrap();
                let beta = Tensor::new(vec![l], b.clone()).unwrap();
                let want = semantics::layernorm(&t(&x), &gamma, &beta, eps, shift, DType::I64)
                    .expect("fits i64")
                    .into_data();
                let check = |claimed: &[i64]| {
                    let cs = cs();
                    let xs = wires(&cs, &x, MODES[2]);
                    layernorm(&cs, &xs, &g, &b, eps, shift, (input, DType::I64), claimed).unwrap();
                    assert_eq!(
                        cs.num_constraints(),
                        cost(1, l, eps, shift, (input, DType::I64), Ranges::Bits)
                    );
                    cs.is_satisfied().unwrap()
                };
                assert!(check(&want), "{input}, eps {eps}, shift {shift}");
                let mut wrong = want.clone();
                wrong[l - 1] += 1;
                assert!(!check(&wrong), "{input}, eps {eps}, shift {shift}");
            }
        }
    }

    #[test]
    fn honest_rows_satisfy_and_perturbed_results_fail() {
        let mut rng = Lcg(51);
        for (l, shift) in [(4, -5), (5, -6), (8, -4), (3, -7), (16, -5)] {
            let x: Vec<i64> = (0..2 * l).map(|_| rng.range(-3000, 3000)).collect();
            let g: Vec<i64> = (0..l).map(|_| rng.range(200, 600)).collect();
            let b: Vec<i64> = (0..l).map(|_| rng.range(-10, 10)).collect();
            let t = |s: Vec<usize>, d: &[i64]| Tensor::new(s, d.to_vec()).unwrap();
            let honest = semantics::layernorm(
                &t(vec![2, l], &x),
                &t(vec![l], &g),
                &t(vec![l], &b),
                3,
                shift,
                DType::I8,
            )
            .expect("results fit i8")
            .into_data();
            for mode in MODES {
                assert!(
                    satisfied(&x, &g, &b, shift, &honest, mode),
                    "L {l}, shift {shift}"
                );
                for k in [0, l, 2 * l - 1] {
                    for delta in [-1, 1] {
                        let mut wrong = honest.clone();
                        wrong[k] += delta;
                        assert!(
                            !satisfied(&x, &g, &b, shift, &wrong, mode),
                            "L {l}, shift {shift}, element {k} {delta:+}"
                        );
                    }
                }
            }
        }
    }

    fn rms_satisfied(x: &[i64], g: &[i64], shift: i32, claimed: &[i64], mode: Alloc) -> bool {
        let dtypes = (DType::I16, DType::I8);
        satisfied_in_every_mode(
            |cs| {
                rmsnorm(cs, &wires(cs, x, mode), g, 3, shift, dtypes, claimed).unwrap();
            },
            |r| rms_cost(x.len() / g.len(), g.len(), 3, shift, dtypes, r),
        )
    }

    #[test]
    fn rmsnorm_honest_rows_satisfy_and_perturbed_results_fail() {
        let mut rng = Lcg(52);
        for (l, shift) in [(4, -5), (5, -6), (8, -4), (3, -7), (16, -5), (7, 0)] {
            // Rows off centre (RMSNorm keeps the mean), gains of both signs.
            let centre = rng.range(-1500, 1500);
            let x: Vec<i64> = (0..2 * l)
                .map(|_| centre + rng.range(-1500, 1500))
                .collect();
            let g: Vec<i64> = (0..l)
                .map(|i| rng.range(200, 600) * if i % 3 == 2 { -1 } else { 1 })
                .collect();
            let gain = if shift == 0 { 1 } else { 1 << -shift };
            let g: Vec<i64> = g.iter().map(|v| v * gain / 32).collect();
            let t = |s: Vec<usize>, d: &[i64]| Tensor::new(s, d.to_vec()).unwrap();
            let honest =
                semantics::rmsnorm(&t(vec![2, l], &x), &t(vec![l], &g), 3, shift, DType::I8)
                    .expect("results fit i8")
                    .into_data();
            for mode in MODES {
                assert!(
                    rms_satisfied(&x, &g, shift, &honest, mode),
                    "L {l}, shift {shift}"
                );
                for k in [0, l, 2 * l - 1] {
                    for delta in [-1, 1] {
                        let mut wrong = honest.clone();
                        wrong[k] += delta;
                        assert!(
                            !rms_satisfied(&x, &g, shift, &wrong, mode),
                            "L {l}, shift {shift}, element {k} {delta:+}"
                        );
                    }
                }
            }
        }
    }

    /// As [`full_rows_at_the_ends_of_every_dtype`] for rmsnorm: a row all at the minimum has the
    /// largest mean square (`2^(2w-2)`), one at the maximum nearly as large, and the maximum
    /// alone at the last slot a small one. Honest rows satisfy; a result off by one fails.
    #[test]
    fn rmsnorm_full_rows_at_the_ends_of_every_dtype() {
        let l = 64;
        let g: Vec<i64> = (0..l as i64)
            .map(|i| if i % 2 == 0 { 32767 } else { -32768 })
            .collect();
        for (input, eps, shift) in [
            (DType::I8, 1, 4),
            (DType::I16, 3, -2),
            (DType::I32, 1 << 40, 0),
            (DType::I32, 1, -20),
        ] {
            let (min, max) = (input.min(), input.max());
            let mut last = vec![0; l];
            last[l - 1] = max;
            for x in [vec![min; l], vec![max; l], last] {
                let row = Tensor::new(vec![1, l], x.clone()).unwrap();
                let gamma = Tensor::new(vec![l], g.clone()).unwrap();
                let want = semantics::rmsnorm(&row, &gamma, eps, shift, DType::I64)
                    .expect("fits i64")
                    .into_data();
                let check = |claimed: &[i64]| {
                    let cs = cs();
                    let xs = wires(&cs, &x, MODES[2]);
                    rmsnorm(&cs, &xs, &g, eps, shift, (input, DType::I64), claimed).unwrap();
                    assert_eq!(
                        cs.num_constraints(),
                        rms_cost(1, l, eps, shift, (input, DType::I64), Ranges::Bits)
                    );
                    cs.is_satisfied().unwrap()
                };
                assert!(check(&want), "{input}, eps {eps}, shift {shift}");
                for k in [0, l - 1] {
                    let mut wrong = want.clone();
                    wrong[k] += 1;
                    assert!(!check(&wrong), "{input}, eps {eps}, shift {shift}, {k}");
                }
            }
        }
    }

    #[test]
    fn rmsnorm_costs_layernorm_without_the_mean() {
        for r in crate::backend::test_util::RANGES {
            for (l, w) in [(8, DType::I16), (5, DType::I8), (64, DType::I32)] {
                let dtypes = (w, DType::I8);
                let mean = r.rc(w.bits()) + r.below(l as u128) + 1;
                assert_eq!(
                    rms_cost(3, l, 1, -2, dtypes, r) + 3 * mean,
                    cost(3, l, 1, -2, dtypes, r)
                );
            }
        }
    }
}
