//! Lock tokens: the engine's receipt as the GUID clients know.
//!
//! On a receive link the lock token travels as the 16-byte delivery tag in .NET's GUID byte
//! order (the first three fields little-endian: Python reads it with `UUID(bytes_le=tag)`,
//! JS reorders it the same way); in `$management` requests it is an AMQP `uuid`, in RFC 4122
//! order. The receipt's 128 bits are the GUID's RFC value.

use hematite_engine::PopReceipt;
use serde_amqp::primitives::Uuid;

/// .NET's order for a GUID's bytes, from RFC order and back (the permutation is its own
/// inverse).
fn swap(b: [u8; 16]) -> [u8; 16] {
    [
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
        b[14], b[15],
    ]
}

pub fn tag(receipt: PopReceipt) -> [u8; 16] {
    swap(receipt.0.to_be_bytes())
}

pub fn from_tag(tag: &[u8]) -> Option<PopReceipt> {
    let b: [u8; 16] = tag.try_into().ok()?;
    Some(PopReceipt(u128::from_be_bytes(swap(b))))
}

pub fn to_uuid(receipt: PopReceipt) -> Uuid {
    Uuid::from(receipt.0.to_be_bytes())
}

pub fn from_uuid(u: &Uuid) -> PopReceipt {
    PopReceipt(u128::from_be_bytes(*u.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_the_guid_in_dotnet_order() {
        // Python: uuid.UUID("00112233-4455-6677-8899-aabbccddeeff").bytes_le
        let r = PopReceipt(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff);
        assert_eq!(
            tag(r),
            [
                0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
        assert_eq!(from_tag(&tag(r)), Some(r));
        assert_eq!(from_uuid(&to_uuid(r)), r);
        assert_eq!(from_tag(&[1, 2, 3, 4]), None);
    }
}
