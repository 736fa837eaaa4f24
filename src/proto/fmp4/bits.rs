//! Bit-level reading of NAL unit payloads: emulation-prevention removal and an
//! MSB-first bit reader with Exp-Golomb (`ue(v)` / `se(v)`) support.

/// Reading past the end of the data, or an Exp-Golomb code longer than 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BitError(pub &'static str);

pub(crate) type BitResult<T> = Result<T, BitError>;

const EOF: BitError = BitError("truncated");

/// Converts a NAL unit payload to its RBSP by removing `emulation_prevention_three_byte`s
/// (every `0x03` that follows two zero bytes).
pub(crate) fn to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// MSB-first bit reader over an RBSP.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn read_bit(&mut self) -> BitResult<u32> {
        let byte = *self.data.get(self.pos / 8).ok_or(EOF)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    pub(crate) fn read_flag(&mut self) -> BitResult<bool> {
        Ok(self.read_bit()? == 1)
    }

    /// Reads `n <= 32` bits as an unsigned value.
    pub(crate) fn read_bits(&mut self, n: u32) -> BitResult<u32> {
        debug_assert!(n <= 32);
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.read_bit()?);
        }
        Ok(v as u32)
    }

    pub(crate) fn skip_bits(&mut self, n: usize) -> BitResult<()> {
        let end = self.pos.checked_add(n).ok_or(EOF)?;
        if end > self.data.len() * 8 {
            return Err(EOF);
        }
        self.pos = end;
        Ok(())
    }

    /// `ue(v)`: unsigned Exp-Golomb code.
    pub(crate) fn read_ue(&mut self) -> BitResult<u32> {
        let mut zeros = 0u32;
        while self.read_bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(BitError("exp-golomb code too long"));
            }
        }
        let suffix = u64::from(self.read_bits(zeros)?);
        let v = (1u64 << zeros) - 1 + suffix;
        u32::try_from(v).map_err(|_| BitError("exp-golomb value too large"))
    }

    /// `se(v)`: signed Exp-Golomb code.
    pub(crate) fn read_se(&mut self) -> BitResult<i32> {
        let k = i64::from(self.read_ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_emulation_prevention() {
        assert_eq!(
            to_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 3]
        );
        assert_eq!(to_rbsp(&[0, 3, 0, 0, 3]), vec![0, 3, 0, 0]);
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 -> ue 0,1,2,3,4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        for want in 0..5 {
            assert_eq!(r.read_ue().unwrap(), want);
        }
        let mut r = BitReader::new(&data);
        let got: Vec<i32> = (0..5).map(|_| r.read_se().unwrap()).collect();
        assert_eq!(got, vec![0, 1, -1, 2, -2]);
    }

    #[test]
    fn errors_instead_of_panics() {
        let mut r = BitReader::new(&[0, 0, 0, 0, 0]);
        assert!(r.read_ue().is_err());
        let mut r = BitReader::new(&[0xff]);
        assert!(r.read_bits(9).is_err());
        assert!(r.skip_bits(usize::MAX).is_err());
    }
}
