//! Ops that touch what lives outside one layer run: embedding tables and the KV cache.

use super::{SemanticsError, Tensor};
use crate::types::ShapeDisplay;

/// Row `idx` of `table[V, ..]`, as a `[1, ..]` tensor.
pub fn gather(table: &Tensor, idx: &Tensor) -> Result<Tensor, SemanticsError> {
    let index = idx.as_index()?;
    let rows = table.shape().first().copied().unwrap_or(0);
    let row = table.len() / rows.max(1);
    let i = usize::try_from(index)
        .ok()
        .filter(|&i| i < rows)
        .ok_or(SemanticsError::IndexOutOfRange { index, len: rows })?;
    let mut shape = table.shape().to_vec();
    shape[0] = 1;
    Tensor::new(shape, table.data()[i * row..(i + 1) * row].to_vec())
}

/// The cache `state[C, ..]` with slot `pos` replaced by `x[1, ..]`. A position past the
/// context is an error ("context full"), never a wrap around.
pub fn kv_append(state: &Tensor, x: &Tensor, pos: &Tensor) -> Result<Tensor, SemanticsError> {
    let index = pos.as_index()?;
    let slots = state.shape().first().copied().unwrap_or(0);
    if state.shape().is_empty()
        || x.shape().first() != Some(&1)
        || x.shape()[1..] != state.shape()[1..]
    {
        return Err(SemanticsError::Shape(format!(
            "{} is not one slot of {}",
            ShapeDisplay(x.shape()),
            ShapeDisplay(state.shape())
        )));
    }
    let p = usize::try_from(index)
        .ok()
        .filter(|&p| p < slots)
        .ok_or(SemanticsError::IndexOutOfRange { index, len: slots })?;
    let mut data = state.data().to_vec();
    data[p * x.len()..(p + 1) * x.len()].copy_from_slice(x.data());
    // Every element is an old one or one of x's: no need to scan the whole cache again.
    Tensor::with_bound(
        state.shape().to_vec(),
        data,
        state.max_abs().max(x.max_abs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::tensor::t;

    #[test]
    fn gather_takes_a_row() {
        let table = t(&[3, 2], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(
            gather(&table, &Tensor::scalar(2)).unwrap(),
            t(&[1, 2], &[5, 6])
        );
        assert!(gather(&table, &Tensor::scalar(3)).is_err());
        assert!(gather(&table, &Tensor::scalar(-1)).is_err());
    }

    #[test]
    fn kv_append_fills_one_slot() {
        let cache = t(&[3, 2], &[1, 1, 0, 0, 0, 0]);
        let got = kv_append(&cache, &t(&[1, 2], &[7, 8]), &Tensor::scalar(1)).unwrap();
        assert_eq!(got, t(&[3, 2], &[1, 1, 7, 8, 0, 0]));
        assert_eq!(
            kv_append(&cache, &t(&[1, 2], &[7, 8]), &Tensor::scalar(3)),
            Err(SemanticsError::IndexOutOfRange { index: 3, len: 3 })
        );
    }
}
