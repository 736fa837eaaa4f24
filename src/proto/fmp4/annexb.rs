//! Annex-B byte stream splitting (ITU-T H.264 / H.265 Annex B).
//!
//! NAL units are delimited by `00 00 01` start codes (optionally preceded by more zero
//! bytes, i.e. `00 00 00 01`). Trailing zero bytes of a unit belong to the next start
//! code (or are `trailing_zero_8bits`) and are stripped: a NAL unit never ends in `0x00`.

/// Iterator over the NAL units (without start codes) of one Annex-B access unit.
/// Bytes before the first start code are ignored; empty units are skipped.
pub(crate) struct NalUnits<'a> {
    data: &'a [u8],
    /// Start of the current unit's payload, i.e. just after a start code.
    pos: Option<usize>,
}

impl<'a> NalUnits<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        let pos = find_start_code(data, 0).map(|sc| sc + 3);
        Self { data, pos }
    }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let start = self.pos?;
            let (end, next) = match find_start_code(self.data, start) {
                Some(sc) => (sc, Some(sc + 3)),
                None => (self.data.len(), None),
            };
            self.pos = next;
            let unit = trim_trailing_zeros(&self.data[start..end]);
            if !unit.is_empty() {
                return Some(unit);
            }
        }
    }
}

/// Index of the first `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 2 < data.len() {
        // Boyer-Moore style skip: the third byte decides how far we may jump.
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some(i),
            0 | 1 => i += 1,
            _ => i += 3,
        }
    }
    None
}

fn trim_trailing_zeros(unit: &[u8]) -> &[u8] {
    let len = unit.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &unit[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(data: &[u8]) -> Vec<&[u8]> {
        NalUnits::new(data).collect()
    }

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 0, 0,
            3, 1,
        ];
        assert_eq!(
            units(&data),
            vec![
                &[9, 0xf0][..],
                &[0x67, 1, 2][..],
                &[0x68, 3][..],
                &[0x65, 0, 0, 3, 1][..]
            ]
        );
    }

    #[test]
    fn no_start_code_yields_nothing() {
        assert!(units(&[1, 2, 3, 4]).is_empty());
        assert!(units(&[]).is_empty());
        assert!(units(&[0, 0, 1]).is_empty());
        assert!(units(&[0, 0, 1, 0, 0, 0, 1]).is_empty());
    }

    #[test]
    fn leading_garbage_ignored() {
        assert_eq!(units(&[7, 7, 0, 0, 1, 0x41, 5]), vec![&[0x41, 5][..]]);
    }
}
