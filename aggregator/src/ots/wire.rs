//! The `.ots` wire primitives: LEB128 varuints, length-prefixed bytes and
//! a bounds-checked reader.

use super::*;

pub(super) fn write_varuint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

pub(super) fn write_varbytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_varuint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], OtsError> {
        let end = self.at.checked_add(n).ok_or(OtsError::Truncated)?;
        let s = self.bytes.get(self.at..end).ok_or(OtsError::Truncated)?;
        self.at = end;
        Ok(s)
    }

    pub(super) fn byte(&mut self) -> Result<u8, OtsError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn varuint(&mut self) -> Result<u64, OtsError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(OtsError::Invalid("varuint overflows 64 bits".into()));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(OtsError::Invalid("varuint longer than 10 bytes".into()))
    }

    pub(super) fn varbytes(&mut self, max: usize, min: usize) -> Result<&'a [u8], OtsError> {
        let len = self.varuint()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| (min..=max).contains(l))
            .ok_or_else(|| OtsError::Invalid(format!("length {len} outside {min}..={max}")))?;
        self.take(len)
    }

    pub(super) fn finish(&self) -> Result<(), OtsError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            n => Err(OtsError::Trailing(n)),
        }
    }
}
