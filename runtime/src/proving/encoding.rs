//! The byte layout shared by zkc's key and proof files: a magic line `NAME VERSION`, one line of
//! JSON, then binary records (little-endian `u32` lengths, arkworks' compressed encodings).
//! Reading checks every length against the bytes left before it allocates.

use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use serde_json::Value;

/// Why a file could not be read as what it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("it is not a `{0}` file")]
    Foreign(&'static str),
    #[error("it is version {found} of `{kind}`; this zkc reads version {expected}")]
    Version {
        kind: &'static str,
        found: String,
        /// The version, or the versions (`3 to 4`), read.
        expected: String,
    },
    #[error("its header is malformed: {0}")]
    Header(String),
    #[error("it ends inside {0} (truncated)")]
    Truncated(String),
    #[error("{0} is not a valid encoding")]
    Invalid(String),
}

/// Splits `bytes` into the JSON header and the binary rest, checking magic and version.
pub fn split_header<'b>(
    bytes: &'b [u8],
    kind: &'static str,
    version: u64,
) -> Result<(Value, &'b [u8]), DecodeError> {
    split_header_of(bytes, kind, version..=version).map(|(_, header, rest)| (header, rest))
}

/// [`split_header`] for a file read in any of `versions`; also gives the file's version.
pub fn split_header_of<'b>(
    bytes: &'b [u8],
    kind: &'static str,
    versions: std::ops::RangeInclusive<u64>,
) -> Result<(u64, Value, &'b [u8]), DecodeError> {
    let (magic, rest) = line(bytes).ok_or_else(|| match bytes.starts_with(kind.as_bytes()) {
        true => DecodeError::Truncated("the header".into()),
        false => DecodeError::Foreign(kind),
    })?;
    let magic = std::str::from_utf8(magic).map_err(|_| DecodeError::Foreign(kind))?;
    let found = magic
        .strip_prefix(kind)
        .and_then(|v| v.strip_prefix(' '))
        .ok_or(DecodeError::Foreign(kind))?;
    // Canonical digits only: `03` is no version.
    let version = (found.parse::<u64>().ok())
        .filter(|v| v.to_string() == found && versions.contains(v))
        .ok_or_else(|| DecodeError::Version {
            kind,
            found: found.to_string(),
            expected: match versions.start() == versions.end() {
                true => versions.start().to_string(),
                false => format!("{} to {}", versions.start(), versions.end()),
            },
        })?;
    let (json, rest) = line(rest).ok_or_else(|| DecodeError::Truncated("the header".into()))?;
    let header = serde_json::from_slice(json).map_err(|e| DecodeError::Header(e.to_string()))?;
    Ok((version, header, rest))
}

/// The magic line and the JSON header line, as [`split_header`] reads them.
pub fn header_bytes(kind: &str, version: u64, header: &Value) -> Vec<u8> {
    format!("{kind} {version}\n{header}\n").into_bytes()
}

fn line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

/// Appends `value` in arkworks' compressed encoding.
pub fn put<T: CanonicalSerialize>(out: &mut Vec<u8>, value: &T) {
    value
        .serialize_compressed(out)
        .expect("writing to a Vec cannot fail");
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A cursor over the binary part of a file; each read names what it reads for its error.
pub struct Reader<'b> {
    bytes: &'b [u8],
}

