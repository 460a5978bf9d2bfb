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

/// How deep lists, maps and descriptors may nest in what a peer sends. Performatives and
/// message sections use two or three levels; the decoder recurses once per level.
const MAX_NESTING: usize = 32;

/// Checks the value at the start of `buf` before it is handed to serde_amqp, which trusts
/// the counts it reads: a list or map may not claim more elements than it has bytes (a count
/// of 2^32-1 overflowed serde_amqp's field counter, found by fuzzing), a map's count is even,
/// nesting is bounded, and arrays hold plain values (an array of lists or of described
/// values is refused rather than walked; no Service Bus client sends one). Returns the
/// value's length.
pub fn check(buf: &[u8]) -> Result<usize, Malformed> {
    check_at_depth(buf, 0)
}

fn check_at_depth(buf: &[u8], depth: usize) -> Result<usize, Malformed> {
    if depth > MAX_NESTING {
        return Err(Malformed);
    }
    let len = value_len(buf)?;
    let code = buf[0];
    if code == 0x00 {
        let descriptor = check_at_depth(&buf[1..], depth + 1)?;
        check_at_depth(&buf[1 + descriptor..len], depth + 1)?;
        return Ok(len);
    }
    let (count, items) = match code {
        0xc0 | 0xc1 | 0xe0 => {
            let count = *buf.get(2).ok_or(Malformed)?;
            (u32::from(count), buf.get(3..len).ok_or(Malformed)?)
        }
        0xd0 | 0xd1 | 0xf0 => {
            let c = buf.get(5..9).ok_or(Malformed)?;
            let count = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            (count, buf.get(9..len).ok_or(Malformed)?)
        }
        _ => return Ok(len),
    };
    if count as usize > items.len() {
        return Err(Malformed);
    }
    match code {
        0xe0 | 0xf0 => match items.first() {
            Some(0x00) | Some(0xc0..=0xff) => Err(Malformed),
            _ => Ok(len),
        },
        _ => {
            if matches!(code, 0xc1 | 0xd1) && count % 2 != 0 {
                return Err(Malformed);
            }
            let mut at = 0;
            for _ in 0..count {
                at += check_at_depth(items.get(at..).ok_or(Malformed)?, depth + 1)?;
            }
            if at != items.len() {
                return Err(Malformed);
            }
            Ok(len)
        }
    }
}

/// Decodes a value a peer sent, once [`check`] has passed it.
pub fn decode<'de, T: serde::Deserialize<'de>>(buf: &'de [u8]) -> Result<T, Malformed> {
    let len = check(buf)?;
    serde_amqp::from_slice(&buf[..len]).map_err(|_| Malformed)
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

#[cfg(test)]
mod check_tests {
    use super::*;

    #[test]
    fn counts_beyond_the_bytes_and_deep_nesting_are_refused() {
        // list32 claiming 2^32-1 items in 4 bytes (the fuzzer's find, inside a source).
        let huge = [0x00, 0x53, 0x28, 0xd0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(check(&huge), Err(Malformed));
        // A map with an odd count; an array of lists.
        assert_eq!(check(&[0xc1, 0x02, 0x01, 0x40]), Err(Malformed));
        assert_eq!(check(&[0xe0, 0x03, 0x01, 0xc0, 0x00]), Err(Malformed));
        // Lists nested past the bound.
        let mut nested = vec![0x45];
        for _ in 0..40 {
            let mut outer = vec![0xc0, (nested.len() + 1) as u8, 1];
            outer.extend_from_slice(&nested);
            nested = outer;
            if nested.len() > 250 {
                break;
            }
        }
        assert_eq!(check(&nested), Err(Malformed));
    }

    #[test]
    fn what_clients_send_passes() {
        // A described list with a string, a null and a map of one entry.
        let ok = [
            0x00, 0x53, 0x70, 0xc0, 0x0a, 0x03, 0xa1, 0x01, b'a', 0x40, 0xc1, 0x03, 0x02, 0x40,
            0x40,
        ];
        assert_eq!(check(&ok), Ok(ok.len()));
        // An array of symbols.
        let arr = [0xe0, 0x06, 0x02, 0xa3, 0x01, b'x', 0x01, b'y'];
        assert_eq!(check(&arr), Ok(arr.len()));
    }
}
