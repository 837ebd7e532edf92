//! `gelu` (I-BERT): the bits of `x + 2^(w-1)` (`rc(w) + 1`), whose top bit `σ = [x >= 0]` gives
//! `|x| = (2σ - 1) x` (1); `κ = [|x| <= clip]` (`CMP(w)`) and `a = |x| + (1 - κ)(clip - |x|)`
//! (1); `sq = (a - clip)^2` (1); `y = c x + |x| (c - sq)` (1), which is
//! `x (c + sign(x)(c - sq))`. `n * (rc(w) + rc(w+1) + 6)` constraints, or `n * (rc(w) + 4)` when
//! `clip >= 2^(w-1)` (then `a = |x|`).
//!
//! Witness: honest `|x| <= 2^63`; with `clip <= 2^30` and `c <= 2^60` (validated) `sq <= 2^62`
//! and `y` stays below 2^125 (when `clip >= 2^(w-1)`, `w <= 31`). It is computed checked
//! ([`super::int`]) all the same: an operand handed a wrong value is an error, not a wrap.

use super::range::{decompose, equal, non_negative};
use super::{constant, field, int, witness, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use zkc_lang::DType;

pub fn gelu(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    clip: i64,
    c: i64,
    dtype: DType,
) -> Result<Vec<Wire>, SynthesisError> {
    let (clip, c, w) = (clip as i128, c as i128, dtype.bits());
    let clips = clip < 1i128 << (w - 1);
    x.iter()
        .map(|x| {
            let (bits_wire, bits) = decompose(cs, x.value, dtype.min() as i128, w)?;
            equal(cs, &x.lc, &bits_wire.lc)?;
            let sigma = *bits.last().expect("w >= 1");
            let abs = witness(cs, int::abs(x.value)?)?;
            cs.enforce_r1cs_constraint(
                || LinearCombination::from((field(2), sigma)) - Variable::One,
                || x.lc.clone(),
                || abs.lc.clone(),
            )?;
            let a = if clips {
                let gap = Wire {
                    lc: constant(clip) - &abs.lc,
                    value: int::sub(clip, abs.value)?,
                };
                let kappa = non_negative(cs, &gap, w)?;
                let a = witness(cs, abs.value.min(clip))?;
                cs.enforce_r1cs_constraint(
                    || constant(1) - &kappa.lc,
                    || gap.lc.clone(),
                    || a.lc.clone() - &abs.lc,
                )?;
                a
            } else {
                abs.clone()
            };
            let gap = int::sub(a.value, clip)?;
            let sq = witness(cs, int::mul(gap, gap)?)?;
            cs.enforce_r1cs_constraint(
                || a.lc.clone() - &constant(clip),
                || a.lc.clone() - &constant(clip),
                || sq.lc.clone(),
            )?;
            let y = witness(
                cs,
                int::add(
                    int::mul(c, x.value)?,
                    int::mul(abs.value, int::sub(c, sq.value)?)?,
                )?,
            )?;
            cs.enforce_r1cs_constraint(
                || abs.lc.clone(),
                || constant(c) - &sq.lc,
                || y.lc.clone() - &(&x.lc * field(c)),
            )?;
            Ok(y)
        })
        .collect()
}

pub fn cost(n: usize, clip: i64, dtype: DType) -> usize {
    let w = dtype.bits() as usize;
    if (clip as i128) < 1i128 << (w - 1) {
        n * (w + (w + 1) + 6)
    } else {
        n * (w + 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_util::{cs, wires, Lcg, MODES};
    use zkc_lang::semantics::gelu_int;

    fn satisfied(
        x: &[i64],
        clip: i64,
        c: i64,
        claimed: &[i128],
        mode: crate::backend::Alloc,
    ) -> bool {
        let cs = cs();
        let y = gelu(&cs, &wires(&cs, x, mode), clip, c, DType::I16).unwrap();
        assert_eq!(cs.num_constraints(), cost(x.len(), clip, DType::I16));
        for (yi, &v) in y.iter().zip(claimed) {
            equal(&cs, &yi.lc, &constant(v)).unwrap();
        }
        cs.is_satisfied().unwrap()
    }

    /// Every dtype, inputs at its minimum, its maximum and next to them, with a clip inside the
    /// dtype and one at or past its edge (`2^30`, the largest the validator allows).
    #[test]
    fn inputs_at_the_ends_of_every_dtype() {
        for dtype in DType::ALL {
            let (min, max) = (dtype.min(), dtype.max());
            let x = [min, min + 1, max - 1, max, 0];
            for (clip, c) in [(100, 28365), (1 << 30, 1 << 60)] {
                let honest: Vec<i128> = x
                    .iter()
                    .map(|&v| gelu_int(v as i128, clip as i128, c as i128).unwrap())
                    .collect();
                let cs = cs();
                let y = gelu(&cs, &wires(&cs, &x, MODES[2]), clip, c, dtype).unwrap();
                assert_eq!(cs.num_constraints(), cost(x.len(), clip, dtype));
                for (yi, &v) in y.iter().zip(&honest) {
                    assert_eq!(yi.value, v, "{dtype} clip {clip}");
                    equal(&cs, &yi.lc, &constant(v)).unwrap();
                }
                assert!(cs.is_satisfied().unwrap(), "{dtype} clip {clip}");
                equal(&cs, &y[3].lc, &constant(honest[3] + 1)).unwrap();
                assert!(!cs.is_satisfied().unwrap(), "{dtype} clip {clip}");
            }
        }
    }

    #[test]
    fn matches_the_semantics_and_nothing_else() {
        let mut rng = Lcg(41);
        let mut x: Vec<i64> = (0..12).map(|_| rng.range(-32768, 32767)).collect();
        x.extend([0, 1, -1, 32767, -32768, 160, -160, 161]);
        for (clip, c) in [(160, 28365), (40000, 7)] {
            let honest: Vec<i128> = x
                .iter()
                .map(|&v| gelu_int(v as i128, clip as i128, c as i128).unwrap())
                .collect();
            for mode in MODES {
                assert!(satisfied(&x, clip, c, &honest, mode), "clip {clip}");
                for k in [0, 12, 14, 19] {
                    let mut wrong = honest.clone();
                    wrong[k] += 1;
                    assert!(
                        !satisfied(&x, clip, c, &wrong, mode),
                        "clip {clip}, element {k} + 1"
                    );
                    wrong[k] = -honest[k] - 1;
                    assert!(
                        !satisfied(&x, clip, c, &wrong, mode),
                        "clip {clip}, element {k} negated"
                    );
                }
            }
        }
    }
}
