//! Metadata values: every GGUF value type, nested arrays included.

use super::cursor::Cursor;
use super::GgufError;

/// GGUF's value type ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    pub fn from_id(id: u32) -> Option<ValueType> {
        ValueType::ALL.into_iter().find(|t| *t as u32 == id)
    }

    /// The fewest bytes one value of this type takes in a file (bounds array lengths).
    fn min_size(self) -> usize {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 12,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(MetaArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array of values of one type (arrays of arrays may differ in their inner types).
#[derive(Clone, Debug, PartialEq)]
pub struct MetaArray {
    pub elem: ValueType,
    pub items: Vec<MetaValue>,
}

/// Arrays nested deeper than this are refused rather than recursed into.
const MAX_NESTING: usize = 16;

impl MetaValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array(_) => ValueType::Array,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
        }
    }

    /// Any integer type holding a value >= 0.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }

    pub(crate) fn read(
        cur: &mut Cursor,
        ty: ValueType,
        key: &str,
        depth: usize,
    ) -> Result<MetaValue, GgufError> {
        let what = || format!("the value of `{key}`");
        Ok(match ty {
            ValueType::U8 => MetaValue::U8(cur.array::<1>(&what)?[0]),
            ValueType::I8 => MetaValue::I8(cur.array::<1>(&what)?[0] as i8),
            ValueType::U16 => MetaValue::U16(u16::from_le_bytes(cur.array(&what)?)),
            ValueType::I16 => MetaValue::I16(i16::from_le_bytes(cur.array(&what)?)),
            ValueType::U32 => MetaValue::U32(cur.u32(&what)?),
            ValueType::I32 => MetaValue::I32(i32::from_le_bytes(cur.array(&what)?)),
            ValueType::F32 => MetaValue::F32(f32::from_le_bytes(cur.array(&what)?)),
            ValueType::Bool => MetaValue::Bool(cur.array::<1>(&what)?[0] != 0),
            ValueType::String => MetaValue::String(cur.string(&what)?),
            ValueType::U64 => MetaValue::U64(cur.u64(&what)?),
            ValueType::I64 => MetaValue::I64(i64::from_le_bytes(cur.array(&what)?)),
            ValueType::F64 => MetaValue::F64(f64::from_le_bytes(cur.array(&what)?)),
            ValueType::Array => {
                if depth >= MAX_NESTING {
                    return Err(GgufError::TooLarge {
                        what: format!("the array nesting of `{key}`"),
                        value: depth as u64 + 1,
                        limit: MAX_NESTING as u64,
                    });
                }
                let id = cur.u32(&|| format!("the element type of array `{key}`"))?;
                let elem = ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
                    key: key.to_string(),
                    id,
                })?;
                let len = cur.count(elem.min_size(), &|| format!("the length of array `{key}`"))?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(MetaValue::read(cur, elem, key, depth + 1)?);
                }
                MetaValue::Array(MetaArray { elem, items })
            }
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            MetaValue::U8(v) => out.push(*v),
            MetaValue::I8(v) => out.push(*v as u8),
            MetaValue::U16(v) => out.extend(v.to_le_bytes()),
            MetaValue::I16(v) => out.extend(v.to_le_bytes()),
            MetaValue::U32(v) => out.extend(v.to_le_bytes()),
            MetaValue::I32(v) => out.extend(v.to_le_bytes()),
            MetaValue::F32(v) => out.extend(v.to_le_bytes()),
            MetaValue::Bool(v) => out.push(u8::from(*v)),
            MetaValue::String(s) => write_string(out, s),
            MetaValue::U64(v) => out.extend(v.to_le_bytes()),
            MetaValue::I64(v) => out.extend(v.to_le_bytes()),
            MetaValue::F64(v) => out.extend(v.to_le_bytes()),
            MetaValue::Array(a) => {
                out.extend((a.elem as u32).to_le_bytes());
                out.extend((a.items.len() as u64).to_le_bytes());
                for item in &a.items {
                    item.write(out);
                }
            }
        }
    }
}

pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}
