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
use super::{constant, field, int, lookup, witness, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use zkc_lang::semantics::exp_int;
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

/// How a circuit evaluates its softmax's exponentials, chosen by cost ([`Exp::choose`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exp {
    /// I-BERT's polynomial divided by a power of two built from the bits of `z`.
    Bits,
    /// The function's table over the low `key_bits` bits of `d = m - x` ([`exp_by_table`]).
    Table { key_bits: u32 },
}

impl Exp {
    /// The cheapest way for `scores` scores in a circuit that checks ranges by `r`, the table's
    /// `2^L` entries counted: a table only with a lookup table, an input of at most
    /// [`lookup::FUNCTION_BITS`] bits, and `L` from the smallest key past which every
    /// exponential is 0 (`2^L >= pb ln2`) up to the input's width; bits on a tie.
    pub fn choose(scores: usize, p: &SoftmaxParams, r: Ranges) -> Exp {
        let w = p.input.bits();
        if !matches!(r, Ranges::Table { .. }) || w > lookup::FUNCTION_BITS {
            return Exp::Bits;
        }
        let bd = Bounds::new(w, p.consts, p.row_len);
        let total = |exp: Exp| scores * per_score(exp, p, &bd, r) + exp.entries();
        std::iter::once(Exp::Bits)
            .chain((smallest_key(p, &bd)..=w).map(|key_bits| Exp::Table { key_bits }))
            .filter(|exp| !matches!(exp, Exp::Table { key_bits } if key_bits + bd.pb > 64))
            .min_by_key(|&exp| total(exp))
            .expect("bits is always a choice")
    }

    /// The entries its table adds to the circuit's lookup table.
    pub fn entries(self) -> usize {
        match self {
            Exp::Bits => 0,
            Exp::Table { key_bits } => 1 << key_bits,
        }
    }
}

/// The smallest table key `L >= 1` with `2^L >= pb ln2`: from `d >= pb ln2` on, `z >= pb` and
/// the exponential (a polynomial below `2^pb` halved `z` times) is 0. At most the input's width.
fn smallest_key(p: &SoftmaxParams, bd: &Bounds) -> u32 {
    let zero_from = bd.pb as u128 * p.consts[0] as u128;
    bits_of(zero_from.saturating_sub(1))
        .max(1)
        .min(p.input.bits())
}

/// The key naming an exponential's table (`lookup::function`).
fn table_key(p: &SoftmaxParams, key_bits: u32) -> lookup::FunctionKey {
    let [ln2, b, c] = p.consts;
    ("softmax exp", vec![ln2, b, c, key_bits.into()])
}

/// The table of `exp_int(-lo)` for `lo` in `[0, 2^L)`, its first entry at `first`: entry `lo`
/// encodes `e + 2^pb lo` ([`lookup::tagged`]).
fn exp_table(p: &SoftmaxParams, bd: &Bounds, key_bits: u32, first: u32) -> Vec<F> {
    (0..1i128 << key_bits)
        .map(|lo| lookup::tagged(first, (exp_of(p, lo) + (lo << bd.pb)) as u64))
        .collect()
}

/// `exp_int(-d)` with the op's constants; validated constants (`ln2, |b| <= 2^30`,
/// `c <= 2^60`) keep its polynomial far inside `i128`, so it has no error to give.
fn exp_of(p: &SoftmaxParams, d: i128) -> i128 {
    let [ln2, b, c] = p.consts.map(i128::from);
    exp_int(-d, ln2, b, c).unwrap_or(0)
}

