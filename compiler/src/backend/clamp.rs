//! `clamp`: `x` range-checked to its dtype (`rc(w) + 1`: its operand may be an unchecked
//! combination, and the inactive bounds below rely on the dtype's range); for each active bound
//! a comparison bit (`CMP(w)`): `a = [x >= lo]`, `c = [x <= hi]`; then one product
//! `y = lo*(1-a) + hi*(1-c) + x*(a + c - 1)` (with one bound `y = lo*(1-a) + x*a`, or the
//! mirror). `n * (rc(w) + 1 + k * (rc(w+1) + 1) + [k >= 1])` constraints for `k` active bounds;
//! a bound outside `x`'s dtype is never reached. Witness: `x - lo` and `hi - x` are checked
//! ([`super::int`]): an operand handed a value far past its dtype is an error, not a wrap.

use super::range::{equal, non_negative, range_checked, Ranges};
use super::{constant, field, int, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use zkc_lang::DType;

pub fn clamp(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    lo: i64,
    hi: i64,
    dtype: DType,
) -> Result<Vec<Wire>, SynthesisError> {
    let (lo, hi) = (lo as i128, hi as i128);
    let (min, max) = (dtype.min() as i128, dtype.max() as i128);
    let w = dtype.bits();
    let lo_active = min < lo && lo <= max;
    let hi_active = min <= hi && hi < max;
    x.iter()
        .map(|x| {
            let checked = range_checked(cs, x.value, min, w)?;
            equal(cs, &checked.lc, &x.lc)?;
            let value = x.value.clamp(lo, hi.max(lo));
            if !lo_active && !hi_active {
                return Ok(if lo > max {
                    Wire::constant(lo)
                } else if hi < min {
                    Wire::constant(hi)
                } else {
                    x.clone()
                });
            }
            let y = cs.new_witness_variable(|| Ok(field(value)))?;
            // u = x - lo >= 0 and v = hi - x >= 0, each a bit; `one` stands for an inactive bound.
            let a = if lo_active {
                Some(non_negative(
                    cs,
                    &Wire {
                        lc: x.lc.clone() - &constant(lo),
                        value: int::sub(x.value, lo)?,
                    },
                    w,
                )?)
            } else {
                None
            };
            let c = if hi_active {
                Some(non_negative(
                    cs,
                    &Wire {
                        lc: constant(hi) - &x.lc,
                        value: int::sub(hi, x.value)?,
                    },
                    w,
                )?)
            } else {
                None
            };
            let one = || LinearCombination::from(Variable::One);
            let a_lc = a.map_or_else(one, |a| a.lc);
            let c_lc = c.map_or_else(one, |c| c.lc);
            // x * (a + c - 1) = y - lo*(1 - a) - hi*(1 - c)
            let rhs = LinearCombination::from(y)
                - &((one() - &a_lc) * field(lo))
                - &((one() - &c_lc) * field(hi));
            cs.enforce_r1cs_constraint(|| x.lc.clone(), || a_lc + &c_lc - Variable::One, || rhs)?;
            Ok(Wire {
                lc: y.into(),
                value,
            })
        })
        .collect()
}

pub fn cost(n: usize, lo: i64, hi: i64, dtype: DType, r: Ranges) -> usize {
    let (min, max) = (dtype.min(), dtype.max());
    let k = usize::from(min < lo && lo <= max) + usize::from(min <= hi && hi < max);
    let w = dtype.bits();
    n * (r.rc(w) + 1 + k * r.comparison(w) + usize::from(k >= 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::range::equal;
    use crate::backend::test_util::{cs, satisfied_in_every_mode, wires, MODES};

    /// Clamps `x` and binds each result to `claimed`.
    fn satisfied(
        x: &[i64],
        lo: i64,
        hi: i64,
        claimed: &[i64],
        mode: crate::backend::Alloc,
    ) -> bool {
        satisfied_in_every_mode(
            |cs| {
                let y = clamp(cs, &wires(cs, x, mode), lo, hi, DType::I16).unwrap();
                for (yi, &c) in y.iter().zip(claimed) {
                    equal(
                        cs,
                        &yi.lc,
                        &LinearCombination::from((field(c as i128), Variable::One)),
                    )
                    .unwrap();
                }
            },
            // One binding per result besides the clamp's own.
            |r| cost(x.len(), lo, hi, DType::I16, r) + x.len(),
        )
    }

    #[test]
    fn clamps_exactly_and_rejects_any_other_result() {
        let x = [-32768, -201, -200, -199, 0, 99, 100, 101, 32767];
        for (lo, hi) in [
            (-200, 100),
            (-32768, 100),
            (-200, 32767),
            (-32768, 32767),
            (5, 5),
        ] {
            let honest: Vec<i64> = x.iter().map(|v| (*v).clamp(lo, hi)).collect();
            for mode in MODES {
                assert!(satisfied(&x, lo, hi, &honest, mode), "[{lo}, {hi}]");
                for k in 0..x.len() {
                    for delta in [-1, 1] {
                        let mut wrong = honest.clone();
                        wrong[k] += delta;
                        assert!(
                            !satisfied(&x, lo, hi, &wrong, mode),
                            "[{lo}, {hi}] element {k} {delta:+}"
                        );
                    }
                }
                // The unclamped input where it was clamped.
                assert!(!satisfied(&x, lo, hi, &x, mode) || honest == x);
            }
        }
    }

    /// Every dtype, every input at its minimum and at its maximum, with both bounds active, one,
    /// and none.
    #[test]
    fn inputs_at_the_ends_of_every_dtype() {
        for dtype in DType::ALL {
            let (min, max) = (dtype.min(), dtype.max());
            let x = [min, min, max, max, 0];
            for (lo, hi) in [
                (min + 1, max - 1),
                (min, max - 1),
                (min + 1, max),
                (min, max),
            ] {
                let cs = cs();
                let y = clamp(&cs, &wires(&cs, &x, MODES[2]), lo, hi, dtype).unwrap();
                assert_eq!(
                    cs.num_constraints(),
                    cost(x.len(), lo, hi, dtype, Ranges::Bits)
                );
                for (yi, &xi) in y.iter().zip(&x) {
                    assert_eq!(yi.value, xi.clamp(lo, hi) as i128);
                    equal(
                        &cs,
                        &yi.lc,
                        &LinearCombination::from((field(yi.value), Variable::One)),
                    )
                    .unwrap();
                }
                assert!(cs.is_satisfied().unwrap(), "{dtype} [{lo}, {hi}]");
                if lo > min {
                    // The clamped minimum claimed unclamped.
                    equal(
                        &cs,
                        &y[0].lc,
                        &LinearCombination::from((field(min as i128), Variable::One)),
                    )
                    .unwrap();
                    assert!(!cs.is_satisfied().unwrap(), "{dtype} [{lo}, {hi}]");
                }
            }
        }
    }

    /// An operand past its dtype (an unchecked sum, say) cannot slip past an inactive bound.
    #[test]
    fn an_operand_outside_its_dtype_is_rejected() {
        let cs = cs();
        let x = wires(&cs, &[200], crate::backend::Alloc::Witness);
        let y = clamp(&cs, &x, 0, 127, DType::I8).unwrap();
        assert_eq!(y[0].value, 127);
        assert!(!cs.is_satisfied().unwrap());
    }
}
