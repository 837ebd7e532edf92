//! `gelu`: a piecewise polynomial selected by the input's bits (docs/ir.md). Per element, with
//! `w` the input's bits, `b` the result's, `K = bound`, `G = width`, `E = tail`, `M = shift`,
//! `S = 2^(K+1-G)` segments and degree `D`:
//!
//! 1. The `w` bits `b_i` of `x + 2^(w-1)`, equated with `x` (`w + 1`); `σ = b_{w-1} = [x >= 0]`.
//!    With a lookup table the bits are not needed one by one: `x + 2^(w-1) = σ 2^(w-1) + h 2^K +
//!    low 2^G + t` with `σ` boolean and `t`, `low`, `h` looked up in `G`, `K - G` and
//!    `w - 1 - K` bits (`rc(G) + rc(K-G) + rc(w-1-K) + 2`); in 2. `h` plays the count's part
//!    (`s = (1-σ)(2^(w-1-K) - 1 - h) + σ h`, zero exactly inside), in 3. `low` the bits
//!    `G..K-1`.
//! 2. Only if `K < w - 1` (else every input is in `[-2^K, 2^K)`): `x` is outside exactly when one
//!    of the bits `K..w-2` differs from `σ` (for `x >= 0` they are `x`'s high bits, for `x < 0`
//!    they are all 1 down to `-2^K`). Their count `s = (1-σ)(w-1-K) + (2σ-1) sum_{i=K}^{w-2} b_i`
//!    is one product, and `o = [s != 0]` takes two: `s * inv = o`, `s * (1 - o) = 0` (3).
//! 3. `off = σ 2^K + sum_{i<K} b_i 2^i`, which is `x + 2^K` inside; the segment
//!    `j = off >> G` and `t = off mod 2^G` are combinations of bits (free). A one-hot `φ` over
//!    the `S` segments: `φ_k (1 - φ_k) = 0`, `sum φ = 1`, `sum k φ_k = j` (`S + 2`).
//! 4. `coef_i = sum_k c_{k,i} φ_k` (free); Horner `h_D = coef_D`, `h_i = h_{i+1} t + coef_i`
//!    (`D` products); `P_poly = h_0`.
//! 5. `y` in the result's `b` bits and `ρ` in `M` bits (`rc(b) + rc(M)`), with
//!    `R = y 2^M + ρ - 2^(M-1)` (`- 0` for `M = 0`). Without the tails `P_poly = R` (1).
//!    With them `sx = σ x` (1) and `o (sx 2^E - P_poly) = R - P_poly` (1): `R` is `P_poly`
//!    inside, `x 2^E` above and 0 below.
//!
//! `n * (SPLIT + S + D + rc(M) + rc(b) + 3)` constraints with `SPLIT` the cost of 1., `+ 4` more
//! per element with the tails.
//!
//! Soundness: the bits (or the range-checked parts, whose weighted sum is then the unique
//! decomposition of `x + 2^(w-1)`) fix `σ`, `s` (an integer below `2^(w-1-K)`, so nonzero in
//! the field exactly when nonzero), `o`, `j` and `t`. Booleans summing to 1 (`S` is far below the field's size) are
//! one-hot, and `sum k φ_k = j` puts the 1 at `j`, so `coef_i = c_{j,i}` and `P_poly` is row
//! `j`'s polynomial at `t`, computed without wrapping: the validator keeps
//! `sum_i |c_{j,i}| (2^G - 1)^i` and `2^E 2^(w-1)` below 2^120, so `|P| < 2^120`. Then
//! `P + 2^(M-1) = y 2^M + ρ` holds in the field between integers of magnitude below 2^127, hence
//! over the integers, and with `0 <= ρ < 2^M` and `y` in its dtype, `y` is the unique
//! `floor((P + 2^(M-1)) / 2^M)`: the semantics' `round_shift`, or no satisfying `y` at all when
//! that does not fit the result dtype.

use super::range::{boolean, decompose, equal, range_checked, Ranges};
use super::{constant, field, weighted_sum, witness, Wire, F};
use ark_ff::Field;
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use zkc_lang::semantics::{gelu_int, GeluAttrs};
use zkc_lang::DType;

/// One `gelu` instruction's constants: the coefficient table (`[segments, degree + 1]`,
/// row-major), the attributes, and the input and result dtypes.
#[derive(Clone, Copy, Debug)]
pub struct Gelu<'a> {
    pub coef: &'a [i64],
    pub degree: usize,
    pub attrs: GeluAttrs,
    pub input: DType,
    pub output: DType,
}

