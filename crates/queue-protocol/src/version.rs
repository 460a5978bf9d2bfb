//! The `x-ms-version` value: a calendar date that selects wire behaviour.
//!
//! Versions are compared, never matched exactly: the server accepts any well-formed date
//! (including future ones) and gates each behaviour on "at least version X". The named
//! constants are the versions at which a queue-visible behaviour changed.

use std::fmt;
use std::str::FromStr;

use crate::datetime::two_digits;

/// An Azure Storage REST API version, ordered by date.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    // Field order matters: the derived Ord compares year, then month, then day.
    year: u16,
    month: u8,
    day: u8,
}

/// Why a string is not a version: anything but a real `YYYY-MM-DD` date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid API version {0:?}: expected a YYYY-MM-DD calendar date")]
pub struct ParseVersionError(pub String);

impl ApiVersion {
    /// Oldest version with the current Shared Key string-to-sign.
    pub const V2009_09_19: Self = Self::new(2009, 9, 19);
    /// Update Message, 64 KiB messages, visibility timeout on Put.
    pub const V2011_08_18: Self = Self::new(2011, 8, 18);
    /// Queue SAS and stored access policies.
    pub const V2012_02_12: Self = Self::new(2012, 2, 12);
    /// CORS, Hour/MinuteMetrics, `ServiceEndpoint` in List Queues.
    pub const V2013_08_15: Self = Self::new(2013, 8, 15);
    /// Last version whose Shared Key signs a zero Content-Length as `0`.
    pub const V2014_02_14: Self = Self::new(2014, 2, 14);
    /// Zero Content-Length signs as empty; service SAS resource gets `/queue`.
    pub const V2015_02_21: Self = Self::new(2015, 2, 21);
    /// Account SAS; `sip`/`spr` in the service SAS string-to-sign.
    pub const V2015_04_05: Self = Self::new(2015, 4, 5);
    /// Put Message returns a body; empty `x-ms-*` headers are signed.
    pub const V2016_05_31: Self = Self::new(2016, 5, 31);
    /// `x-ms-error-code` header; unlimited message TTL.
    pub const V2017_07_29: Self = Self::new(2017, 7, 29);
    /// OAuth bearer tokens.
    pub const V2017_11_09: Self = Self::new(2017, 11, 9);
    /// Account SAS string-to-sign gains the encryption scope line.
    pub const V2020_12_06: Self = Self::new(2020, 12, 6);

    /// Builds a version without checking the date; use [`FromStr`] for untrusted input.
    pub const fn new(year: u16, month: u8, day: u8) -> Self {
        Self { year, month, day }
    }

    pub const fn year(self) -> u16 {
        self.year
    }

    pub const fn month(self) -> u8 {
        self.month
    }

    pub const fn day(self) -> u8 {
        self.day
    }

    /// Whether some Azure client or service release is known to use this version.
    /// Unknown versions are still accepted; this is for diagnostics.
    pub fn is_known(self) -> bool {
        KNOWN_VERSIONS.contains(&self)
    }
}

/// Every version seen in Azurite's and the Python SDK's lists, oldest first.
pub const KNOWN_VERSIONS: &[ApiVersion] = &[
    ApiVersion::new(2009, 4, 14),
    ApiVersion::new(2009, 7, 17),
    ApiVersion::V2009_09_19,
    ApiVersion::V2011_08_18,
    ApiVersion::V2012_02_12,
    ApiVersion::V2013_08_15,
    ApiVersion::V2014_02_14,
    ApiVersion::V2015_02_21,
    ApiVersion::V2015_04_05,
    ApiVersion::new(2015, 7, 8),
    ApiVersion::new(2015, 12, 11),
    ApiVersion::V2016_05_31,
    ApiVersion::new(2017, 4, 17),
    ApiVersion::V2017_07_29,
    ApiVersion::V2017_11_09,
    ApiVersion::new(2018, 3, 28),
    ApiVersion::new(2018, 11, 9),
    ApiVersion::new(2019, 2, 2),
    ApiVersion::new(2019, 7, 7),
    ApiVersion::new(2019, 10, 10),
    ApiVersion::new(2019, 12, 12),
    ApiVersion::new(2020, 2, 10),
    ApiVersion::new(2020, 4, 8),
    ApiVersion::new(2020, 6, 12),
    ApiVersion::new(2020, 8, 4),
    ApiVersion::new(2020, 10, 2),
    ApiVersion::V2020_12_06,
    ApiVersion::new(2021, 2, 12),
    ApiVersion::new(2021, 4, 10),
    ApiVersion::new(2021, 6, 8),
    ApiVersion::new(2021, 8, 6),
    ApiVersion::new(2021, 10, 4),
    ApiVersion::new(2021, 12, 2),
    ApiVersion::new(2022, 11, 2),
    ApiVersion::new(2023, 1, 3),
    ApiVersion::new(2023, 5, 3),
    ApiVersion::new(2023, 8, 3),
    ApiVersion::new(2023, 11, 3),
    ApiVersion::new(2024, 2, 4),
    ApiVersion::new(2024, 5, 4),
    ApiVersion::new(2024, 8, 4),
    ApiVersion::new(2024, 11, 4),
    ApiVersion::new(2025, 1, 5),
    ApiVersion::new(2025, 5, 5),
    ApiVersion::new(2025, 7, 5),
    ApiVersion::new(2025, 11, 5),
    ApiVersion::new(2026, 2, 6),
    ApiVersion::new(2026, 4, 6),
    ApiVersion::new(2026, 6, 6),
    LATEST_KNOWN,
];

