//! Reading a GGUF file: the header is parsed from a memory map and every count, offset and size
//! is checked against the file before it is used; tensor data stays in the map until asked for.

use super::cursor::Cursor;
use super::dequant::dequantize;
use super::{GgmlType, GgufError, MetaValue, ValueType, MAGIC};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// The alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// ggml tensors have at most this many dimensions.
const MAX_DIMS: u32 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the contiguous one (a `[rows, cols]` matrix is
    /// `dims = [cols, rows]`).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Row-major shape, outermost first (the reverse of `dims`).
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
}

enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// An open GGUF file.
pub struct GgufFile {
    storage: Storage,
    version: u32,
    metadata: Vec<(String, MetaValue)>,
    keys: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    names: HashMap<String, usize>,
    alignment: u64,
    data_start: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps `path` and parses its header; tensor data is read only when asked for.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| GgufError::io(path, e))?;
        // SAFETY: the map is read-only and private to this process. As with every mmap-based
        // reader, a concurrent writer truncating the file could fault a read: models are inputs
        // that are not written while zkc runs.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| GgufError::io(path, e))?;
        GgufFile::parse(Storage::Mapped(map))
    }

    /// Parses a GGUF held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        GgufFile::parse(Storage::Owned(bytes))
    }

    fn parse(storage: Storage) -> Result<GgufFile, GgufError> {
        let bytes: &[u8] = match &storage {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        };
        let file_len = bytes.len() as u64;
        let mut cur = Cursor::new(bytes);
        let magic = cur.array::<4>(&|| "the magic".into())?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic { found: magic });
        }
        let version = cur.u32(&|| "the version".into())?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = cur.count(24, &|| "the tensor count".into())?;
        let n_kv = cur.count(13, &|| "the metadata count".into())?;
        let mut metadata = Vec::with_capacity(n_kv);
        let mut keys = HashMap::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = cur.string(&|| format!("metadata key #{i}"))?;
            let id = cur.u32(&|| format!("the value type of `{key}`"))?;
            let ty = ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
                key: key.clone(),
                id,
            })?;
            let value = MetaValue::read(&mut cur, ty, &key, 0)?;
            if keys.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::DuplicateKey { key });
            }
            metadata.push((key, value));
        }
        let alignment = match keys.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(MetaValue::U32(a)) if a.is_power_of_two() => u64::from(*a),
            Some(other) => {
                return Err(GgufError::BadAlignment {
                    found: format!("{other:?}"),
                })
            }
        };
        let mut tensors = Vec::with_capacity(n_tensors);
        let mut names = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let info = read_tensor_info(&mut cur, i)?;
            if names.insert(info.name.clone(), tensors.len()).is_some() {
                return Err(GgufError::DuplicateTensor { tensor: info.name });
            }
            tensors.push(info);
        }
        let data_start = (cur.pos() as u64).next_multiple_of(alignment);
        check_layout(&tensors, data_start, alignment, file_len)?;
        Ok(GgufFile {
            storage,
            version,
            metadata,
            keys,
            tensors,
            names,
            alignment,
            data_start,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.keys.get(key).map(|&i| &self.metadata[i].1)
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.names.get(name).map(|&i| &self.tensors[i])
    }

    fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }

    /// The tensor's raw data, borrowed from the map.
    pub fn raw(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_start + info.offset) as usize;
        &self.bytes()[start..start + info.n_bytes as usize]
    }

    /// The tensor as f32, row-major: borrowed straight from the map when it is stored as
    /// little-endian F32 (no copy), dequantized otherwise.
    pub fn tensor_f32(&self, info: &TensorInfo) -> Result<Cow<'_, [f32]>, GgufError> {
        let raw = self.raw(info);
        if info.ty == GgmlType::F32 && cfg!(target_endian = "little") {
            if let Ok(values) = bytemuck::try_cast_slice(raw) {
                return Ok(Cow::Borrowed(values));
            }
        }
        dequantize(info.ty, raw)
            .map(Cow::Owned)
            .ok_or_else(|| GgufError::UnsupportedType {
                tensor: info.name.clone(),
                ty: info.ty.name(),
            })
    }
}

