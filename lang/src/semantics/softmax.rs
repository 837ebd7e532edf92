//! Ops over the last axis that compare elements: softmax and argmax.

use super::{exp_int, fit, floor_div, SemanticsError, Tensor};
use crate::types::DType;

/// Integer softmax over the last axis: subtract the row max, [`exp_int`], sum, and divide
/// exactly: `out_j = floor(e_j * 2^shift / sum)`, scale `2^-shift`.
///
/// With `pos`, slot `j` of row `i` (rows counted along the second-to-last axis) takes part only
/// if `j <= pos + i`; masked slots are excluded from the max and the sum and come out 0.
pub fn softmax(
    x: &Tensor,
    pos: Option<&Tensor>,
    [ln2, b, c]: [i64; 3],
    shift: u32,
    out: DType,
) -> Result<Tensor, SemanticsError> {
    let n = x.row_len();
    let rows_per_batch = if x.shape().len() >= 2 {
        x.shape()[x.shape().len() - 2]
    } else {
        1
    };
    let pos = pos.map(Tensor::as_index).transpose()?;
    let mut data = Vec::with_capacity(x.len());
    for (r, row) in x.data().chunks(n.max(1)).enumerate() {
        let valid = match pos {
            Some(p) => {
                let last = p as i128 + (r % rows_per_batch.max(1)) as i128;
                if last < 0 {
                    return Err(SemanticsError::Domain("softmax's position must be >= 0"));
                }
                (last + 1).min(n as i128) as usize
            }
            None => n,
        };
        let max = row[..valid].iter().copied().max().unwrap_or(0) as i128;
        let exps = row[..valid]
            .iter()
            .map(|&v| exp_int(v as i128 - max, ln2 as i128, b as i128, c as i128))
            .collect::<Result<Vec<_>, _>>()?;
        let sum: i128 = exps.iter().sum();
        for e in exps {
            data.push(fit(floor_div(e << shift, sum)?.0, out)?);
        }
        data.extend(std::iter::repeat_n(0, n - valid));
    }
    Tensor::new(x.shape().to_vec(), data)
}

/// Index of the largest element of the last axis, the lowest index on ties; the last axis is
/// removed from the shape.
pub fn argmax(x: &Tensor, out: DType) -> Result<Tensor, SemanticsError> {
    let n = x.row_len();
    let data = x
        .data()
        .chunks(n.max(1))
        .map(|row| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
            fit(best as i128, out)
        })
        .collect::<Result<_, _>>()?;
    Tensor::new(
        x.shape()[..x.shape().len().saturating_sub(1)].to_vec(),
        data,
    )
}

/// `argmax` over a row continued from a carried result (`Op::ArgmaxCarry`): per row, the
/// carried `(best, top)` unless an element of `x` is above `top`, else `offset +` the index of
/// `x`'s first maximum and that maximum. `(best', top')` with the last axis removed.
pub fn argmax_carry(
    x: &Tensor,
    best: &Tensor,
    top: &Tensor,
    offset: usize,
) -> Result<(Tensor, Tensor), SemanticsError> {
    let n = x.row_len().max(1);
    let rows = x.data().chunks(n);
    let (mut bests, mut tops) = (Vec::new(), Vec::new());
    for ((row, &b), &t) in rows.zip(best.data()).zip(top.data()) {
        let local = row
            .iter()
            .enumerate()
            .fold(0, |k, (i, &v)| if v > row[k] { i } else { k });
        match row.get(local) {
            Some(&v) if v > t => {
                bests.push(fit((offset + local) as i128, DType::I32)?);
                tops.push(v);
            }
            _ => {
                bests.push(b);
                tops.push(t);
            }
        }
    }
    Ok((
        Tensor::new(best.shape().to_vec(), bests)?,
        Tensor::new(top.shape().to_vec(), tops)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::tensor::t;

    /// Input scale 2^-6: ln2 = 44, b = floor(1.353 / 2^-6) = 86, c = floor(0.344/0.3585 * 2^12).
    const CONSTS: [i64; 3] = [44, 86, 3930];

    #[test]
    fn softmax_matches_float_and_sums_to_one() {
        let x = t(&[1, 4], &[64, 0, -64, 32]); // 1.0, 0.0, -1.0, 0.5
        let y = softmax(&x, None, CONSTS, 12, DType::I16).unwrap();
        let real = [1.0f64, 0.0, -1.0, 0.5].map(f64::exp);
        let total: f64 = real.iter().sum();
        for (q, r) in y.data().iter().zip(real) {
            assert!(
                (*q as f64 / 4096.0 - r / total).abs() < 0.01,
                "{q} vs {}",
                r / total
            );
        }
        let sum: i64 = y.data().iter().sum();
        assert!((4096 - 4..=4096).contains(&sum), "sum {sum}");
    }

    #[test]
    fn causal_mask_zeroes_future_slots() {
        let x = t(&[2, 3], &[5, 100, 100, 5, 5, 100]);
        let y = softmax(&x, Some(&Tensor::scalar(0)), CONSTS, 12, DType::I16).unwrap();
        assert_eq!(y.data(), &[4096, 0, 0, 2048, 2048, 0]);
        assert!(softmax(&x, Some(&Tensor::scalar(-1)), CONSTS, 12, DType::I16).is_err());
    }

    #[test]
    fn argmax_breaks_ties_low() {
        let x = t(&[2, 4], &[1, 7, 7, 0, -3, -3, -5, -4]);
        assert_eq!(argmax(&x, DType::I32).unwrap(), t(&[2], &[1, 0]));
    }

    /// A row cut into slices and carried through them gives the whole row's argmax, ties to
    /// the lowest index across slices too.
    #[test]
    fn argmax_carried_over_slices_is_the_whole_rows() {
        let row = [3, -2, 9, 9, 4, 9, -7, 9, 1];
        let whole = argmax(&t(&[1, 9], &row), DType::I32).unwrap();
        for cut in [[1, 2], [2, 3], [3, 5], [4, 8]] {
            let mut best = t(&[1], &[0]);
            let mut top = t(&[1], &[i64::MIN]);
            for (a, b) in [(0, cut[0]), (cut[0], cut[1]), (cut[1], 9)] {
                let x = t(&[1, b - a], &row[a..b]);
                (best, top) = argmax_carry(&x, &best, &top, a).unwrap();
            }
            assert_eq!(
                (best.clone(), top.data()),
                (whole.clone(), &[9][..]),
                "{cut:?}"
            );
        }
        // Equal to the carried value: the carried (earlier) index stays.
        let (best, _) =
            argmax_carry(&t(&[1, 2], &[5, 5]), &t(&[1], &[3]), &t(&[1], &[5]), 4).unwrap();
        assert_eq!(best.data(), &[3]);
    }
}
