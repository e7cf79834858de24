//! Reading the archive's own binary files (the scan index, the kept folder listings): bytes
//! taken in order, numbers little-endian, and `None` past the end, so that a damaged or short
//! file is a `None` to handle, never a panic.

/// The bytes not read yet.
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader(bytes)
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(taken)
    }

    /// The next `N` bytes, as an array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// How many bytes are left.
    pub fn left(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_reads_in_order_and_gives_none_past_the_end() {
        let bytes = [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c'];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u32(), Some(1));
        assert_eq!(r.u64(), Some(2));
        assert_eq!(r.left(), 3);
        assert_eq!(r.u32(), None, "three bytes are not a u32");
        assert_eq!(r.left(), 3, "a short read takes nothing");
        assert_eq!(r.array::<2>(), Some(*b"ab"));
        assert_eq!(r.bytes(1), Some(&b"c"[..]));
        assert_eq!(r.bytes(1), None);
        assert_eq!(r.bytes(0), Some(&[][..]));
    }
}