/// What a `gelu`'s cost depends on: its attributes, degree and dtypes (not its coefficients).
#[derive(Clone, Copy, Debug)]
pub struct Signature {
    pub attrs: GeluAttrs,
    pub degree: usize,
    pub input: DType,
    pub output: DType,
}

impl Signature {
    /// What names the function of this signature and coefficients (`lookup::function`): two
    /// gelus with equal keys compute the same results and share one table.
    pub fn key(&self, coef: &[i64]) -> super::lookup::FunctionKey {
        let a = self.attrs;
        let params = [a.bound, a.width, a.tail, a.shift]
            .map(i64::from)
            .into_iter()
            .chain([
                self.degree as i64,
                self.input.bits().into(),
                self.output.bits().into(),
            ])
            .chain([self.input.min(), self.output.min()])
            .chain(coef.iter().copied())
            .collect();
        // One tag for `gelu` and `silu` (the same gadget with other coefficients): a silu and a
        // gelu with equal signatures and coefficients compute the same integers, so sharing
        // their table is sound.
        ("gelu", params)
    }
}

impl Gelu<'_> {
    fn signature(&self) -> Signature {
        Signature {
            attrs: self.attrs,
            degree: self.degree,
            input: self.input,
            output: self.output,
        }
    }

    fn segments(&self) -> usize {
        1usize << (self.attrs.bound + 1 - self.attrs.width)
    }

    /// The input can leave `[-2^K, 2^K)`.
    fn has_tails(&self) -> bool {
        self.attrs.bound + 1 < self.input.bits()
    }
}

/// The prover's choices for one element, which the constraints check: the one-hot, the
/// "outside" bit and the inverse witness beside it (`None`: the honest one, which depends on
/// how the circuit splits the input), and the result. Tests forge them.
#[derive(Clone, Debug)]
pub(crate) struct Hint {
    pub phi: Vec<i128>,
    pub outside: i128,
    pub inverse: Option<F>,
    pub y: i128,
}

impl Hint {
    /// The honest choices for input `x` and claimed result `y`.
    pub fn honest(op: &Gelu, x: i128, y: i128) -> Hint {
        let (w, k, g) = (op.input.bits(), op.attrs.bound, op.attrs.width);
        let u = x.wrapping_sub(op.input.min() as i128) & ((1i128 << w) - 1);
        let sigma = u >> (w - 1);
        let off = (sigma << k) | (u & ((1i128 << k) - 1));
        let mut phi = vec![0; op.segments()];
        phi[(off >> g) as usize] = 1;
        let outside = op.has_tails() && outside_count(u, sigma, w, k) != 0;
        Hint {
            phi,
            outside: outside as i128,
            inverse: None,
            y,
        }
    }
}

/// How many of the bits `K..w-2` of `u = x + 2^(w-1)` differ from the sign bit `σ`.
fn outside_count(u: i128, sigma: i128, w: u32, k: u32) -> i128 {
    (k..w - 1).map(|i| ((u >> i) & 1) ^ sigma ^ 1).sum::<i128>()
}

/// `claimed[i]` is the prover's result for `x[i]`: by the function's table when the circuit
/// has a lookup table and [`tabulated`] says it is cheaper, else segment by segment.
pub fn gelu(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    op: &Gelu,
    claimed: &[i64],
) -> Result<Vec<Wire>, SynthesisError> {
    let r = match super::lookup::width(cs) {
        Some(width) => Ranges::Table { width },
        None => Ranges::Bits,
    };
    if tabulated(x.len(), op.signature(), r) {
        let first =
            super::lookup::function(cs, op.signature().key(op.coef), |first| table(op, first))
                .expect("a circuit with a table takes functions");
        return x
            .iter()
            .zip(claimed)
            .map(|(x, &y)| looked_up(cs, x, y as i128, op, first))
            .collect();
    }
    x.iter()
        .zip(claimed)
        .map(|(x, &y)| Ok(element(cs, x, op, &Hint::honest(op, x.value, y as i128))?.0))
        .collect()
}

/// Whether a circuit checking ranges by `r` evaluates `n` elements by the function's table:
/// when it has a lookup table, the input is at most [`super::lookup::FUNCTION_BITS`] wide, and the table's
/// `2^w` entries plus `rc(w) + rc(b) + 2` per element cost less than the segments.
pub fn tabulated(n: usize, g: Signature, r: Ranges) -> bool {
    matches!(r, Ranges::Table { .. })
        && g.input.bits() <= super::lookup::FUNCTION_BITS
        && n * per_lookup(g, r) + (1usize << g.input.bits()) < segmented(n, g, r)
}

