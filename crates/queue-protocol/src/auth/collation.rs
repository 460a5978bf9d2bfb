//! The header ordering the service uses for Shared Key canonicalized headers.
//!
//! The service sorts `x-ms-*` names with .NET's en-US culture comparison, not ordinally:
//! `-` and `'` are ignored until a final tie-break and `_` sorts before digits, so
//! `x-ms-meta-a_b` comes before `x-ms-meta-a1`. The Python and JS SDKs imitate it with
//! weight tables over three levels (base character, case, then the ignored punctuation);
//! this is a port of that comparator, so we sort exactly as the clients that sign do.

use std::cmp::Ordering;

/// Weight of "past the end of the string"; lower than every real weight.
const END: u32 = 0x1;
const LEVELS: usize = 3;

/// Primary weights of `A`..`Z` (and `a`..`z`: case is a later level).
const LETTERS: [u32; 26] = [
    0xe02, 0xe09, 0xe0a, 0xe1a, 0xe21, 0xe23, 0xe25, 0xe2c, 0xe32, 0xe35, 0xe36, 0xe48, 0xe51,
    0xe70, 0xe7c, 0xe7e, 0xe89, 0xe8a, 0xe91, 0xe99, 0xe9f, 0xea2, 0xea4, 0xea6, 0xea7, 0xea9,
];

/// Weight of `c` at `level`; 0 means "ignored at this level".
///
/// Non-ASCII characters are outside the SDK tables (Python raises, JS reads `undefined`).
/// Header names are ASCII tokens, so this only needs to be total: they sort after all ASCII
/// by code point.
fn weight(level: usize, c: char) -> u32 {
    match level {
        0 => match c {
            '!' => 0x71c,
            '#' => 0x71f,
            '$' => 0x721,
            '%' => 0x723,
            '&' => 0x725,
            '*' => 0x72d,
            '+' => 0x803,
            '.' => 0x733,
            '^' => 0x743,
            '_' => 0x744,
            '`' => 0x748,
            '|' => 0x74c,
            '~' => 0x750,
            '0' => 0xd03,
            '1'..='9' => 0xd1a + 2 * (c as u32 - '1' as u32),
            'A'..='Z' => LETTERS[(c as u8 - b'A') as usize],
            'a'..='z' => LETTERS[(c as u8 - b'a') as usize],
            c if !c.is_ascii() => 0x10000 + c as u32,
            _ => 0,
        },
        1 => match c {
            'A'..='Z' => 0x12,
            _ => 0,
        },
        _ => match c {
            '\'' => 0x8012,
            '-' => 0x8212,
            _ => 0,
        },
    }
}

/// Compares two (lowercased) header names the way the service does.
pub fn compare(lhs: &str, rhs: &str) -> Ordering {
    // Header names are ASCII tokens: compare their bytes without collecting characters.
    if lhs.is_ascii() && rhs.is_ascii() {
        return compare_units(lhs.as_bytes(), rhs.as_bytes());
    }
    let l: Vec<char> = lhs.chars().collect();
    let r: Vec<char> = rhs.chars().collect();
    compare_units(&l, &r)
}