/// The table's entries a `softmax` over `rows` rows adds in a circuit checking ranges by `r`,
/// and the key naming its table (one table per key, however many instructions use it).
pub fn table(rows: usize, p: &SoftmaxParams, r: Ranges) -> Option<(lookup::FunctionKey, usize)> {
    match Exp::choose(rows * p.row_len, p, r) {
        Exp::Bits => None,
        exp @ Exp::Table { key_bits } => Some((table_key(p, key_bits), exp.entries())),
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
    let r = match lookup::width(cs) {
        Some(width) => Ranges::Table { width },
        None => Ranges::Bits,
    };
    synthesize(cs, x, pos, p, claimed, Exp::choose(x.len(), p, r), 0)
}

/// [`softmax`] with its exponentials by `exp`, and the prover's row max raised by `max_offset`
/// (tests: a max that is no score).
fn synthesize(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    pos: Option<&Wire>,
    p: &SoftmaxParams,
    claimed: &[i64],
    exp: Exp,
    max_offset: i128,
) -> Result<Vec<Wire>, SynthesisError> {
    let l = p.row_len;
    let bd = Bounds::new(p.input.bits(), p.consts, l);
    // The table's first entry, once per circuit and function.
    let first = match exp {
        Exp::Bits => 0,
        Exp::Table { key_bits } => lookup::function(cs, table_key(p, key_bits), |first| {
            exp_table(p, &bd, key_bits, first)
        })
        .ok_or(SynthesisError::Unsatisfiable)?,
    };
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
            // `reduced`: `d` as the non-negative integer the exponential's checks bound.
            let (reduced, e) = match exp {
                Exp::Bits => exp_by_bits(cs, d_value, p, &bd)?,
                Exp::Table { key_bits } => {
                    let hint = TableHint::honest(d_value, p, key_bits);
                    exp_by_table(cs, hint, p, &bd, key_bits, first)?
                }
            };
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

/// `e = exp_int(-d)` by I-BERT's polynomial ([`Exp::Bits`]): `d = z ln2 + ρ` with `z` in `zb`
/// bits and `ρ < ln2`, `z' = min(z, pb)` and `2^z'` from its bits, then `e = floor(((b - ρ)^2
/// + c) / 2^z')` by its remainder. Returns `z ln2 + ρ` (for the caller to equate with `d`) and
/// `e`.
fn exp_by_bits(
    cs: &ConstraintSystemRef<F>,
    d_value: i128,
    p: &SoftmaxParams,
    bd: &Bounds,
) -> Result<(LinearCombination<F>, Wire), SynthesisError> {
    let [ln2, b, c] = p.consts.map(i128::from);
    let (z_value, rho_value) = (d_value.div_euclid(ln2), d_value.rem_euclid(ln2));
    let (z, z_bits) = decompose(cs, z_value, 0, bd.zb)?;
    let rho = below(cs, rho_value, ln2 as u128)?;
    let reduced = &z.lc * field(ln2) + &rho.lc;
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
    let factor_t = |t: usize| constant(1) + (field((1i128 << (1u32 << t).min(126)) - 1), bits[t]);
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
    Ok((reduced, e))
}

/// A prover's values for [`exp_by_table`]: `d`'s parts, the looked-up entry's result and the
/// exponential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TableHint {
    lo: i128,
    hi: i128,
    looked: i128,
    e: i128,
}

impl TableHint {
    /// The honest values for `d`. Wrapping on purpose, as in `range_checked`: a `d` outside
    /// `[0, 2^w)` (from a wrong max) gives parts whose sum differs from it.
    fn honest(d: i128, p: &SoftmaxParams, key_bits: u32) -> TableHint {
        let lo = d & ((1i128 << key_bits) - 1);
        let hi = (d >> key_bits) & ((1i128 << (p.input.bits() - key_bits)) - 1);
        let looked = exp_of(p, lo);
        TableHint {
            lo,
            hi,
            looked,
            e: if hi == 0 { looked } else { 0 },
        }
    }
}

/// `e = exp_int(-d)` by the function's table ([`Exp::Table`], key width `L`): `d = lo + 2^L
/// hi` with `lo` in `L` bits and `hi` in `w - L` (when `L < w`); `e'` in `pb` bits;
/// `tag + e' + 2^pb lo` looked up as `lo`'s entry; and when `L < w`, `hi e = 0` and
/// `hi t = e' - e`, so `e = e'` when `hi = 0` and `e = 0` otherwise. Returns `lo + 2^L hi` (for
/// the caller to equate with `d`) and `e`: `rc(L) + rc(pb) + 1`, `+ rc(w - L) + 2` with `hi`.
///
/// Soundness: range-checked, `e' + 2^pb lo` is an integer below `2^64` ([`Exp::choose`] keeps
/// `L + pb <= 64`), so LogUp makes the looked-up combination this function's entry for `lo`
/// ([`lookup::tagged`]): `e' = exp_int(-lo)`. With `hi = 0`, `d = lo` and `e = e'`. With
/// `hi != 0`, `e = 0`, and so is `exp_int(-d)`: `d >= 2^L >= pb ln2` ([`smallest_key`]).
fn exp_by_table(
    cs: &ConstraintSystemRef<F>,
    hint: TableHint,
    p: &SoftmaxParams,
    bd: &Bounds,
    key_bits: u32,
    first: u32,
) -> Result<(LinearCombination<F>, Wire), SynthesisError> {
    let w = p.input.bits();
    let lo = range_checked(cs, hint.lo, 0, key_bits)?;
    let looked = range_checked(cs, hint.looked, 0, bd.pb)?;
    let lc =
        &looked.lc + &(&lo.lc * field(1i128 << bd.pb)) + (lookup::tagged(first, 0), Variable::One);
    // The prover's index: `lo`'s entry (a `lo` off the table has none to count).
    let index = u32::try_from(hint.lo)
        .ok()
        .filter(|&lo| lo >> key_bits == 0)
        .map_or(u32::MAX, |lo| first + lo);
    lookup::entry(cs, lc, index);
    if key_bits == w {
        return Ok((lo.lc, looked));
    }
    let hi = range_checked(cs, hint.hi, 0, w - key_bits)?;
    let e = witness(cs, hint.e)?;
    product(cs, &hi.lc, &e.lc, &LinearCombination::zero())?;
    let t = cs.new_witness_variable(|| {
        Ok(match hint.hi {
            0 => F::from(0u8),
            hi => field(hint.looked - hint.e) / field(hi),
        })
    })?;
    product(cs, &hi.lc, &t.into(), &(&looked.lc - &e.lc))?;
    Ok((&lo.lc + &(&hi.lc * field(1i128 << key_bits)), e))
}

/// The cost formula of docs/ir.md, with `k = 32` bits for `pos` and the exponentials by
/// [`Exp::choose`] (the table's entries count with the lookup table, [`table`]).
pub fn cost(rows: usize, p: &SoftmaxParams, masked: bool, r: Ranges) -> usize {
    cost_with(rows, p, masked, r, Exp::choose(rows * p.row_len, p, r))
}

/// Constraints of one score's exponential by `exp` (its equation with `d` included).
fn per_score(exp: Exp, p: &SoftmaxParams, bd: &Bounds, r: Ranges) -> usize {
    match exp {
        Exp::Bits => {
            let nb = if bd.saturate { bd.sb } else { bd.zb } as usize;
            let sat = match bd.saturate {
                true => r.comparison(bd.zb) + 1 + bd.sb as usize,
                false => 0,
            };
            r.below(p.consts[0] as u128)
                + bd.zb as usize
                + 3 * r.rc(bd.pb)
                + 4
                + nb.saturating_sub(1)
                + sat
        }
        Exp::Table { key_bits } => {
            let hi = p.input.bits() - key_bits;
            let split = match hi {
                0 => 0,
                _ => r.rc(hi) + 2,
            };
            r.rc(key_bits) + r.rc(bd.pb) + 2 + split
        }
    }
}

/// [`cost`] with the exponentials by `exp`.
fn cost_with(rows: usize, p: &SoftmaxParams, masked: bool, r: Ranges, exp: Exp) -> usize {
    let l = p.row_len;
    let bd = Bounds::new(p.input.bits(), p.consts, l);
    let exp = per_score(exp, p, &bd, r);
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
        let key = smallest_key(&p, &Bounds::new(16, p.consts, 5));
        for exp in [
            Exp::Bits,
            Exp::Table { key_bits: key },
            Exp::Table { key_bits: 16 },
        ] {
            for (offset, ok) in [(0, true), (1, false), (5, false)] {
                let cs = cs();
                lookup::begin(&cs, 8);
                let xs = wires(&cs, &x, Alloc::Witness);
                synthesize(&cs, &xs, None, &p, &from_max(120 + offset), exp, offset).unwrap();
                lookup::finish(&cs, &lookup::AssignmentDigest).unwrap();
                let at = format!("{exp:?}, max raised by {offset}");
                assert_eq!(cs.is_satisfied().unwrap(), ok, "{at}");
            }
        }
    }

    /// `softmax` by the exponential's table (`exp`, in a circuit with an 8-bit range table):
    /// whether `claimed` satisfies it, after checking its constraints against the formula and
    /// the lookup table's size against the range table's and the function's entries.
    fn satisfied_by_table(
        x: &[i64],
        pos: Option<i64>,
        p: &SoftmaxParams,
        claimed: &[i64],
        exp: Exp,
    ) -> bool {
        let r = Ranges::Table { width: 8 };
        let cs = cs();
        lookup::begin(&cs, 8);
        let pos_wire = pos.map(|v| Wire::new(&cs, v as i128, Alloc::Input).unwrap());
        let xs = wires(&cs, x, Alloc::Witness);
        synthesize(&cs, &xs, pos_wire.as_ref(), p, claimed, exp, 0).unwrap();
        let (before, looked) = (cs.num_constraints(), lookup::count(&cs));
        let rows = x.len() / p.row_len;
        assert_eq!(before + looked, cost_with(rows, p, pos.is_some(), r, exp));
        lookup::finish(&cs, &lookup::AssignmentDigest).unwrap();
        assert_eq!(
            cs.num_constraints(),
            before + looked + r.table() + exp.entries()
        );
        cs.is_satisfied().unwrap()
    }

    /// Every entry is the semantics' exponential of its key, and past the smallest key every
    /// exponential is zero, so a key of that width is enough.
    #[test]
    fn the_exponential_table_is_the_semantics_and_zero_past_its_key() {
        let p = params(4, 1);
        let bd = Bounds::new(16, p.consts, 4);
        let key = smallest_key(&p, &bd);
        assert_eq!((bd.pb, key), (14, 10), "ln2 44: zero from 14 * 44 = 616");
        let [ln2, b, c] = p.consts.map(i128::from);
        let table = exp_table(&p, &bd, key, 300);
        assert_eq!(table.len(), 1 << key);
        for (lo, entry) in table.iter().enumerate() {
            let e = exp_int(-(lo as i128), ln2, b, c).unwrap();
            let want = lookup::tagged(300, (e + ((lo as i128) << bd.pb)) as u64);
            assert_eq!(*entry, want, "key {lo}");
        }
        for d in 1i128 << key..1 << 16 {
            assert_eq!(exp_int(-d, ln2, b, c).unwrap(), 0, "d {d}");
        }
    }

    /// The table where it pays: never without a lookup table or for wide scores, not for a
    /// handful of scores, and for many; the widest key once its saving per score beats the
    /// extra entries.
    #[test]
    fn the_exponentials_are_tabulated_where_it_pays() {
        let p = params(64, 1);
        let t8 = Ranges::Table { width: 8 };
        assert_eq!(Exp::choose(1 << 20, &p, Ranges::Bits), Exp::Bits);
        let wide = SoftmaxParams {
            input: DType::I32,
            ..params(64, 1)
        };
        assert_eq!(Exp::choose(1 << 20, &wide, t8), Exp::Bits);
        assert_eq!(Exp::choose(4, &p, t8), Exp::Bits);
        assert_eq!(Exp::choose(768, &p, t8), Exp::Table { key_bits: 10 });
        assert_eq!(Exp::choose(1 << 20, &p, t8), Exp::Table { key_bits: 16 });
        for rows in [1, 2, 12, 192, 1 << 14] {
            let chosen = Exp::choose(rows * 64, &p, t8);
            let cost = |exp: Exp| cost_with(rows, &p, true, t8, exp) + exp.entries();
            for other in [
                Exp::Bits,
                Exp::Table { key_bits: 10 },
                Exp::Table { key_bits: 16 },
            ] {
                assert!(
                    cost(chosen) <= cost(other),
                    "{rows}: {chosen:?} over {other:?}"
                );
            }
        }
    }

    #[test]
    fn by_the_table_honest_rows_satisfy_and_perturbed_probabilities_fail() {
        let mut rng = Lcg(67);
        for key_bits in [10, 13, 16] {
            let exp = Exp::Table { key_bits };
            for (l, rows, pos, spread) in [
                (1, 1, None, 400),
                (4, 1, None, 400),
                (5, 2, None, 3000),
                (6, 1, Some(2), 400),
                (6, 2, Some(0), 30000),
                (4, 2, Some(9), 3000),
            ] {
                let x: Vec<i64> = (0..l * rows).map(|_| rng.range(-spread, spread)).collect();
                let p = params(l, rows);
                let want = honest(&x, pos, &p);
                let at = format!("{exp:?}, L {l}, pos {pos:?}: {x:?} -> {want:?}");
                assert!(satisfied_by_table(&x, pos, &p, &want, exp), "{at}");
                for k in 0..want.len() {
                    for delta in [-1, 1] {
                        let mut wrong = want.clone();
                        wrong[k] += delta;
                        let wrong_at = format!("{at}, element {k} {delta:+}");
                        assert!(!satisfied_by_table(&x, pos, &p, &wrong, exp), "{wrong_at}");
                    }
                }
            }
        }
    }

    /// Full i16 rows by the table: the maximum alone at either end, the rest at the minimum
    /// (every difference past the key), with and without a position.
    #[test]
    fn by_the_table_full_rows_at_the_ends_of_the_dtype() {
        let l = 64;
        let p = params(l, 1);
        let (min, max) = (DType::I16.min(), DType::I16.max());
        let mut last = vec![min; l];
        last[l - 1] = max;
        let mut first = vec![min; l];
        first[0] = max;
        for exp in [Exp::Table { key_bits: 10 }, Exp::Table { key_bits: 16 }] {
            for x in [vec![min; l], vec![max; l], last.clone(), first.clone()] {
                for pos in [None, Some(0), Some(l as i64 - 1), Some(l as i64 + 5)] {
                    let want = honest(&x, pos, &p);
                    assert!(
                        satisfied_by_table(&x, pos, &p, &want, exp),
                        "{exp:?} {pos:?}"
                    );
                    let k = want.iter().position(|&q| q > 0).expect("a valid slot");
                    let mut wrong = want.clone();
                    wrong[k] -= 1;
                    assert!(
                        !satisfied_by_table(&x, pos, &p, &wrong, exp),
                        "{exp:?} {pos:?}"
                    );
                }
            }
        }
    }

    /// One exponential by the table, with the prover's values `hint` for `d`: whether the
    /// circuit (`d` a witness equated with the gadget's parts) is satisfied, and the result.
    fn exponential(d: i128, hint: TableHint, key_bits: u32) -> (bool, i128) {
        let p = params(1, 1);
        let bd = Bounds::new(16, p.consts, 1);
        let cs = cs();
        lookup::begin(&cs, 8);
        let first = lookup::function(&cs, table_key(&p, key_bits), |first| {
            exp_table(&p, &bd, key_bits, first)
        })
        .unwrap();
        let d_wire = witness(&cs, d).unwrap();
        let (reduced, e) = exp_by_table(&cs, hint, &p, &bd, key_bits, first).unwrap();
        equal(&cs, &d_wire.lc, &reduced).unwrap();
        lookup::finish(&cs, &lookup::AssignmentDigest).unwrap();
        (cs.is_satisfied().unwrap(), e.value)
    }

    /// The honest values satisfy and give the semantics' exponential; a wrong result, another
    /// key's true result, a result not zeroed past the key (or zeroed inside it), and a wrong
    /// split of `d` do not satisfy.
    #[test]
    fn by_the_table_forged_exponentials_are_rejected() {
        let p = params(1, 1);
        for key_bits in [10, 16] {
            for d in [0, 1, 43, 44, 615, 616, 1023, 1024, 1025, 5000, 65535] {
                let honest = TableHint::honest(d, &p, key_bits);
                let (ok, e) = exponential(d, honest, key_bits);
                assert!(ok && e == exp_of(&p, d), "key {key_bits}, d {d}");
                let mut forged = vec![
                    TableHint {
                        looked: honest.looked + 1,
                        e: honest.e + (honest.hi == 0) as i128,
                        ..honest
                    },
                    TableHint {
                        looked: exp_of(&p, honest.lo + 1),
                        e: if honest.hi == 0 {
                            exp_of(&p, honest.lo + 1)
                        } else {
                            0
                        },
                        ..honest
                    },
                    TableHint {
                        lo: honest.lo + 1,
                        looked: exp_of(&p, honest.lo + 1),
                        ..honest
                    },
                ];
                if key_bits < 16 {
                    forged.extend([
                        TableHint {
                            e: honest.looked,
                            ..honest
                        },
                        TableHint { e: 0, ..honest },
                        TableHint {
                            hi: honest.hi + 1,
                            ..honest
                        },
                    ]);
                }
                for hint in forged.into_iter().filter(|&h| h != honest) {
                    assert!(!exponential(d, hint, key_bits).0, "{hint:?} for d {d}");
                }
            }
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