/// Constraints per element by the table (their lookups included).
fn per_lookup(g: Signature, r: Ranges) -> usize {
    r.rc(g.input.bits()) + r.rc(g.output.bits()) + 2
}

/// The table's entries a circuit that checks ranges by `r` adds for `n` elements (0 when it
/// evaluates them by segments): the lookup table's cost, beside its own entries.
pub fn table_entries(n: usize, g: Signature, r: Ranges) -> usize {
    match tabulated(n, g, r) {
        true => 1 << g.input.bits(),
        false => 0,
    }
}

/// The table's entry for input `x` (offset `x' = x - min` in `[0, 2^w)`) with result `y`
/// (offset `y'` in `[0, 2^b)`): `y' + 2^b x'`, [`super::lookup::tagged`]. Below `2^(w+b) <= 2^40` the
/// pair is one integer.
fn encode(op: &Gelu, first: u32, x_offset: i128, y_offset: i128) -> F {
    super::lookup::tagged(first, (y_offset + (x_offset << op.output.bits())) as u64)
}

/// Every input's entry, in input order, for a table whose first entry is `first`: an input
/// whose result does not fit the result dtype (which no witness can have) repeats the entry of
/// the first input that fits, so the table has `2^w` entries, all of them true pairs.
fn table(op: &Gelu, first: u32) -> Vec<F> {
    let (lo, w) = (op.input.min() as i128, op.input.bits());
    let result = |u: i128| {
        gelu_int(u + lo, op.coef, op.degree, op.attrs)
            .ok()
            .filter(|&y| op.output.contains(y))
            .map(|y| (u, y - op.output.min() as i128))
    };
    let fallback = (0..1i128 << w).find_map(result).unwrap_or((0, 0));
    (0..1i128 << w)
        .map(|u| {
            let (u, y) = result(u).unwrap_or(fallback);
            encode(op, first, u, y)
        })
        .collect()
}

/// One element by the table: `x` range-checked in its `w` bits and equated (`rc(w) + 1`), the
/// result `y` range-checked in its `b` (`rc(b)`), and the pair looked up as its entry (1).
///
/// Soundness: with `0 <= x' < 2^w` and `0 <= y' < 2^b`, the looked-up combination is the integer
/// `2^64 (first + 1) + y' + 2^b x'` (far below `p`), and so is every entry; LogUp makes it equal
/// to one of them, hence to this function's entry for the same `x'`, whose `y'` is the
/// semantics' result.
fn looked_up(
    cs: &ConstraintSystemRef<F>,
    x: &Wire,
    y: i128,
    op: &Gelu,
    first: u32,
) -> Result<Wire, SynthesisError> {
    let (x_min, y_min) = (op.input.min() as i128, op.output.min() as i128);
    let checked_x = range_checked(cs, x.value, x_min, op.input.bits())?;
    equal(cs, &checked_x.lc, &x.lc)?;
    let y = range_checked(cs, y, y_min, op.output.bits())?;
    let x_offset = x.value - x_min;
    // The prover's index: the input's own entry (an input off the table has none to count).
    let index = u32::try_from(x_offset)
        .ok()
        .filter(|&u| u < 1 << op.input.bits())
        .map_or(u32::MAX, |u| first + u);
    let lc = &y.lc - &constant(y_min)
        + &(&(&x.lc - &constant(x_min)) * field(1i128 << op.output.bits()))
        + (encode(op, first, 0, 0), ark_relations::gr1cs::Variable::One);
    super::lookup::entry(cs, lc, index);
    Ok(y)
}

/// A witness value that does not fit i128 cannot satisfy the constraints (every honest one
/// fits, by the validator's bound); refuse to build rather than wrap.
fn checked(v: Option<i128>) -> Result<i128, SynthesisError> {
    v.ok_or(SynthesisError::Unsatisfiable)
}

fn product(cs: &ConstraintSystemRef<F>, a: &Wire, b: &Wire) -> Result<Wire, SynthesisError> {
    let p = witness(cs, checked(a.value.checked_mul(b.value))?)?;
    cs.enforce_r1cs_constraint(|| a.lc.clone(), || b.lc.clone(), || p.lc.clone())?;
    Ok(p)
}

