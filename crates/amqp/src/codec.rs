//! The extent of an encoded AMQP value, without decoding it.
//!
//! A transfer frame is a performative followed by payload bytes, and a message is a run of
//! sections; both are split by finding where one encoded value ends. The AMQP 1.0 type system
//! (part 1, §1.6) fixes the width of every value by the high nibble of its format code, so the
//! extent is found by reading at most a size field per value: no allocation, no recursion
//! except through descriptors, which are bounded.

use std::fmt;

/// An encoded value that is cut short or malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed AMQP value")
    }
}

impl std::error::Error for Malformed {}

/// Descriptors nest (a described value's descriptor may itself be described); legitimate
/// encodings use one level.
const MAX_DESCRIPTOR_DEPTH: usize = 4;

/// The length in bytes of the value encoded at the start of `buf`.
pub fn value_len(buf: &[u8]) -> Result<usize, Malformed> {
    value_len_at_depth(buf, 0)
}

fn value_len_at_depth(buf: &[u8], depth: usize) -> Result<usize, Malformed> {
    let code = *buf.first().ok_or(Malformed)?;
    let len = if code == 0x00 {
        if depth >= MAX_DESCRIPTOR_DEPTH {
            return Err(Malformed);
        }
        let descriptor = value_len_at_depth(&buf[1..], depth + 1)?;
        let value = value_len_at_depth(&buf[1 + descriptor..], depth + 1)?;
        1 + descriptor + value
    } else {
        match code >> 4 {
            0x4 => 1,
            0x5 => 2,
            0x6 => 3,
            0x7 => 5,
            0x8 => 9,
            0x9 => 17,
            0xa | 0xc | 0xe => 2 + usize::from(*buf.get(1).ok_or(Malformed)?),
            0xb | 0xd | 0xf => {
                let size: [u8; 4] = buf
                    .get(1..5)
                    .ok_or(Malformed)?
                    .try_into()
                    .map_err(|_| Malformed)?;
                5usize
                    .checked_add(u32::from_be_bytes(size) as usize)
                    .ok_or(Malformed)?
            }
            _ => return Err(Malformed),
        }
    };
    if len > buf.len() {
        return Err(Malformed);
    }
    Ok(len)
}

/// The descriptor code of a described value encoded with a numeric (ulong) descriptor, as
/// every performative, SASL frame and message section is.
pub fn descriptor_code(buf: &[u8]) -> Option<u64> {
    match buf {
        [0x00, 0x53, code, ..] => Some(u64::from(*code)),
        [0x00, 0x80, rest @ ..] => rest.get(..8).map(|b| {
            let mut be = [0u8; 8];
            be.copy_from_slice(b);
            u64::from_be_bytes(be)
        }),
        [0x00, 0x44, ..] => Some(0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_values_by_nibble() {
        assert_eq!(value_len(&[0x40]), Ok(1));
        assert_eq!(value_len(&[0x52, 7]), Ok(2));
        assert_eq!(value_len(&[0x70, 0, 0, 0, 1, 99]), Ok(5));
        assert_eq!(value_len(&[0x83, 0, 0, 0, 0, 0, 0, 0, 1]), Ok(9));
        assert_eq!(value_len(&[0x98; 17]), Ok(17));
        assert_eq!(value_len(&[0x70, 0, 0]), Err(Malformed));
    }

    #[test]
    fn variable_and_compound_values() {
        assert_eq!(value_len(&[0xa1, 2, b'h', b'i', 0xff]), Ok(4));
        assert_eq!(value_len(&[0xb0, 0, 0, 0, 1, 9]), Ok(6));
        assert_eq!(value_len(&[0xc0, 1, 0]), Ok(3));
        assert_eq!(value_len(&[0xd0, 0, 0, 0, 4, 0, 0, 0, 0]), Ok(9));
        // A size that claims more than is there.
        assert_eq!(value_len(&[0xb0, 0xff, 0xff, 0xff, 0xff]), Err(Malformed));
        assert_eq!(value_len(&[0xa1, 5, b'x']), Err(Malformed));
    }

    #[test]
    fn described_values_and_their_codes() {
        // amqp:open:list with an empty list.
        let open = [0x00, 0x53, 0x10, 0x45];
        assert_eq!(value_len(&open), Ok(4));
        assert_eq!(descriptor_code(&open), Some(0x10));
        let long = [0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x75, 0xa0, 1, 7];
        assert_eq!(value_len(&long), Ok(13));
        assert_eq!(descriptor_code(&long), Some(0x75));
        // Descriptors nested past the bound are refused rather than recursed into.
        let deep = [0x00; 64];
        assert_eq!(value_len(&deep), Err(Malformed));
    }

    #[test]
    fn unknown_format_codes_are_malformed() {
        for code in [0x01u8, 0x10, 0x2f, 0x3a] {
            assert_eq!(value_len(&[code, 0, 0, 0, 0]), Err(Malformed), "{code:#x}");
        }
    }
}
