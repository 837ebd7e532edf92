//! `softmax` with the causal mask, exactly the sketch of docs/ir.md §3: the row max `m` (every
//! `m - x_j` non-negative through the exp gadget's range checks, one of them zero through a
//! product chain), I-BERT's exp (`m - x = z*ln2 + ρ`, `e = floor(((b - ρ)^2 + c) / 2^min(z, pb))`
//! with `2^z'` built from the bits of `z'`), the free sum, and the floored division; with `pos`,
//! a one-hot `φ` marks `min(pos, L-1)` and gives each slot's mask as a linear combination.
//!
//! **The max chain.** `m` is one of the valid scores because the product of the factors
//! `f_j = m - x_j` (valid slots) and `f_j = 1` (masked ones) is zero: `L - 1` constraints
//! `c_1 = f_0 f_1`, `c_{j} = c_{j-1} f_j`, ..., `c_{L-2} f_{L-1} = 0`. Sound because the
//! circuit's field is a field (no zero divisors): the product is zero only if a factor is zero,
//! and each valid factor equals `z_j ln2 + ρ_j` with `z_j < 2^zb`, `ρ_j < ln2` range-checked,
//! an integer in `[0, 2^(zb+30))`, far below the field's size, so it is zero in the field only
//! if `m = x_j` as integers; a masked factor is exactly 1. With the exp gadget's `m - x_j >= 0`
//! on every valid slot, `m` is the maximum. The running products `c_j` are witnesses with no
//! integer meaning (the product of up to `L - 1` differences of up to `2^w` each): they are
//! computed in the field, never in a machine integer, whose wrap gave a witness that failed
//! this (correct) constraint on trained attention (issue 12).
//!
//! Witness sizes: `m - x_j` and `pos - min(pos, L-1)` are computed checked ([`super::int`]); with
//! the validated attributes (`ln2, |b| <= 2^30`, `c <= 2^60`, `shift <= 62`) every exp value is
//! below 2^63 and `e * 2^shift < 2^125`; `q * den` is checked (a wrong `q` may be anything in
//! its dtype).

