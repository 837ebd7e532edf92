//! A bounds-checked little-endian reader over the header bytes: every read names what it reads,
//! so a truncated file says where it ends.

use super::GgufError;

pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: (n - self.remaining()) as u64,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<[u8; N], GgufError> {
        Ok(self.take(N, what)?.try_into().expect("took N bytes"))
    }

    pub fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count from the header, refused if even `min_size` bytes per item would not fit in what is
    /// left of the file, so that no allocation is ever sized by an unchecked field.
    pub fn count(
        &mut self,
        min_size: usize,
        what: &dyn Fn() -> String,
    ) -> Result<usize, GgufError> {
        let n = self.u64(what)?;
        let limit = (self.remaining() / min_size.max(1)) as u64;
        if n > limit {
            return Err(GgufError::TooLarge {
                what: what(),
                value: n,
                limit,
            });
        }
        Ok(n as usize)
    }

    /// A GGUF string: u64 length, then UTF-8 bytes.
    pub fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.count(1, &|| format!("the length of {}", what()))?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 { what: what() })
    }
}