/// `x + 2^(w-1)` split into `σ 2^(w-1) + h 2^K + low 2^G + t` (`σ = [x >= 0]`, `t` in `G`
/// bits, `low` in `K - G`, `h` in `w - 1 - K`), each part range-checked and their sum equated
/// with `x`.
struct Split {
    sigma: Wire,
    /// With tails: a measure of the high part that is 0 below zero exactly when every bit
    /// `K..w-2` is 1 and above zero when every one is 0, with its value when they are all 1
    /// (`full`): their count with bits, `h` itself with a table.
    high: Option<(Wire, i128)>,
    low: Wire,
    t: Wire,
}

/// [`Split`] by the `w` bits of `x + 2^(w-1)` (`w + 1` constraints), or with a table by `σ`
/// (boolean) and the three parts looked up (`rc(G) + rc(K-G) + rc(w-1-K) + 2`).
fn split(cs: &ConstraintSystemRef<F>, x: &Wire, op: &Gelu) -> Result<Split, SynthesisError> {
    let (w, k, g) = (op.input.bits(), op.attrs.bound, op.attrs.width);
    let min = op.input.min() as i128;
    if super::lookup::width(cs).is_some() {
        // Wrapping on purpose, as in `range`: out of range, the sum differs from `x`.
        let u = x.value.wrapping_sub(min) & ((1i128 << w) - 1);
        let part = |from: u32, bits: u32| (u >> from) & ((1i128 << bits) - 1);
        let sigma = Wire {
            lc: boolean(cs, u >> (w - 1))?.into(),
            value: u >> (w - 1),
        };
        let t = range_checked(cs, part(0, g), 0, g)?;
        let low = range_checked(cs, part(g, k - g), 0, k - g)?;
        let high = match op.has_tails() {
            true => Some(range_checked(cs, part(k, w - 1 - k), 0, w - 1 - k)?),
            false => None,
        };
        let mut sum = &sigma.lc * field(1i128 << (w - 1)) + &(&low.lc * field(1i128 << g)) + &t.lc;
        if let Some(h) = &high {
            sum = sum + &(&h.lc * field(1i128 << k));
        }
        equal(cs, &(x.lc.clone() - &constant(min)), &sum)?;
        let full = (1i128 << (w - 1 - k)) - 1;
        return Ok(Split {
            sigma,
            high: high.map(|h| (h, full)),
            low,
            t,
        });
    }
    let (u, bits) = decompose(cs, x.value, min, w)?;
    equal(cs, &x.lc, &u.lc)?;
    let bit = |i: u32| ((u.value - min) >> i) & 1;
    let sum = |range: std::ops::Range<u32>, shift: u32| {
        range.fold(Wire::constant(0), |acc, i| Wire {
            lc: acc.lc + (field(1i128 << (i - shift)), bits[i as usize]),
            value: acc.value + (bit(i) << (i - shift)),
        })
    };
    let high = op.has_tails().then(|| {
        let count = Wire {
            lc: (k..w - 1).fold(LinearCombination::zero(), |a, i| a + bits[i as usize]),
            value: (k..w - 1).map(bit).sum::<i128>(),
        };
        (count, (w - 1 - k) as i128)
    });
    Ok(Split {
        sigma: Wire {
            lc: bits[w as usize - 1].into(),
            value: bit(w - 1),
        },
        high,
        low: sum(g..k, g),
        t: sum(0..g, 0),
    })
}

