//! ggml's block formats to f32, operation for operation as ggml's reference `dequantize_row_*`
//! (so results match bit for bit), and Q8_0 quantization as ggml's `quantize_row_q8_0_ref`.

use super::GgmlType;
use half::{bf16, f16};

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantizes whole blocks; `None` for a type zkc does not dequantize. `bytes` holds a whole
/// number of blocks (the reader guarantees it).
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Option<Vec<f32>> {
    let block = ty.block_bytes() as usize;
    let per_block = ty.block_size() as usize;
    let mut out = Vec::with_capacity(bytes.len() / block * per_block);
    let blocks = bytes.chunks_exact(block);
    match ty {
        GgmlType::F32 => {
            out.extend(blocks.map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))))
        }
        GgmlType::F16 => out.extend(blocks.map(|b| f16_at(b, 0))),
        GgmlType::BF16 => out.extend(blocks.map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())),
        GgmlType::Q8_0 => blocks.for_each(|b| {
            let d = f16_at(b, 0);
            out.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
        }),
        GgmlType::Q4_0 => blocks.for_each(|b| {
            let d = f16_at(b, 0);
            let qs = &b[2..18];
            out.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
            out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
        }),
        GgmlType::Q4_1 => blocks.for_each(|b| {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            let qs = &b[4..20];
            out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + m));
            out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
        }),
        GgmlType::Q5_0 => blocks.for_each(|b| {
            let d = f16_at(b, 0);
            let qh = u32::from_le_bytes(b[2..6].try_into().expect("4 bytes"));
            let qs = &b[6..22];
            let lo = |j: usize| {
                (((qs[j] & 0x0F) as u32 | (((qh >> j) << 4) & 0x10)) as i32 - 16) as f32 * d
            };
            let hi = |j: usize| {
                (((qs[j] >> 4) as u32 | ((qh >> (j + 12)) & 0x10)) as i32 - 16) as f32 * d
            };
            out.extend((0..16).map(lo));
            out.extend((0..16).map(hi));
        }),
        GgmlType::Q5_1 => blocks.for_each(|b| {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            let qh = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
            let qs = &b[8..24];
            let lo = |j: usize| ((qs[j] & 0x0F) as u32 | (((qh >> j) << 4) & 0x10)) as f32 * d + m;
            let hi = |j: usize| ((qs[j] >> 4) as u32 | ((qh >> (j + 12)) & 0x10)) as f32 * d + m;
            out.extend((0..16).map(lo));
            out.extend((0..16).map(hi));
        }),
        GgmlType::Q4K => blocks.for_each(|b| {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let (scales, qs) = (&b[4..16], &b[16..144]);
            for (chunk, q) in qs.chunks_exact(32).enumerate() {
                let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
                let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
                out.extend(q.iter().map(|&v| d1 * (v & 0x0F) as f32 - m1));
                out.extend(q.iter().map(|&v| d2 * (v >> 4) as f32 - m2));
            }
        }),
        GgmlType::Q5K => blocks.for_each(|b| {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
            for (chunk, ql) in qs.chunks_exact(32).enumerate() {
                let (u1, u2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
                let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
                let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
                let high = |l: usize, u: u8| if qh[l] & u != 0 { 16.0 } else { 0.0 };
                out.extend((0..32).map(|l| d1 * ((ql[l] & 0x0F) as f32 + high(l, u1)) - m1));
                out.extend((0..32).map(|l| d2 * ((ql[l] >> 4) as f32 + high(l, u2)) - m2));
            }
        }),
        GgmlType::Q6K => blocks.for_each(|b| {
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            let d = f16_at(b, 208);
            for half in 0..2 {
                let (ql, qh, sc) = (&ql[64 * half..], &qh[32 * half..], &sc[8 * half..]);
                let mut y = [0f32; 128];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0x0F) | (qh[l] & 3) << 4) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) as i32 - 32;
                    y[l] = d * (sc[is] as i8 as f32) * q1 as f32;
                    y[l + 32] = d * (sc[is + 2] as i8 as f32) * q2 as f32;
                    y[l + 64] = d * (sc[is + 4] as i8 as f32) * q3 as f32;
                    y[l + 96] = d * (sc[is + 6] as i8 as f32) * q4 as f32;
                }
                out.extend(y);
            }
        }),
        _ => return None,
    }
    Some(out)
}

/// The 6-bit scale and min of sub-block `j` from the 12 packed bytes of a Q4_K/Q5_K block.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q8_0 blocks of 32: `d = max|x| / 127` as f16, `q = round(x / d)`.
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / 32 * 34);
    for block in values.chunks(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
        out.extend(std::iter::repeat_n(0u8, 32 - block.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_round_trips_within_half_a_step() {
        let values: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 7.0).collect();
        let bytes = quantize_q8_0(&values);
        assert_eq!(bytes.len(), 68);
        let back = dequantize(GgmlType::Q8_0, &bytes).unwrap();
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= 4.5 / 127.0 * 0.51 + 3e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn unsupported_types_are_refused() {
        assert!(dequantize(GgmlType::Q2K, &[0; 84]).is_none());
    }
}
