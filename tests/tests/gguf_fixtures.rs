//! GGUF files written by llama.cpp's gguf-py (`scripts/make_gguf_vectors.py`): every block
//! format dequantizes bit for bit as gguf-py does, every metadata type (nested arrays too)
//! reads back, and a version-2 file loads.

use std::path::PathBuf;
use zkc_compiler::gguf::{GgmlType, GgufFile, MetaValue};

fn open(name: &str) -> GgufFile {
    GgufFile::open(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/gguf")
            .join(name),
    )
    .unwrap()
}

#[test]
fn every_block_format_matches_gguf_py_bit_for_bit() {
    let f = open("quant_vectors.gguf");
    let types = [
        "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K",
    ];
    for name in types {
        let q = f.tensor(&format!("q.{name}")).unwrap();
        assert_eq!(q.ty, GgmlType::from_name(name).unwrap());
        assert_eq!(q.shape(), vec![2, 256]);
        let reference = f.tensor(&format!("ref.{name}")).unwrap();
        assert_eq!(reference.ty, GgmlType::F32);
        let (got, want) = (f.tensor_f32(q).unwrap(), f.tensor_f32(reference).unwrap());
        assert_eq!(got.len(), 512);
        for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{name}[{i}]: {g} vs gguf-py's {w}"
            );
        }
    }
}

#[test]
#[allow(clippy::approx_constant)] // gguf-py wrote 3.14159, not pi
fn every_metadata_type_reads_back() {
    let f = open("quant_vectors.gguf");
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_start() % 64, 0);
    let get = |k: &str| f.get(k).unwrap_or_else(|| panic!("{k}"));
    assert_eq!(get("test.u8"), &MetaValue::U8(200));
    assert_eq!(get("test.i8"), &MetaValue::I8(-100));
    assert_eq!(get("test.u16"), &MetaValue::U16(60000));
    assert_eq!(get("test.i16"), &MetaValue::I16(-30000));
    assert_eq!(get("test.u32"), &MetaValue::U32(4_000_000_000));
    assert_eq!(get("test.i32"), &MetaValue::I32(-2_000_000_000));
    assert_eq!(get("test.u64"), &MetaValue::U64((1 << 63) + 5));
    assert_eq!(get("test.i64"), &MetaValue::I64(-(1 << 62) - 7));
    assert!(matches!(get("test.f32"), MetaValue::F32(v) if v.to_bits() == 3.14159f32.to_bits()));
    assert!(matches!(get("test.f64"), MetaValue::F64(_)));
    assert_eq!(get("test.bool"), &MetaValue::Bool(true));
    assert_eq!(get("test.bool_false"), &MetaValue::Bool(false));
    assert_eq!(get("test.str").as_str(), Some("héllo ✓"));
    let strings = get("test.arr_str").as_array().unwrap();
    assert!(strings.items.iter().any(|s| s.as_str() == Some("")));
    let nested: Vec<Vec<i32>> = get("test.nested")
        .as_array()
        .unwrap()
        .items
        .iter()
        .map(|inner| {
            let inner = inner.as_array().unwrap();
            inner
                .items
                .iter()
                .map(|v| {
                    if let MetaValue::I32(x) = v {
                        *x
                    } else {
                        panic!("{v:?}")
                    }
                })
                .collect()
        })
        .collect();
    assert_eq!(nested, vec![vec![1, 2], vec![3], vec![-4, 5, 6]]);
}

#[test]
fn version_2_files_load() {
    let f = open("v2_minimal.gguf");
    assert_eq!(f.version(), 2);
    assert_eq!(
        f.get("general.architecture").and_then(MetaValue::as_str),
        Some("zkc-test")
    );
    let t = f.tensor("t").unwrap();
    assert_eq!((t.dims.clone(), t.shape()), (vec![3, 2], vec![2, 3]));
    assert_eq!(*f.tensor_f32(t).unwrap(), [0., 1., 2., 3., 4., 5.]);
}