impl<'b> Reader<'b> {
    pub fn new(bytes: &'b [u8]) -> Reader<'b> {
        Reader { bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'b [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError::Truncated(what.to_string()));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `u32` length, then that many bytes.
    pub fn sized(&mut self, what: &str) -> Result<&'b [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    /// One value in arkworks' compressed encoding, fully checked (on the curve, in the group).
    pub fn value<T: CanonicalDeserialize>(&mut self, what: &str) -> Result<T, DecodeError> {
        let mut cursor = self.bytes;
        let before = cursor.len();
        let value = T::deserialize_compressed(&mut cursor).map_err(|e| match e {
            ark_serialize::SerializationError::IoError(_) => {
                DecodeError::Truncated(what.to_string())
            }
            _ => DecodeError::Invalid(what.to_string()),
        })?;
        self.bytes = &self.bytes[before - cursor.len()..];
        Ok(value)
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A field element as hex of its compressed encoding (how JSON headers carry them).
pub fn field_hex(f: &zkc_compiler::backend::F) -> String {
    let mut out = Vec::new();
    put(&mut out, f);
    hex(&out)
}

/// A field element as `0x` and the 64 hex digits of its integer, most significant first (how
/// people and EZKL write a hash).
pub fn field_0x(f: &zkc_compiler::backend::F) -> String {
    use ark_ff::{BigInteger, PrimeField};
    format!("0x{}", hex(&f.into_bigint().to_bytes_be()))
}

/// Reads [`field_0x`]'s form: `0x` and 64 hex digits of an integer below the field's modulus.
pub fn parse_field_0x(text: &str) -> Option<zkc_compiler::backend::F> {
    use ark_ff::PrimeField;
    let digits = text.strip_prefix("0x")?;
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut limbs = [0u64; 4];
    for (k, limb) in limbs.iter_mut().enumerate() {
        let at = 64 - 16 * (k + 1);
        *limb = u64::from_str_radix(&digits[at..at + 16], 16).ok()?;
    }
    zkc_compiler::backend::F::from_bigint(ark_ff::BigInt(limbs))
}

pub fn parse_field_hex(text: &str) -> Option<zkc_compiler::backend::F> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect();
    let bytes = bytes?;
    let mut reader = Reader::new(&bytes);
    let f = reader.value("a field element").ok()?;
    reader.is_empty().then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkc_compiler::backend::field;

    #[test]
    fn headers_and_values_round_trip_and_refuse_damage() {
        let header = serde_json::json!({"a": 1});
        let mut bytes = header_bytes("zkc-x", 3, &header);
        put_u32(&mut bytes, 7);
        put(&mut bytes, &field(-5));
        let (read, rest) = split_header(&bytes, "zkc-x", 3).unwrap();
        assert_eq!(read, header);
        let mut r = Reader::new(rest);
        assert_eq!(r.u32("n").unwrap(), 7);
        assert_eq!(r.value::<zkc_compiler::backend::F>("f").unwrap(), field(-5));
        assert!(r.is_empty());
        assert_eq!(
            split_header(&bytes, "zkc-y", 3).unwrap_err(),
            DecodeError::Foreign("zkc-y")
        );
        assert!(matches!(
            split_header(&bytes, "zkc-x", 4),
            Err(DecodeError::Version { .. })
        ));
        let mut r = Reader::new(&rest[..rest.len() - 1]);
        r.u32("n").unwrap();
        assert_eq!(
            r.value::<zkc_compiler::backend::F>("f").unwrap_err(),
            DecodeError::Truncated("f".into())
        );
        assert_eq!(
            Reader::new(&[200, 0, 0, 0, 1])
                .sized("a record")
                .unwrap_err(),
            DecodeError::Truncated("a record".into())
        );
        let f = field(123);
        assert_eq!(parse_field_hex(&field_hex(&f)), Some(f));
        assert_eq!(parse_field_hex("zz"), None);
        for f in [field(0), field(123), field(-1)] {
            let text = field_0x(&f);
            assert_eq!((text.len(), parse_field_0x(&text)), (66, Some(f)));
        }
        assert_eq!(field_0x(&field(255)), format!("0x{}ff", "0".repeat(62)));
        // The modulus itself, and malformed text.
        let p = "0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";
        for bad in [p, "0x12", "12", &format!("0x{}", "g".repeat(64))] {
            assert_eq!(parse_field_0x(bad), None, "{bad}");
        }
        let (version, _, _) = split_header_of(&bytes, "zkc-x", 2..=4).unwrap();
        assert_eq!(version, 3);
        assert_eq!(
            split_header_of(&bytes, "zkc-x", 4..=5)
                .unwrap_err()
                .to_string(),
            "it is version 3 of `zkc-x`; this zkc reads version 4 to 5"
        );
    }
}