fn read_tensor_info(cur: &mut Cursor, i: usize) -> Result<TensorInfo, GgufError> {
    let name = cur.string(&|| format!("the name of tensor #{i}"))?;
    let n_dims = cur.u32(&|| format!("the rank of tensor `{name}`"))?;
    if !(1..=MAX_DIMS).contains(&n_dims) {
        return Err(GgufError::BadRank {
            tensor: name,
            dims: n_dims,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        dims.push(cur.u64(&|| format!("dimension {d} of tensor `{name}`"))?);
    }
    let id = cur.u32(&|| format!("the type of tensor `{name}`"))?;
    let ty = GgmlType::from_id(id).ok_or_else(|| GgufError::UnknownTensorType {
        tensor: name.clone(),
        id,
    })?;
    let offset = cur.u64(&|| format!("the data offset of tensor `{name}`"))?;
    let bad = |problem: String| GgufError::BadShape {
        tensor: name.clone(),
        shape: dims.clone(),
        problem,
    };
    let elements = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| bad("more than 2^63 elements".into()))?;
    if dims[0] % ty.block_size() != 0 {
        return Err(bad(format!(
            "the first dimension must be a multiple of {ty}'s block size {}",
            ty.block_size()
        )));
    }
    let n_bytes = (elements / ty.block_size())
        .checked_mul(ty.block_bytes())
        .ok_or_else(|| bad("its data size overflows 64 bits".into()))?;
    Ok(TensorInfo {
        name,
        dims,
        ty,
        offset,
        n_bytes,
    })
}

/// Every tensor's data is aligned, inside the file, and disjoint from the others'.
fn check_layout(
    tensors: &[TensorInfo],
    data_start: u64,
    alignment: u64,
    file_len: u64,
) -> Result<(), GgufError> {
    let mut spans = Vec::with_capacity(tensors.len());
    for t in tensors {
        if t.offset % alignment != 0 {
            return Err(GgufError::Misaligned {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let start = data_start.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.n_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => spans.push((start, end, &t.name)),
            _ => {
                return Err(GgufError::DataOutOfBounds {
                    tensor: t.name.clone(),
                    start: start.unwrap_or(u64::MAX),
                    end: end.unwrap_or(u64::MAX),
                    file_len,
                })
            }
        }
    }
    spans.sort();
    for pair in spans.windows(2) {
        let ((_, end, first), (start, next_end, second)) = (&pair[0], &pair[1]);
        if start < end && next_end > start {
            return Err(GgufError::Overlap {
                first: first.to_string(),
                second: second.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgufWriter, MetaArray, TensorData};

    fn sample() -> GgufWriter {
        let mut w = GgufWriter::new();
        w.add_metadata("general.architecture", MetaValue::String("gpt2".into()));
        w.add_metadata("test.i8", MetaValue::I8(-3));
        w.add_metadata("test.f64", MetaValue::F64(0.25));
        let inner = |v: &[i32]| {
            MetaValue::Array(MetaArray {
                elem: ValueType::I32,
                items: v.iter().map(|&x| MetaValue::I32(x)).collect(),
            })
        };
        w.add_metadata(
            "test.nested",
            MetaValue::Array(MetaArray {
                elem: ValueType::Array,
                items: vec![inner(&[1, 2]), inner(&[])],
            }),
        );
        w.add_tensor("a", &[2, 3], TensorData::F32(vec![0., 1., 2., 3., 4., 5.]));
        w.add_tensor(
            "b",
            &[1, 32],
            TensorData::Q8_0((0..32).map(|i| i as f32).collect()),
        );
        w
    }

    #[test]
    fn writer_and_reader_agree() {
        let f = GgufFile::from_bytes(sample().to_bytes()).unwrap();
        assert_eq!(f.version(), 3);
        assert_eq!(
            f.get("general.architecture").and_then(MetaValue::as_str),
            Some("gpt2")
        );
        assert_eq!(f.get("test.i8"), Some(&MetaValue::I8(-3)));
        let nested = f.get("test.nested").and_then(MetaValue::as_array).unwrap();
        assert_eq!(
            nested.items[0].as_array().unwrap().items,
            vec![MetaValue::I32(1), MetaValue::I32(2)]
        );
        let a = f.tensor("a").unwrap();
        assert_eq!(
            (a.dims.clone(), a.shape(), a.ty),
            (vec![3, 2], vec![2, 3], GgmlType::F32)
        );
        assert_eq!(*f.tensor_f32(a).unwrap(), [0., 1., 2., 3., 4., 5.]);
        let b = f.tensor_f32(f.tensor("b").unwrap()).unwrap();
        assert!(b
            .iter()
            .enumerate()
            .all(|(i, &v)| (v - i as f32).abs() < 0.2));
        assert_eq!(f.data_start() % DEFAULT_ALIGNMENT, 0);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample().to_bytes();
        for cut in 0..bytes.len() {
            let err = GgufFile::from_bytes(bytes[..cut].to_vec()).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("ends inside")
                    || msg.contains("beyond its end")
                    || msg.contains("more than the file can hold"),
                "cut {cut}: {msg}"
            );
        }
    }

    fn header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        b
    }

    fn err(bytes: Vec<u8>) -> String {
        GgufFile::from_bytes(bytes).unwrap_err().to_string()
    }

    #[test]
    fn bad_headers_name_the_field() {
        assert!(err(b"GGML\x03\0\0\0".to_vec()).contains("magic"));
        assert!(err(header(1, 0, 0)).contains("version 1 is not supported"));
        assert!(err(header(3u32.swap_bytes(), 0, 0)).contains("big-endian"));
        assert!(err(header(3, u64::MAX, 0)).contains("the tensor count is 18446744073709551615"));
        assert!(err(header(3, 0, 1 << 40)).contains("the metadata count"));
        let mut b = header(3, 0, 1);
        b.extend(4u64.to_le_bytes());
        b.extend(b"key1");
        b.extend(99u32.to_le_bytes());
        assert!(err(b).contains("`key1` has unknown value type 99"));
    }

    /// A file with one tensor whose info fields are given; data section of `data_len` bytes.
    fn one_tensor(dims: &[u64], ty: u32, offset: u64, data_len: usize) -> Vec<u8> {
        let mut b = header(3, 1, 0);
        b.extend(1u64.to_le_bytes());
        b.push(b't');
        b.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend(d.to_le_bytes());
        }
        b.extend(ty.to_le_bytes());
        b.extend(offset.to_le_bytes());
        b.resize(b.len().next_multiple_of(32) + data_len, 0);
        b
    }

    #[test]
    fn bad_tensor_infos_name_the_tensor() {
        assert!(GgufFile::from_bytes(one_tensor(&[4], 0, 0, 16)).is_ok());
        assert!(err(one_tensor(&[4], 0, 0, 15)).contains("tensor `t` data (bytes"));
        assert!(err(one_tensor(&[4], 0, 32, 16)).contains("beyond its end"));
        assert!(err(one_tensor(&[4], 0, 8, 64)).contains("not a multiple of the alignment 32"));
        assert!(err(one_tensor(&[4], 77, 0, 16)).contains("tensor `t` has unknown type id 77"));
        assert!(err(one_tensor(&[4, 1, 1, 1, 1], 0, 0, 16)).contains("5 dimensions"));
        assert!(err(one_tensor(&[16], 8, 0, 64)).contains("multiple of Q8_0's block size 32"));
        assert!(err(one_tensor(&[u64::MAX, 4], 0, 0, 16)).contains("more than 2^63 elements"));
        assert!(err(one_tensor(&[1 << 62], 0, 0, 16)).contains("overflows"));
    }

    #[test]
    fn overlapping_tensors_are_refused() {
        let mut w = GgufWriter::new();
        w.add_tensor("x", &[8], TensorData::F32(vec![0.; 8]));
        w.add_tensor("y", &[8], TensorData::F32(vec![0.; 8]));
        let mut bytes = w.to_bytes();
        // y's info is its name (u64 length 1, "y"), rank, one dimension, type, then the offset.
        let name = [&1u64.to_le_bytes()[..], b"y"].concat();
        let y = bytes.windows(9).position(|w| w == name).unwrap() + 9 + 4 + 8 + 4;
        bytes[y..y + 8].copy_from_slice(&0u64.to_le_bytes());
        assert!(err(bytes).contains("`x` and `y` overlap"));
    }

    #[test]
    fn bad_alignment_is_refused() {
        let mut w = GgufWriter::new();
        w.add_metadata("general.alignment", MetaValue::U32(24));
        assert!(err(w.to_bytes()).contains("power of two"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut b = header(3, 0, 1);
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(9u32.to_le_bytes());
        for _ in 0..40 {
            b.extend(9u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
        }
        b.resize(b.len() + 64, 0);
        assert!(err(b).contains("nesting"));
    }
}
