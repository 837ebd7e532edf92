//! Ops that are linear combinations (free: `linear` with constant weights, `add`, `sub`) and the
//! product of two values (`mul`, 1 constraint per element).
//!
//! The integers of free results are computed with checked arithmetic ([`super::int`]): honest
//! ones are the interpreter's results and fit their dtype, but an operand past its dtype (a
//! wrong value handed in) must give an error, not a wrapped integer.

use super::{constant, field, int, weighted_sum, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError};

/// `x[rows, k] * w[k, n] + bias[n]` with constant `w` and `bias`: the weights become
/// coefficients. Each input is read by `n` output combinations; when `n > 1` it is first bound to
/// one variable (1 constraint per input, [`bound`]), so that an input that is a long combination
/// (a range check's `w + 1` terms) is not repeated in every row that reads an output: matrix
/// nonzeros, not constraints, are what such rows cost (docs/ir.md §4.3). With `n = 1` it is free.
pub fn linear(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    w: &[i64],
    bias: Option<&[i64]>,
    k: usize,
    n: usize,
) -> Result<Vec<Wire>, SynthesisError> {
    let bound_inputs;
    let x = match n > 1 {
        true => {
            bound_inputs = x
                .iter()
                .map(|xi| bound(cs, xi))
                .collect::<Result<Vec<_>, _>>()?;
            &bound_inputs
        }
        false => x,
    };
    let mut out = Vec::with_capacity(x.len() / k.max(1) * n);
    for row in x.chunks(k.max(1)) {
        for j in 0..n {
            let b = bias.map_or(0, |b| b[j] as i128);
            let one = constant(1);
            let mut terms = vec![(field(b), &one)];
            let mut value = b;
            for (i, xi) in row.iter().enumerate() {
                let c = w[i * n + j] as i128;
                if c != 0 {
                    terms.push((field(c), &xi.lc));
                    value = int::add(value, int::mul(c, xi.value)?)?;
                }
            }
            out.push(Wire {
                lc: weighted_sum(terms),
                value,
            });
        }
    }
    Ok(out)
}

/// `x` as one new variable equal to its combination (1 constraint): what rows that read `x`
/// then carry instead of the whole combination.
pub fn bound(cs: &ConstraintSystemRef<F>, x: &Wire) -> Result<Wire, SynthesisError> {
    let v = cs.new_witness_variable(|| Ok(field(x.value)))?;
    cs.enforce_r1cs_constraint(
        || x.lc.clone(),
        || ark_relations::gr1cs::Variable::One.into(),
        || v.into(),
    )?;
    Ok(Wire {
        lc: v.into(),
        value: x.value,
    })
}

/// `a + sign * b`, with `b` broadcast over `a`'s leading axes (its length divides `a`'s).
pub fn add(a: &[Wire], b: &[Wire], sign: i128) -> Result<Vec<Wire>, SynthesisError> {
    a.iter()
        .enumerate()
        .map(|(i, x)| {
            let y = &b[i % b.len()];
            Ok(Wire {
                lc: &x.lc + (field(sign), &y.lc),
                value: int::add(x.value, int::mul(sign, y.value)?)?,
            })
        })
        .collect()
}

/// `a * c` elementwise with constant `c` (broadcast as in [`add`]): free.
pub fn scale(a: &[Wire], c: &[i64]) -> Result<Vec<Wire>, SynthesisError> {
    a.iter()
        .enumerate()
        .map(|(i, x)| {
            let k = c[i % c.len()] as i128;
            Ok(Wire {
                lc: &x.lc * field(k),
                value: int::mul(x.value, k)?,
            })
        })
        .collect()
}