/// The newest version any supported client sends (Python `azure-storage-queue` 12.18.1).
pub const LATEST_KNOWN: ApiVersion = ApiVersion::new(2026, 10, 6);

impl FromStr for ApiVersion {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseVersionError(s.to_owned());
        let b = s.as_bytes();
        // Exact shape first: `u16::from_str` alone would accept "+024" or "2024-1-1".
        let shape_ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape_ok {
            return Err(err());
        }
        let year: u16 = s[0..4].parse().map_err(|_| err())?;
        let month: u8 = s[5..7].parse().map_err(|_| err())?;
        let day: u8 = s[8..10].parse().map_err(|_| err())?;
        let month_t = time::Month::try_from(month).map_err(|_| err())?;
        time::Date::from_calendar_date(i32::from(year), month_t, day).map_err(|_| err())?;
        Ok(Self::new(year, month, day))
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every response carries one, so skip the formatting machinery for the usual shape.
        if self.year > 9999 || self.month > 99 || self.day > 99 {
            return write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day);
        }
        let [y1, y2] = two_digits((self.year / 100) as u8);
        let [y3, y4] = two_digits((self.year % 100) as u8);
        let [m1, m2] = two_digits(self.month);
        let [d1, d2] = two_digits(self.day);
        let text = [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2];
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_the_format_macro() {
        for v in [
            ApiVersion::new(2009, 9, 19),
            ApiVersion::new(2026, 10, 6),
            ApiVersion::new(0, 0, 0),
            ApiVersion::new(999, 1, 2),
            ApiVersion::new(9999, 99, 99),
            ApiVersion::new(10000, 1, 1),
            ApiVersion::new(2024, 100, 255),
        ] {
            let want = format!("{:04}-{:02}-{:02}", v.year(), v.month(), v.day());
            assert_eq!(v.to_string(), want);
        }
    }

    #[test]
    fn parses_and_displays() {
        let v: ApiVersion = "2026-10-06".parse().unwrap();
        assert_eq!(v, LATEST_KNOWN);
        assert_eq!(v.to_string(), "2026-10-06");
        assert_eq!(ApiVersion::V2009_09_19.to_string(), "2009-09-19");
    }

    #[test]
    fn accepts_future_and_leap_dates() {
        let v: ApiVersion = "2099-01-01".parse().unwrap();
        assert_eq!(v, ApiVersion::new(2099, 1, 1));
        assert!(!v.is_known());
        assert!(v > LATEST_KNOWN);
        assert!("2024-02-29".parse::<ApiVersion>().is_ok());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2024-13-01",
            "2024-1-1",
            "2024-02-30",
            "2023-02-29",
            "2024-00-10",
            "2024-01-00",
            "20240101",
            "2024/01/01",
            " 2024-01-01",
            "2024-01-01 ",
            "+024-01-01",
            "2024-01-1a",
            "２０２４-01-01",
        ] {
            assert_eq!(
                bad.parse::<ApiVersion>(),
                Err(ParseVersionError(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ordering_is_by_date() {
        assert!(ApiVersion::V2014_02_14 < ApiVersion::V2015_02_21);
        assert!(ApiVersion::new(2015, 12, 11) < ApiVersion::V2016_05_31);
        assert!(ApiVersion::new(2016, 5, 30) < ApiVersion::new(2016, 5, 31));
    }

    #[test]
    fn known_list_is_sorted_and_complete() {
        assert_eq!(KNOWN_VERSIONS.len(), 50);
        assert!(KNOWN_VERSIONS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(KNOWN_VERSIONS.first(), Some(&ApiVersion::new(2009, 4, 14)));
        assert_eq!(KNOWN_VERSIONS.last(), Some(&LATEST_KNOWN));
        assert!(ApiVersion::V2017_11_09.is_known());
        assert!(ApiVersion::new(2018, 3, 28).is_known());
        assert!(!ApiVersion::new(2018, 3, 29).is_known());
    }
}