/// One element with the prover's `hint`; returns the result and the `P` its witnesses make
/// (the honest `P` for an honest hint).
pub(crate) fn element(
    cs: &ConstraintSystemRef<F>,
    x: &Wire,
    op: &Gelu,
    hint: &Hint,
) -> Result<(Wire, i128), SynthesisError> {
    let (k, g) = (op.attrs.bound, op.attrs.width);
    let Split {
        sigma,
        high,
        low,
        t,
    } = split(cs, x, op)?;
    let outside = match high {
        Some((high, full)) => {
            // s = (1-σ) full + (2σ-1) high: how far the high part is from "inside" (all
            // ones below zero, all zeros above); zero exactly inside.
            let s_value = (1 - sigma.value) * full + (2 * sigma.value - 1) * high.value;
            let s = witness(cs, s_value)?;
            cs.enforce_r1cs_constraint(
                || &sigma.lc * field(2) - (field(1), Variable::One),
                || high.lc.clone(),
                || s.lc.clone() - &constant(full) + &(&sigma.lc * field(full)),
            )?;
            let o = witness(cs, hint.outside)?;
            let inverse = hint
                .inverse
                .unwrap_or_else(|| field(s_value).inverse().unwrap_or(F::from(0u64)));
            let inv = cs.new_witness_variable(|| Ok(inverse))?;
            cs.enforce_r1cs_constraint(|| s.lc.clone(), || inv.into(), || o.lc.clone())?;
            cs.enforce_r1cs_constraint(
                || s.lc.clone(),
                || constant(1) - &o.lc,
                LinearCombination::zero,
            )?;
            Some(o)
        }
        None => None,
    };
    // off = σ 2^K + low 2^G + t: j = off >> G, t = off mod 2^G.
    let j = Wire {
        lc: low.lc + (field(1i128 << (k - g)), &sigma.lc),
        value: low.value + (sigma.value << (k - g)),
    };
    let phi: Vec<Wire> = hint
        .phi
        .iter()
        .map(|&v| {
            Ok(Wire {
                lc: boolean(cs, v)?.into(),
                value: v,
            })
        })
        .collect::<Result<_, SynthesisError>>()?;
    let total = phi.iter().fold(LinearCombination::zero(), |a, f| a + &f.lc);
    equal(cs, &total, &constant(1))?;
    let index = phi
        .iter()
        .enumerate()
        .fold(LinearCombination::zero(), |a, (s, f)| {
            a + (field(s as i128), &f.lc)
        });
    equal(cs, &index, &j.lc)?;
    let d1 = op.degree + 1;
    let coef = |i: usize| -> Result<Wire, SynthesisError> {
        let mut terms = Vec::new();
        let mut value = 0i128;
        for (s, f) in phi.iter().enumerate() {
            let c = op.coef[s * d1 + i] as i128;
            if c != 0 {
                terms.push((field(c), &f.lc));
                value = checked(c.checked_mul(f.value).and_then(|v| v.checked_add(value)))?;
            }
        }
        Ok(Wire {
            lc: weighted_sum(terms),
            value,
        })
    };
    let mut h = coef(op.degree)?;
    for i in (0..op.degree).rev() {
        let p = product(cs, &h, &t)?;
        let c = coef(i)?;
        h = Wire {
            lc: p.lc + &c.lc,
            value: checked(p.value.checked_add(c.value))?,
        };
    }
    let poly = h;
    let (e, m) = (op.attrs.tail, op.attrs.shift);
    let half = if m == 0 { 0 } else { 1i128 << (m - 1) };
    let p_value = match &outside {
        None => poly.value,
        Some(o) => {
            let linear = match sigma.value {
                0 => 0,
                _ => checked(x.value.checked_mul(1i128 << e))?,
            };
            let gap = checked(linear.checked_sub(poly.value))?;
            checked(poly.value.checked_add(checked(o.value.checked_mul(gap))?))?
        }
    };
    let y = range_checked(cs, hint.y, op.output.min() as i128, op.output.bits())?;
    let rho_value = checked(
        p_value
            .checked_add(half)
            .and_then(|v| v.checked_sub(hint.y.checked_mul(1i128 << m)?)),
    )?;
    let rho = range_checked(cs, rho_value, 0, m)?;
    let rounded = &y.lc * field(1i128 << m) + &rho.lc - &constant(half);
    match outside {
        None => equal(cs, &poly.lc, &rounded)?,
        Some(o) => {
            let sx = product(cs, &sigma, x)?;
            cs.enforce_r1cs_constraint(
                || o.lc.clone(),
                || &sx.lc * field(1i128 << e) - &poly.lc,
                || rounded - &poly.lc,
            )?;
        }
    }
    Ok((y, p_value))
}

/// The cost formula of docs/ir.md: by the table (its lookups; the entries count with the lookup
/// table, [`table_entries`]) or by segments, whichever [`tabulated`] picks.
pub fn cost(n: usize, g: Signature, r: Ranges) -> usize {
    match tabulated(n, g, r) {
        true => n * per_lookup(g, r),
        false => segmented(n, g, r),
    }
}

