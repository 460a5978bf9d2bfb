//! Name rules for queues and metadata keys.
//!
//! The front checks names on every queue-level route; keeping the rules here lets the client
//! reject a bad name before sending it, with the same verdict the server would give.

/// Why a queue name was refused; each maps to a different error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueNameError {
    /// Fewer than 3 or more than 63 characters: `OutOfRangeInput`.
    #[error("queue name must be 3 to 63 characters long")]
    OutOfRange,
    /// Characters other than `a-z`, `0-9` and `-`, a leading or trailing `-`, or `--`:
    /// `InvalidResourceName`.
    #[error("queue name may only contain lowercase letters, digits and single inner hyphens")]
    Invalid,
}

impl QueueNameError {
    pub fn code(self) -> crate::error::ErrorCode {
        match self {
            Self::OutOfRange => crate::error::ErrorCode::OutOfRangeInput,
            Self::Invalid => crate::error::ErrorCode::InvalidResourceName,
        }
    }
}

pub const MIN_QUEUE_NAME_LEN: usize = 3;
pub const MAX_QUEUE_NAME_LEN: usize = 63;

/// Total size of a queue's metadata, names plus values, in bytes. The queue limit is not
/// documented; this is the blob/container limit.
pub const MAX_METADATA_BYTES: usize = 8192;

/// Checks a queue name (a DNS label).
///
/// Length is checked first, as the service does: "AB" is `OutOfRange`, not `Invalid`, even
/// though it is also uppercase. The length counts characters, so a long non-ASCII name is
/// reported as `Invalid` rather than for its byte length.
pub fn validate_queue_name(name: &str) -> Result<(), QueueNameError> {
    let len = name.chars().count();
    if !(MIN_QUEUE_NAME_LEN..=MAX_QUEUE_NAME_LEN).contains(&len) {
        return Err(QueueNameError::OutOfRange);
    }
    let b = name.as_bytes();
    let allowed = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !b.iter().all(allowed) || !edge_ok(b[0]) || !edge_ok(b[b.len() - 1]) || name.contains("--") {
        return Err(QueueNameError::Invalid);
    }
    Ok(())
}

/// Whether `name` is usable as a metadata key: an ASCII C# identifier.
pub fn is_valid_metadata_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(c) if c.is_ascii_alphabetic() || c == b'_' => {}
        _ => return false,
    }
    bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The size counted against [`MAX_METADATA_BYTES`]: UTF-8 bytes of every name and value.
pub fn metadata_size<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
    pairs.into_iter().map(|(k, v)| k.len() + v.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_queue_names() {
        for ok in ["abc", "a-b", "q1a", "123", "my-queue-2", &"a".repeat(63)] {
            assert_eq!(validate_queue_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn bad_lengths_are_out_of_range() {
        for bad in ["", "a", "ab", "AB", "--", &"a".repeat(64), &"A".repeat(64)] {
            assert_eq!(
                validate_queue_name(bad),
                Err(QueueNameError::OutOfRange),
                "{bad}"
            );
        }
        assert_eq!(
            QueueNameError::OutOfRange.code().as_str(),
            "OutOfRangeInput"
        );
    }

    #[test]
    fn bad_characters_are_invalid() {
        for bad in [
            "ABC", "Abc", "a_b", "-ab", "ab-", "a--b", "a b", "a.b", "ééé", "abc\n", "a/b",
        ] {
            assert_eq!(
                validate_queue_name(bad),
                Err(QueueNameError::Invalid),
                "{bad}"
            );
        }
        assert_eq!(
            QueueNameError::Invalid.code().as_str(),
            "InvalidResourceName"
        );
    }

    #[test]
    fn metadata_names() {
        for ok in ["a", "A", "_", "_x1", "Color", "K_2", "abc123"] {
            assert!(is_valid_metadata_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a b", "é", "a.b", "a$"] {
            assert!(!is_valid_metadata_name(bad), "{bad}");
        }
    }

    #[test]
    fn metadata_size_counts_bytes() {
        assert_eq!(metadata_size([("ab", "cé"), ("x", "")]), 2 + 3 + 1);
    }
}