/// `a * b` elementwise (broadcast as in [`add`]): each product is a witness `p` with `a * b = p`.
pub fn mul(
    cs: &ConstraintSystemRef<F>,
    a: &[Wire],
    b: &[Wire],
    claimed: &[i64],
) -> Result<Vec<Wire>, SynthesisError> {
    a.iter()
        .zip(claimed)
        .enumerate()
        .map(|(i, (x, &p))| {
            let y = &b[i % b.len()];
            let v = cs.new_witness_variable(|| Ok(field(p as i128)))?;
            cs.enforce_r1cs_constraint(|| x.lc.clone(), || y.lc.clone(), || v.into())?;
            Ok(Wire {
                lc: v.into(),
                value: p as i128,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::requant::bind;
    use crate::backend::test_util::{cs, wires, Lcg, MODES};
    use zkc_lang::semantics::{self, Tensor};
    use zkc_lang::DType;

    #[test]
    fn linear_binds_its_inputs_once_and_is_exact() {
        let mut rng = Lcg(5);
        let (k, n) = (6, 4);
        let x: Vec<i64> = (0..2 * k).map(|_| rng.range(-128, 127)).collect();
        let w: Vec<i64> = (0..k * n).map(|_| rng.range(-128, 127)).collect();
        let b: Vec<i64> = (0..n).map(|_| rng.range(-1000, 1000)).collect();
        let t = |s: Vec<usize>, d: &[i64]| Tensor::new(s, d.to_vec()).unwrap();
        let want = semantics::linear(
            &t(vec![2, k], &x),
            &t(vec![k, n], &w),
            Some(&t(vec![n], &b)),
            DType::I32,
        )
        .unwrap();
        for mode in MODES {
            let cs = cs();
            let y = linear(&cs, &wires(&cs, &x, mode), &w, Some(&b), k, n).unwrap();
            assert_eq!(
                cs.num_constraints(),
                2 * k,
                "weights are coefficients; each input is bound once"
            );
            for (yi, &wi) in y.iter().zip(want.data()) {
                assert_eq!(yi.value, wi as i128);
                bind(&cs, yi, yi.value).unwrap();
            }
            assert!(cs.is_satisfied().unwrap());
            bind(&cs, &y[3], y[3].value + 1).unwrap();
            assert!(
                !cs.is_satisfied().unwrap(),
                "the combination is not the value plus one"
            );
        }
    }

    #[test]
    fn add_and_sub_broadcast_for_free() {
        let cs = cs();
        let a = wires(&cs, &[1, 2, 3, 4], crate::backend::Alloc::Witness);
        let b = wires(&cs, &[10, -20], crate::backend::Alloc::Input);
        let sum = add(&a, &b, 1).unwrap();
        let diff = add(&a, &b, -1).unwrap();
        assert_eq!(
            sum.iter().map(|w| w.value).collect::<Vec<_>>(),
            [11, -18, 13, -16]
        );
        assert_eq!(
            diff.iter().map(|w| w.value).collect::<Vec<_>>(),
            [-9, 22, -7, 24]
        );
        assert_eq!(cs.num_constraints(), 0);
        let scaled = scale(&a, &[3, -2]).unwrap();
        assert_eq!(
            scaled.iter().map(|w| w.value).collect::<Vec<_>>(),
            [3, -4, 9, -8]
        );
        assert_eq!(cs.num_constraints(), 0);
        for w in sum.iter().chain(&diff).chain(&scaled) {
            bind(&cs, w, w.value).unwrap();
        }
        assert!(cs.is_satisfied().unwrap());
        bind(&cs, &sum[2], sum[2].value + 1).unwrap();
        assert!(
            !cs.is_satisfied().unwrap(),
            "a sum is exactly its operands' sum"
        );
    }

    #[test]
    fn mul_costs_one_constraint_and_rejects_wrong_products() {
        let mut rng = Lcg(9);
        for mode in MODES {
            let x: Vec<i64> = (0..5).map(|_| rng.range(-30000, 30000)).collect();
            let y: Vec<i64> = (0..5).map(|_| rng.range(-30000, 30000)).collect();
            let p: Vec<i64> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
            for (k, delta) in [(None, 0), (Some(2), 1), (Some(4), -1), (Some(0), 0)] {
                let cs = cs();
                let mut claimed = p.clone();
                if let Some(k) = k {
                    claimed[k] = if delta == 0 {
                        -claimed[k]
                    } else {
                        claimed[k] + delta
                    };
                }
                let honest = claimed == p;
                mul(
                    &cs,
                    &wires(&cs, &x, mode),
                    &wires(&cs, &y, crate::backend::Alloc::Witness),
                    &claimed,
                )
                .unwrap();
                assert_eq!(cs.num_constraints(), 5);
                assert_eq!(
                    cs.is_satisfied().unwrap(),
                    honest || x[k.unwrap_or(0)] * y[k.unwrap_or(0)] == 0
                );
            }
        }
    }
}

/// Batched `a[B, M, K] * b[B, K, N]` of two variables: one product constraint per multiply, the
/// sums free; `B * M * N * K` constraints.
pub fn matmul(
    cs: &ConstraintSystemRef<F>,
    a: &[Wire],
    b: &[Wire],
    [batches, m, k, n]: [usize; 4],
) -> Result<Vec<Wire>, SynthesisError> {
    let mut out = Vec::with_capacity(batches * m * n);
    for batch in 0..batches {
        let (ab, bb) = (batch * m * k, batch * k * n);
        for i in 0..m {
            for j in 0..n {
                let mut lc = LinearCombination::zero();
                let mut value = 0;
                for t in 0..k {
                    let (x, y) = (&a[ab + i * k + t], &b[bb + t * n + j]);
                    let p = int::mul(x.value, y.value)?;
                    let v = cs.new_witness_variable(|| Ok(field(p)))?;
                    cs.enforce_r1cs_constraint(|| x.lc.clone(), || y.lc.clone(), || v.into())?;
                    lc += (F::from(1u8), v);
                    value = int::add(value, p)?;
                }
                out.push(Wire { lc, value });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod extreme_tests {
    use super::*;
    use crate::backend::requant::bind;
    use crate::backend::test_util::{cs, wires};
    use crate::backend::Alloc;
    use zkc_lang::semantics::{self, Tensor};
    use zkc_lang::DType;

    /// Operands at the ends of i32 (and of i64 for `mul`): exact integers, satisfied, and one
    /// off fails; a free combination whose integer leaves i128 is an error, not a wrap.
    #[test]
    fn operands_at_the_ends_of_the_dtypes() {
        let (min, max) = (DType::I32.min(), DType::I32.max());
        let a = [min, max, min, max];
        let b = [min, min, max, max];
        let t = |s: Vec<usize>, d: &[i64]| Tensor::new(s, d.to_vec()).unwrap();
        let want = semantics::matmul(&t(vec![1, 4], &a), &t(vec![4, 1], &b), DType::I64).unwrap();
        let cs = cs();
        let y = matmul(
            &cs,
            &wires(&cs, &a, Alloc::Witness),
            &wires(&cs, &b, Alloc::Witness),
            [1, 1, 4, 1],
        )
        .unwrap();
        assert_eq!(y[0].value, want.data()[0] as i128);
        let lin = linear(&cs, &wires(&cs, &a, Alloc::Witness), &b, None, 4, 1).unwrap();
        assert_eq!(lin[0].value, want.data()[0] as i128);
        bind(&cs, &y[0], y[0].value).unwrap();
        bind(&cs, &lin[0], lin[0].value).unwrap();
        assert!(cs.is_satisfied().unwrap());
        bind(&cs, &y[0], y[0].value + 1).unwrap();
        assert!(!cs.is_satisfied().unwrap());

        let (min, max) = (i64::MIN, i64::MAX);
        let x = [min, max, min, max];
        let cs = crate::backend::test_util::cs();
        let p: Vec<i64> = vec![0; 4];
        // The products (2^126 at the ends) do not fit i64, so no claimed result is right; the
        // gadget still builds without overflow.
        mul(
            &cs,
            &wires(&cs, &x, Alloc::Witness),
            &wires(&cs, &x, Alloc::Witness),
            &p,
        )
        .unwrap();
        assert!(!cs.is_satisfied().unwrap());
        let xs = wires(&cs, &x, Alloc::Witness);
        assert!(
            linear(&cs, &xs[..2], &[min, min], None, 2, 1).is_ok(),
            "2^126 - 2^126 + ..."
        );
        assert!(linear(
            &cs,
            &[xs[0].clone(), xs[2].clone()],
            &[min, min],
            None,
            2,
            1
        )
        .is_err());
        assert!(scale(&xs, &[min]).is_ok());
        let big = scale(&xs, &[min]).unwrap();
        assert!(add(&big, &big, 1).is_err(), "2^127 leaves i128");
        assert!(add(&big, &big, -1).is_ok());
    }
}

#[cfg(test)]
mod matmul_tests {
    use super::*;
    use crate::backend::requant::bind;
    use crate::backend::test_util::{cs, wires, Lcg, MODES};
    use zkc_lang::semantics::{self, Tensor};
    use zkc_lang::DType;

    #[test]
    fn matmul_costs_n_k_and_binds_exactly() {
        let mut rng = Lcg(31);
        let dims = [2, 1, 3, 4];
        let a: Vec<i64> = (0..6).map(|_| rng.range(-128, 127)).collect();
        let b: Vec<i64> = (0..24).map(|_| rng.range(-128, 127)).collect();
        let want = semantics::matmul(
            &Tensor::new(vec![2, 1, 3], a.clone()).unwrap(),
            &Tensor::new(vec![2, 3, 4], b.clone()).unwrap(),
            DType::I32,
        )
        .unwrap();
        for mode in MODES {
            let cs = cs();
            let y = matmul(
                &cs,
                &wires(&cs, &a, mode),
                &wires(&cs, &b, crate::backend::Alloc::Witness),
                dims,
            )
            .unwrap();
            assert_eq!(cs.num_constraints(), 2 * 4 * 3);
            assert_eq!(
                y.iter().map(|w| w.value as i64).collect::<Vec<_>>(),
                want.data()
            );
            for w in &y {
                bind(&cs, w, w.value).unwrap();
            }
            assert!(cs.is_satisfied().unwrap());
            bind(&cs, &y[5], y[5].value - 1).unwrap();
            assert!(!cs.is_satisfied().unwrap());
        }
    }
}