use super::range::{below, bits_of, decompose, equal, non_negative, range_checked, Ranges};
use super::{constant, field, int, witness, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use zkc_lang::DType;

/// `a * b = c` for three combinations.
fn product(
    cs: &ConstraintSystemRef<F>,
    a: &LinearCombination<F>,
    b: &LinearCombination<F>,
    c: &LinearCombination<F>,
) -> Result<(), SynthesisError> {
    cs.enforce_r1cs_constraint(|| a.clone(), || b.clone(), || c.clone())
}

/// The running product of the max chain: a combination and its value in the field. Its value
/// is a product of up to `L - 1` differences and has no integer meaning worth keeping; only
/// whether it is zero matters (see [`softmax`]).
struct Chain {
    lc: LinearCombination<F>,
    value: F,
}

/// The sizes the gadget's range checks use.
struct Bounds {
    zb: u32,
    pb: u32,
    sb: u32,
    saturate: bool,
    tb: u32,
}

impl Bounds {
    fn new(w: u32, [ln2, b, c]: [i64; 3], row_len: usize) -> Bounds {
        let (ln2, b, c) = (ln2 as i128, b as i128, c as i128);
        let zmax = ((1i128 << w) - 1) / ln2;
        let pmax = b.pow(2).max((b - ln2 + 1).pow(2)) + c;
        let pb = bits_of(pmax as u128);
        Bounds {
            zb: bits_of(zmax as u128),
            pb,
            sb: bits_of(pb as u128),
            saturate: zmax > pb as i128,
            tb: bits_of((row_len as i128 * pmax) as u128),
        }
    }
}

pub struct SoftmaxParams {
    pub consts: [i64; 3],
    pub shift: u32,
    pub input: DType,
    pub out: DType,
    pub row_len: usize,
    /// Rows per batch: row `r` is row `r % rows_per_batch` for the mask (`j <= pos + i`).
    pub rows_per_batch: usize,
}

impl SoftmaxParams {
    /// The parameters of a `softmax` op on `input` giving `out`.
    pub fn of(
        consts: [i64; 3],
        shift: u32,
        input: &zkc_lang::TensorType,
        out: &zkc_lang::TensorType,
    ) -> SoftmaxParams {
        let shape = &input.shape;
        SoftmaxParams {
            consts,
            shift,
            input: input.dtype,
            out: out.dtype,
            row_len: *shape.last().expect("rank >= 1"),
            rows_per_batch: if shape.len() >= 2 {
                shape[shape.len() - 2]
            } else {
                1
            },
        }
    }
}

/// `claimed` is the prover's result (row-major, `x.len()` values).
pub fn softmax(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    pos: Option<&Wire>,
    p: &SoftmaxParams,
    claimed: &[i64],
) -> Result<Vec<Wire>, SynthesisError> {
    synthesize(cs, x, pos, p, claimed, 0)
}

/// [`softmax`] with the prover's row max raised by `max_offset` (tests: a max that is no score).
fn synthesize(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    pos: Option<&Wire>,
    p: &SoftmaxParams,
    claimed: &[i64],
    max_offset: i128,
) -> Result<Vec<Wire>, SynthesisError> {
    let l = p.row_len;
    let bd = Bounds::new(p.input.bits(), p.consts, l);
    let [ln2, b, c] = p.consts.map(|v| v as i128);
    // The mask: φ one-hot at min(pos, L-1); [t <= pos] = sum_{k >= t} φ_k.
    let phi: Option<Vec<Wire>> = match pos {
        None => None,
        Some(pos) => {
            let pc_value = pos.value.clamp(0, l as i128 - 1);
            let phi: Vec<Wire> = (0..l)
                .map(|k| {
                    let f = witness(cs, (k as i128 == pc_value) as i128)?;
                    product(
                        cs,
                        &f.lc,
                        &(f.lc.clone() - Variable::One),
                        &LinearCombination::zero(),
                    )?;
                    Ok(f)
                })
                .collect::<Result<_, SynthesisError>>()?;
            equal(
                cs,
                &phi.iter().fold(LinearCombination::zero(), |a, f| a + &f.lc),
                &constant(1),
            )?;
            let pc = phi
                .iter()
                .enumerate()
                .fold(LinearCombination::zero(), |a, (k, f)| {
                    a + (field(k as i128), &f.lc)
                });
            let gap = range_checked(cs, int::sub(pos.value, pc_value)?, 0, 32)?;
            equal(cs, &(pos.lc.clone() - &pc), &gap.lc)?;
            product(
                cs,
                &(pos.lc.clone() - &pc),
                &(constant(1) - &phi[l - 1].lc),
                &LinearCombination::zero(),
            )?;
            Some(phi)
        }
    };
    let mut out = Vec::with_capacity(x.len());
    for (r, (row, claimed)) in x.chunks(l).zip(claimed.chunks(l)).enumerate() {
        let i = r % p.rows_per_batch.max(1);
        // Slot j's mask: None = always on; Some(lc) = variable.
        let mask = |j: usize| -> Option<Wire> {
            let phi = phi.as_ref()?;
            (j > i).then(|| {
                let from = j - i;
                let lc = phi[from.min(l)..]
                    .iter()
                    .fold(LinearCombination::zero(), |a, f| a + &f.lc);
                Wire {
                    lc,
                    value: phi[from.min(l)..].iter().map(|f| f.value).sum(),
                }
            })
        };
        let valid = |j: usize| mask(j).is_none_or(|m| m.value == 1);
        let m_value = row
            .iter()
            .enumerate()
            .filter(|&(j, _)| valid(j))
            .map(|(_, v)| v.value)
            .max()
            .unwrap_or(0)
            + max_offset;
        let m = if l == 1 {
            row[0].clone()
        } else {
            witness(cs, m_value)?
        };
        let mut chain: Option<Chain> = None;
        let mut exps = Vec::with_capacity(l);
        for (j, xj) in row.iter().enumerate() {
            let mu = mask(j);
            let on = mu.as_ref().is_none_or(|m| m.value == 1);
            let d_value = if on { int::sub(m.value, xj.value)? } else { 0 };
            let (z_value, rho_value) = (d_value.div_euclid(ln2), d_value.rem_euclid(ln2));
            let (z, z_bits) = decompose(cs, z_value, 0, bd.zb)?;
            let rho = below(cs, rho_value, ln2 as u128)?;
            let reduced = &z.lc * field(ln2) + &rho.lc;
            let d = m.lc.clone() - &xj.lc;
            match &mu {
                None => equal(cs, &d, &reduced)?,
                Some(mu) => product(cs, &mu.lc, &d, &reduced)?,
            }
            // The chain's factor: d on valid slots, 1 on masked ones (`reduced` is 0 there).
            let factor = match &mu {
                None => Chain {
                    lc: d,
                    value: field(d_value),
                },
                Some(mu) => Chain {
                    lc: reduced.clone() + &(constant(1) - &mu.lc),
                    value: field(d_value + 1 - mu.value),
                },
            };
            chain = Some(match chain {
                None => factor,
                Some(acc) => {
                    // A field product, never an integer one: up to L - 1 factors of up to
                    // 2^w each pass any machine integer (issue 12).
                    let value = acc.value * factor.value;
                    let lc = if j == l - 1 {
                        LinearCombination::zero()
                    } else {
                        cs.new_witness_variable(|| Ok(value))?.into()
                    };
                    product(cs, &acc.lc, &factor.lc, &lc)?;
                    Chain { lc, value }
                }
            });
            // z' = min(z, pb) and its bits.
            let bits = if bd.saturate {
                let kappa = non_negative(
                    cs,
                    &Wire {
                        lc: constant(bd.pb as i128) - &z.lc,
                        value: bd.pb as i128 - z.value,
                    },
                    bd.zb,
                )?;
                let zs_value = z.value.min(bd.pb as i128);
                let (zs, bits) = decompose(cs, zs_value, 0, bd.sb)?;
                product(
                    cs,
                    &kappa.lc,
                    &(z.lc.clone() - &constant(bd.pb as i128)),
                    &(zs.lc.clone() - &constant(bd.pb as i128)),
                )?;
                bits
            } else {
                z_bits
            };
            let zs = z_value.min(bd.pb as i128);
            // P = prod (1 + (2^(2^t) - 1) bit_t)
            let factor_t =
                |t: usize| constant(1) + (field((1i128 << (1u32 << t).min(126)) - 1), bits[t]);
            let mut power = Wire {
                lc: factor_t(0),
                value: 1 << (zs & 1),
            };
            for t in 1..bits.len() {
                let value = power.value << (((zs >> t) & 1) << t);
                let next = witness(cs, value)?;
                product(cs, &power.lc, &factor_t(t), &next.lc)?;
                power = next;
            }
            let sq = witness(cs, (b - rho.value).pow(2))?;
            let b_minus_rho = constant(b) - &rho.lc;
            product(cs, &b_minus_rho, &b_minus_rho, &sq.lc)?;
            let poly = sq.value + c;
            let e = range_checked(cs, poly / power.value, 0, bd.pb)?;
            let rem = range_checked(cs, poly - e.value * power.value, 0, bd.pb)?;
            let slack = range_checked(cs, power.value - 1 - rem.value, 0, bd.pb)?;
            equal(cs, &(power.lc.clone() - &constant(1) - &rem.lc), &slack.lc)?;
            product(
                cs,
                &e.lc,
                &power.lc,
                &(sq.lc.clone() + &constant(c) - &rem.lc),
            )?;
            exps.push(match &mu {
                None => e,
                Some(mu) => {
                    let masked = witness(cs, mu.value * e.value)?;
                    product(cs, &mu.lc, &e.lc, &masked.lc)?;
                    masked
                }
            });
        }
        let den = Wire {
            lc: exps
                .iter()
                .fold(LinearCombination::zero(), |a, e| a + &e.lc),
            value: exps.iter().map(|e| e.value).sum(),
        };
        for (e, &q) in exps.iter().zip(claimed) {
            let q = range_checked(cs, q as i128, p.out.min() as i128, p.out.bits())?;
            let num = int::sub(int::shl(e.value, p.shift)?, int::mul(q.value, den.value)?)?;
            let rem = range_checked(cs, num, 0, bd.tb)?;
            let slack = range_checked(cs, den.value - 1 - rem.value, 0, bd.tb)?;
            equal(cs, &(den.lc.clone() - &constant(1) - &rem.lc), &slack.lc)?;
            product(
                cs,
                &q.lc,
                &den.lc,
                &(&e.lc * field(1i128 << p.shift) - &rem.lc),
            )?;
            out.push(q);
        }
    }
    Ok(out)
}

/// The cost formula of docs/ir.md, with `k = 32` bits for `pos`.
pub fn cost(rows: usize, p: &SoftmaxParams, masked: bool, r: Ranges) -> usize {
    let l = p.row_len;
    let bd = Bounds::new(p.input.bits(), p.consts, l);
    let nb = if bd.saturate { bd.sb } else { bd.zb } as usize;
    let sat = if bd.saturate {
        r.comparison(bd.zb) + 1 + bd.sb as usize
    } else {
        0
    };
    let exp = r.below(p.consts[0] as u128)
        + bd.zb as usize
        + 3 * r.rc(bd.pb)
        + 4
        + nb.saturating_sub(1)
        + sat;
    let div = r.rc(p.out.bits()) + 2 * r.rc(bd.tb) + 2;
    let mut total = rows * ((l - 1) + l * (exp + div));
    if masked {
        total += l + r.rc(32) + 3;
        total += (0..rows)
            .map(|r| (l - 1).saturating_sub(r % p.rows_per_batch.max(1)))
            .sum::<usize>();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_util::{cs, satisfied_in_every_mode, wires, Lcg};
    use crate::backend::Alloc;
    use zkc_lang::semantics::{self, Tensor};

    /// Input scale 2^-6 (ln2 = 44, b = 86, c = 3930), i16 scores, i16 probabilities at 2^-12.
    fn params(row_len: usize, rows_per_batch: usize) -> SoftmaxParams {
        SoftmaxParams {
            consts: [44, 86, 3930],
            shift: 12,
            input: DType::I16,
            out: DType::I16,
            row_len,
            rows_per_batch,
        }
    }

    fn satisfied(
        x: &[i64],
        pos: Option<i64>,
        p: &SoftmaxParams,
        claimed: &[i64],
        mode: Alloc,
    ) -> bool {
        satisfied_in_every_mode(
            |cs| {
                let pos_wire = pos.map(|v| Wire::new(cs, v as i128, Alloc::Input).unwrap());
                softmax(cs, &wires(cs, x, mode), pos_wire.as_ref(), p, claimed).unwrap();
            },
            |r| cost(x.len() / p.row_len, p, pos.is_some(), r),
        )
    }

    fn honest(x: &[i64], pos: Option<i64>, p: &SoftmaxParams) -> Vec<i64> {
        let t = Tensor::new(vec![x.len() / p.row_len, p.row_len], x.to_vec()).unwrap();
        semantics::softmax(
            &t,
            pos.map(Tensor::scalar).as_ref(),
            p.consts,
            p.shift,
            p.out,
        )
        .unwrap()
        .into_data()
    }

    #[test]
    fn honest_rows_satisfy_and_perturbed_probabilities_fail() {
        let mut rng = Lcg(61);
        for (l, rows, pos) in [
            (1, 1, None),
            (4, 1, None),
            (5, 2, None),
            (6, 1, Some(2)),
            (6, 2, Some(0)),
            (4, 2, Some(9)),
        ] {
            let x: Vec<i64> = (0..l * rows).map(|_| rng.range(-400, 400)).collect();
            let p = params(l, rows);
            let want = honest(&x, pos, &p);
            for mode in [Alloc::Constant, Alloc::Input, Alloc::Witness] {
                assert!(
                    satisfied(&x, pos, &p, &want, mode),
                    "L {l}, pos {pos:?}: {x:?} -> {want:?}"
                );
                for k in 0..want.len() {
                    for delta in [-1, 1] {
                        let mut wrong = want.clone();
                        wrong[k] += delta;
                        assert!(
                            !satisfied(&x, pos, &p, &wrong, mode),
                            "L {l}, pos {pos:?}, element {k} {delta:+}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_wrong_position_or_a_negative_one_fails() {
        let x = [10, 200, -50, 30];
        let p = params(4, 1);
        let at1 = honest(&x, Some(1), &p);
        assert!(satisfied(&x, Some(1), &p, &at1, Alloc::Witness));
        assert!(
            !satisfied(&x, Some(2), &p, &at1, Alloc::Witness),
            "the mask follows pos"
        );
        assert!(
            !satisfied(&x, Some(-1), &p, &honest(&x, Some(0), &p), Alloc::Witness),
            "pos >= 0"
        );
    }

    /// Issue 12: a full i16 row whose maximum is at the last slot and every other score at the
    /// dtype's minimum. The chain multiplies 63 differences of 65535: its running product
    /// leaves any machine integer after nine factors, so it must be carried in the field.
    #[test]
    fn the_max_chain_survives_a_full_row_of_large_differences() {
        let l = 64;
        let mut x = vec![DType::I16.min(); l];
        x[l - 1] = DType::I16.max();
        for pos in [None, Some(l as i64 - 1), Some(1000)] {
            let p = params(l, 1);
            let want = honest(&x, pos, &p);
            assert!(satisfied(&x, pos, &p, &want, Alloc::Witness), "pos {pos:?}");
            let mut wrong = want.clone();
            wrong[l - 1] -= 1;
            assert!(
                !satisfied(&x, pos, &p, &wrong, Alloc::Witness),
                "pos {pos:?}"
            );
        }
    }

    /// A prover whose row max is no score (one above the maximum): every other constraint is
    /// met by probabilities computed from that max, and only the chain rejects it.
    #[test]
    fn a_max_that_is_no_score_is_rejected_by_the_chain() {
        use zkc_lang::semantics::{exp_int, floor_div};
        let p = params(5, 1);
        let x = [-300i64, 120, 7, 119, -32768];
        let from_max = |m: i128| -> Vec<i64> {
            let [ln2, b, c] = p.consts.map(|v| v as i128);
            let e: Vec<i128> = x
                .iter()
                .map(|&v| exp_int(v as i128 - m, ln2, b, c).unwrap())
                .collect();
            let sum: i128 = e.iter().sum();
            e.iter()
                .map(|&e| floor_div(e << p.shift, sum).unwrap().0 as i64)
                .collect()
        };
        assert_eq!(from_max(120), honest(&x, None, &p));
        for (offset, ok) in [(0, true), (1, false), (5, false)] {
            let cs = cs();
            let xs = wires(&cs, &x, Alloc::Witness);
            synthesize(&cs, &xs, None, &p, &from_max(120 + offset), offset).unwrap();
            assert_eq!(cs.is_satisfied().unwrap(), ok, "max raised by {offset}");
        }
    }

    /// Rows at the ends of every score dtype, over a full context (L = 64): all scores at the
    /// minimum, all at the maximum, the maximum alone at the last slot (the rest at the
    /// minimum) and at the first; without a position and with one (the last slot, and past
    /// the context). Honest results satisfy; a probability off by one does not.
    #[test]
    fn full_rows_at_the_ends_of_every_dtype() {
        let l = 64;
        for input in [DType::I16, DType::I32, DType::I64] {
            let p = SoftmaxParams {
                input,
                ..params(l, 1)
            };
            let (min, max) = (input.min(), input.max());
            let mut last = vec![min; l];
            last[l - 1] = max;
            let mut first = vec![min; l];
            first[0] = max;
            for (what, x) in [
                ("all min", vec![min; l]),
                ("all max", vec![max; l]),
                ("max last", last),
                ("max first", first),
            ] {
                for pos in [None, Some(0), Some(l as i64 - 1), Some(l as i64 + 5)] {
                    let want = honest(&x, pos, &p);
                    let at = format!("{input}, {what}, pos {pos:?}");
                    assert!(satisfied(&x, pos, &p, &want, Alloc::Witness), "{at}");
                    let k = want.iter().position(|&q| q > 0).expect("a valid slot");
                    let mut wrong = want.clone();
                    wrong[k] -= 1;
                    assert!(!satisfied(&x, pos, &p, &wrong, Alloc::Witness), "{at}");
                }
            }
        }
    }

    /// Several query rows (prefill) at a full context, the later rows seeing more slots.
    #[test]
    fn prefill_rows_at_a_full_context() {
        let (l, rows) = (64, 3);
        let mut x = vec![DType::I16.min(); l * rows];
        for r in 0..rows {
            x[r * l + l - 1] = DType::I16.max();
            x[r * l + r] = DType::I16.max() - 1;
        }
        let p = params(l, rows);
        for pos in [Some(0), Some(61), Some(63)] {
            let want = honest(&x, pos, &p);
            assert!(satisfied(&x, pos, &p, &want, Alloc::Witness), "pos {pos:?}");
            let mut wrong = want.clone();
            wrong[2 * l + 2] += 1;
            assert!(
                !satisfied(&x, pos, &p, &wrong, Alloc::Witness),
                "pos {pos:?}"
            );
        }
    }

    #[test]
    fn scores_at_the_ends_of_the_dtype() {
        let x = [-32768, 32767, 0];
        let p = params(3, 1);
        assert!(satisfied(
            &x,
            None,
            &p,
            &honest(&x, None, &p),
            Alloc::Witness
        ));
    }
}