/// The comparison over character sequences (bytes of ASCII text, or chars).
fn compare_units<T: Copy + Into<char>>(l: &[T], r: &[T]) -> Ordering {
    let (mut level, mut i, mut j) = (0, 0, 0);
    while level < LEVELS {
        // At the last level the first position where one side skips decides: the side
        // that skipped further (had an ignorable character where the other had punctuation)
        // sorts first.
        if level == LEVELS - 1 && i != j {
            return if i > j {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let w1 = l.get(i).map_or(END, |&c| weight(level, c.into()));
        let w2 = r.get(j).map_or(END, |&c| weight(level, c.into()));
        if w1 == END && w2 == END {
            level += 1;
            i = 0;
            j = 0;
        } else if w1 == w2 {
            i += 1;
            j += 1;
        } else if w1 == 0 {
            i += 1;
        } else if w2 == 0 {
            j += 1;
        } else {
            return w1.cmp(&w2);
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort_by(|a, b| compare(a, b));
        v
    }

    #[test]
    fn underscore_before_digit() {
        assert_eq!(compare("x-ms-meta-a_b", "x-ms-meta-a1"), Ordering::Less);
        assert_eq!(compare("x-ms-meta-a1", "x-ms-meta-a_b"), Ordering::Greater);
        // Ordinal order is the reverse, which is the whole point.
        assert!("x-ms-meta-a1" < "x-ms-meta-a_b");
    }

    #[test]
    fn test_vector_two_order() {
        assert_eq!(
            sorted(&[
                "x-ms-version",
                "x-ms-meta-color",
                "x-ms-meta-a1",
                "x-ms-date",
                "x-ms-meta-a_b",
                "x-ms-client-request-id",
            ]),
            [
                "x-ms-client-request-id",
                "x-ms-date",
                "x-ms-meta-a_b",
                "x-ms-meta-a1",
                "x-ms-meta-color",
                "x-ms-version",
            ]
        );
    }

    #[test]
    fn hyphen_is_ignored_at_first_level() {
        // Ordinally '-' < 'b', but the collation compares "az" with "ab".
        assert_eq!(compare("x-ms-meta-a-z", "x-ms-meta-ab"), Ordering::Greater);
        assert!("x-ms-meta-a-z" < "x-ms-meta-ab");
        // When the letters tie, the hyphen decides last: without it sorts first.
        assert_eq!(compare("x-ms-meta-ab", "x-ms-meta-a-b"), Ordering::Less);
        assert_eq!(compare("x-ms-meta-a-b", "x-ms-meta-ab"), Ordering::Greater);
        assert_eq!(compare("x-msa", "x-ms-a"), Ordering::Less);
        assert_eq!(compare("x-ms-meta-a'b", "x-ms-meta-a-b"), Ordering::Less);
    }

    #[test]
    fn basic_orders() {
        assert_eq!(compare("x-ms-meta-a", "x-ms-meta-a"), Ordering::Equal);
        assert_eq!(compare("x-ms-meta-a", "x-ms-meta-a1"), Ordering::Less);
        assert_eq!(compare("x-ms-meta-a9", "x-ms-meta-aa"), Ordering::Less);
        assert_eq!(compare("x-ms-meta-0", "x-ms-meta-1"), Ordering::Less);
        assert_eq!(compare("x-ms-meta-_", "x-ms-meta-0"), Ordering::Less);
        assert_eq!(compare("x-ms-meta-~", "x-ms-meta-0"), Ordering::Less);
        assert_eq!(compare("x-ms-meta-z", "x-ms-meta-é"), Ordering::Less);
        // Case is a second-level difference: equal letters, then lowercase first.
        assert_eq!(compare("x-ms-a", "x-ms-A"), Ordering::Less);
        assert_eq!(compare("x-ms-A", "x-ms-b"), Ordering::Less);
        assert_eq!(compare("x-ms", "x-ms-"), Ordering::Less);
    }

    #[test]
    fn sort_is_consistent_on_many_names() {
        // A total order: sorting never panics and is idempotent and antisymmetric.
        let names = [
            "x-ms-meta-a",
            "x-ms-meta-a-",
            "x-ms-meta--a",
            "x-ms-meta-a_",
            "x-ms-meta-a1",
            "x-ms-meta-a'",
            "x-ms-meta-'a",
            "x-ms-meta",
            "x-ms-meta-A",
            "x-ms-meta-_1",
            "x-ms-meta-1_",
            "x-ms-date",
            "x-ms-version",
            "x-ms-meta-ab",
            "x-ms-meta-a-b",
            "x-ms-meta-a--b",
            "x-ms-meta-ab-",
            "x-ms-meta-é",
            "x-ms-meta-.",
            "x-ms-meta-+",
        ];
        for a in names {
            for b in names {
                assert_eq!(compare(a, b), compare(b, a).reverse(), "{a} {b}");
                for c in names {
                    if compare(a, b).is_le() && compare(b, c).is_le() {
                        assert!(compare(a, c).is_le(), "{a} {b} {c}");
                    }
                }
            }
        }
        let once = sorted(&names);
        let refs: Vec<&str> = once.iter().map(String::as_str).collect();
        assert_eq!(sorted(&refs), once);
    }

    proptest::proptest! {
        /// The byte path taken for ASCII names sorts exactly as the comparison over
        /// characters, the algorithm as first ported.
        #[test]
        fn ascii_path_matches_the_char_path(
            a in "[a-zA-Z0-9_'.!~-]{0,8}",
            b in "[a-zA-Z0-9_'.!~-]{0,8}",
        ) {
            let chars = |s: &str| s.chars().collect::<Vec<char>>();
            proptest::prop_assert_eq!(compare(&a, &b), compare_units(&chars(&a), &chars(&b)));
        }
    }
}