/// Segment by segment (1. to 5. above).
fn segmented(n: usize, sig: Signature, r: Ranges) -> usize {
    let Signature {
        attrs,
        degree,
        input,
        output,
    } = sig;
    let (w, k, g) = (input.bits(), attrs.bound, attrs.width);
    let segments = 1usize << (k + 1 - g);
    let has_tails = k + 1 < w;
    let split = match r {
        Ranges::Bits => w as usize + 1,
        Ranges::Table { .. } => {
            2 + r.rc(g) + r.rc(k - g) + if has_tails { r.rc(w - 1 - k) } else { 0 }
        }
    };
    let tails = if has_tails { 4 } else { 0 };
    n * (split + segments + 2 + degree + r.rc(attrs.shift) + r.rc(output.bits()) + 1 + tails)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_util::{cs, satisfied_in_every_mode, wires, Lcg, MODES};
    use crate::backend::Alloc;
    use crate::quantize::gelu::{fit, GeluFit, DEGREE};
    use zkc_lang::semantics::{gelu_int, round_shift};

    /// A `gelu` as the quantizer makes it: inputs at `2^-fx`, results at `2^-fy`.
    struct Case {
        fit: GeluFit,
        input: DType,
        output: DType,
    }

    impl Case {
        fn new(fx: i32, input: DType, fy: i32, output: DType) -> Case {
            Case {
                fit: fit(fx, input.bits(), fy).unwrap(),
                input,
                output,
            }
        }

        fn op(&self) -> Gelu<'_> {
            Gelu {
                coef: &self.fit.coef,
                degree: DEGREE,
                attrs: self.fit.attrs,
                input: self.input,
                output: self.output,
            }
        }

        /// The semantics' result, if it fits the result dtype.
        fn honest(&self, x: i128) -> Option<i128> {
            gelu_int(x, &self.fit.coef, DEGREE, self.fit.attrs)
                .ok()
                .filter(|&y| self.output.contains(y))
        }

        /// The dtype's ends, both sides of ±2^K and of segment boundaries, 0, and random inputs.
        fn inputs(&self) -> Vec<i128> {
            let (k, g) = (self.fit.attrs.bound, self.fit.attrs.width);
            let (lo, hi) = (self.input.min() as i128, self.input.max() as i128);
            let edge = 1i128 << k;
            let mut xs = vec![lo, lo + 1, hi, hi - 1, 0, 1, -1];
            xs.extend([edge, edge - 1, edge + 1, -edge, -edge + 1, -edge - 1]);
            for j in [1, 2, 5, 8, 9] {
                let b = -edge + (j << g);
                xs.extend([b, b - 1]);
            }
            let mut rng = Lcg(7 + k as u64);
            xs.extend((0..6).map(|_| rng.range(lo as i64, hi as i64) as i128));
            xs.retain(|x| (lo..=hi).contains(x));
            xs
        }
    }

    fn satisfied(op: &Gelu, x: i128, hint: &Hint, mode: Alloc) -> bool {
        satisfied_in_every_mode(
            |cs| {
                let xw = Wire::new(cs, x, mode).unwrap();
                element(cs, &xw, op, hint).unwrap();
            },
            |r| cost(1, op.signature(), r),
        )
    }

    /// `hint` with the result that agrees with the `P` its own witnesses make, so that only the
    /// forged part can fail.
    fn consistent(op: &Gelu, x: i128, mut hint: Hint) -> Hint {
        let cs = cs();
        let xw = Wire::new(&cs, x, Alloc::Witness).unwrap();
        let (_, p) = element(&cs, &xw, op, &hint).unwrap();
        hint.y = round_shift(p, op.attrs.shift);
        hint
    }

    fn cases() -> Vec<Case> {
        vec![
            Case::new(8, DType::I16, 8, DType::I16),   // K = 10: tails
            Case::new(14, DType::I16, 12, DType::I16), // K = 15 = w - 1: no tails
            Case::new(4, DType::I8, 4, DType::I8),     // K = 6: tails
            Case::new(6, DType::I8, 6, DType::I8),     // K = 7: no tails
        ]
    }

    #[test]
    fn honest_witnesses_satisfy_and_forged_ones_do_not() {
        for case in cases() {
            let op = case.op();
            let segments = op.segments();
            assert_eq!(op.has_tails(), op.attrs.bound + 1 < op.input.bits());
            for x in case.inputs() {
                let y = case.honest(x).expect("results fit by construction");
                let honest = Hint::honest(&op, x, y);
                let j = honest.phi.iter().position(|&f| f == 1).unwrap();
                let what = format!("{} x = {x} (K {})", op.input, op.attrs.bound);
                let mut forged: Vec<(String, Hint)> = Vec::new();
                for y2 in [y + 1, y - 1, -y - 1] {
                    forged.push((
                        format!("y = {y2}"),
                        Hint {
                            y: y2,
                            ..honest.clone()
                        },
                    ));
                }
                if y != 0 {
                    forged.push((
                        "-y".into(),
                        Hint {
                            y: -y,
                            ..honest.clone()
                        },
                    ));
                }
                let one_hot = |hot: &[(usize, i128)]| {
                    let mut phi = vec![0; segments];
                    for &(k, v) in hot {
                        phi[k] = v;
                    }
                    consistent(
                        &op,
                        x,
                        Hint {
                            phi,
                            ..honest.clone()
                        },
                    )
                };
                let next = (j + 1) % segments;
                forged.push(("two hot".into(), one_hot(&[(j, 1), (next, 1)])));
                forged.push(("none hot".into(), one_hot(&[])));
                forged.push(("hot at the next segment".into(), one_hot(&[(next, 1)])));
                // 2a - b = j and 2 - 1 = 1: both sums hold, booleanity does not.
                let (a, b) = if j + 2 < segments {
                    (j + 1, j + 2)
                } else {
                    (j - 1, j - 2)
                };
                if segments >= 3 {
                    forged.push(("2φ_a - φ_b".into(), one_hot(&[(a, 2), (b, -1)])));
                }
                if op.has_tails() {
                    let flipped = Hint {
                        outside: 1 - honest.outside,
                        inverse: Some(F::from(1u64)),
                        ..honest.clone()
                    };
                    forged.push(("o flipped".into(), consistent(&op, x, flipped)));
                    let zero_inverse = Hint {
                        outside: 1 - honest.outside,
                        inverse: Some(F::from(0u64)),
                        ..honest.clone()
                    };
                    forged.push(("o flipped, inv 0".into(), consistent(&op, x, zero_inverse)));
                }
                for mode in MODES {
                    assert!(satisfied(&op, x, &honest, mode), "honest {what}");
                    for (name, hint) in &forged {
                        assert!(!satisfied(&op, x, hint, mode), "{what}: {name} accepted");
                    }
                }
            }
        }
    }

    /// `gelu` over `xs` with results `ys` in a circuit with a `width`-bit table; whether it is
    /// satisfied (the count checked against the formula first).
    fn by_table(op: &Gelu, xs: &[i64], ys: &[i64], mode: Alloc, width: u32) -> bool {
        use crate::backend::lookup;
        let r = Ranges::Table { width };
        assert!(tabulated(xs.len(), op.signature(), r));
        let cs = cs();
        lookup::begin(&cs, width);
        gelu(&cs, &wires(&cs, xs, mode), op, ys).unwrap();
        let n = xs.len();
        let (before, looked) = (cs.num_constraints(), lookup::count(&cs));
        assert_eq!(before + looked, cost(n, op.signature(), r));
        lookup::finish(&cs, &lookup::AssignmentDigest).unwrap();
        // The table: the range table's and this function's entries, and the sums.
        let entries = table_entries(n, op.signature(), r);
        assert_eq!(entries, 1 << op.input.bits());
        assert_eq!(cs.num_constraints(), before + looked + r.table() + entries);
        cs.is_satisfied().unwrap()
    }

    #[test]
    fn by_its_table_the_honest_results_satisfy_and_forged_ones_do_not() {
        let case = Case::new(4, DType::I8, 5, DType::I8);
        let op = case.op();
        let xs: Vec<i64> = (-128..128)
            .filter(|&x| case.honest(x as i128).is_some())
            .collect();
        assert!(xs.len() < 256, "some input's result does not fit");
        let ys: Vec<i64> = xs
            .iter()
            .map(|&x| case.honest(x as i128).unwrap() as i64)
            .collect();
        for mode in MODES {
            for width in [4, 8] {
                assert!(
                    by_table(&op, &xs, &ys, mode, width),
                    "honest, {width}-bit table"
                );
                for (k, delta) in [(0, 1), (5, -1), (77, 2), (100, -3)] {
                    let mut forged = ys.clone();
                    forged[k] += delta;
                    assert!(
                        !by_table(&op, &xs, &forged, mode, width),
                        "y[{k}] off by {delta} accepted"
                    );
                }
                // Another input's result: a true entry of the table, for the wrong input.
                let k = (1..xs.len()).find(|&k| ys[k] != ys[0]).unwrap();
                let mut forged = ys.clone();
                forged[0] = ys[k];
                assert!(
                    !by_table(&op, &xs, &forged, mode, width),
                    "y of x[{k}] accepted"
                );
            }
        }
        // An input whose result does not fit has no entry: no result is accepted for it, not
        // even the one its table slot repeats.
        let x = 127;
        assert_eq!(case.honest(x), None);
        let mut xs = xs.clone();
        xs.push(x as i64);
        for y in [ys[0], 127, -128, 0] {
            let mut ys = ys.clone();
            ys.push(y);
            assert!(!by_table(&op, &xs, &ys, Alloc::Witness, 8), "y = {y}");
        }
    }

    /// Two gelus in one circuit: one table when they are one function (same signature and
    /// coefficients), two otherwise; a result of the other function is no entry of this one's.
    #[test]
    fn one_function_one_table_and_another_functions_results_are_refused() {
        use crate::backend::lookup;
        let (a, b) = (
            Case::new(4, DType::I8, 5, DType::I8),
            Case::new(3, DType::I8, 5, DType::I8),
        );
        let xs: Vec<i64> = (-128..128)
            .filter(|&x| a.honest(x as i128).is_some() && b.honest(x as i128).is_some())
            .collect();
        let ys = |c: &Case| -> Vec<i64> {
            xs.iter()
                .map(|&x| c.honest(x as i128).unwrap() as i64)
                .collect()
        };
        let (ya, yb) = (ys(&a), ys(&b));
        let k = (0..xs.len())
            .find(|&k| ya[k] != yb[k])
            .expect("the functions differ");
        let run = |second: &Case, y2: &[i64]| -> (bool, usize) {
            let cs = cs();
            lookup::begin(&cs, 8);
            let x = wires(&cs, &xs, Alloc::Witness);
            gelu(&cs, &x, &a.op(), &ya).unwrap();
            gelu(&cs, &x, &second.op(), y2).unwrap();
            let before = cs.num_constraints() + lookup::count(&cs);
            lookup::finish(&cs, &lookup::AssignmentDigest).unwrap();
            (cs.is_satisfied().unwrap(), cs.num_constraints() - before)
        };
        let table = Ranges::Table { width: 8 }.table();
        assert_eq!(run(&a, &ya), (true, table + 256), "one function, one table");
        assert_eq!(
            run(&b, &yb),
            (true, table + 512),
            "two functions, two tables"
        );
        let mut forged = yb.clone();
        forged[k] = ya[k];
        assert!(
            !run(&b, &forged).0,
            "the first function's result for x[{k}]"
        );
    }

    #[test]
    fn a_result_outside_its_dtype_cannot_be_proved() {
        // i8 inputs at 2^-4 to i8 results at 2^-5: x = 127 (7.94) gives 254.
        let case = Case::new(4, DType::I8, 5, DType::I8);
        let op = case.op();
        assert_eq!(case.honest(127), None);
        assert_eq!(
            gelu_int(127, &case.fit.coef, DEGREE, case.fit.attrs),
            Ok(254)
        );
        for y in [254, 127, -2, -128] {
            let hint = Hint::honest(&op, 127, y);
            assert!(!satisfied(&op, 127, &hint, Alloc::Witness), "y = {y}");
        }
        // An input outside its dtype has no witness either.
        let hint = Hint::honest(&op, 128, 127);
        assert!(!satisfied(&op, 128, &hint, Alloc::Witness));
    }

    #[test]
    fn the_tensor_gadget_matches_the_semantics() {
        let case = Case::new(8, DType::I16, 8, DType::I16);
        let op = case.op();
        let xs: Vec<i64> = case.inputs().iter().map(|&x| x as i64).collect();
        let ys: Vec<i64> = case
            .inputs()
            .iter()
            .map(|&x| case.honest(x).unwrap() as i64)
            .collect();
        for mode in MODES {
            let honest = cs();
            let out = gelu(&honest, &wires(&honest, &xs, mode), &op, &ys).unwrap();
            assert_eq!(
                honest.num_constraints(),
                cost(xs.len(), op.signature(), Ranges::Bits)
            );
            assert!(honest.is_satisfied().unwrap());
            assert!(out.iter().zip(&ys).all(|(w, &y)| w.value == y as i128));
            let mut wrong = ys.clone();
            wrong[3] += 1;
            let forged = cs();
            gelu(&forged, &wires(&forged, &xs, mode), &op, &wrong).unwrap();
            assert!(!forged.is_satisfied().unwrap());
        }
    }
}
