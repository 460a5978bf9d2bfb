//! The two date formats on the wire: RFC 1123 in headers and message XML, ISO 8601 with
//! 100 ns resolution in ACLs, SAS and error bodies.
//!
//! Written by hand rather than with `time`'s format descriptions because input must be
//! lenient in specific ways (three HTTP date forms, one to seven fraction digits, optional
//! parts) while output must be byte-exact.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const WEEKDAYS_LONG: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn weekday_index(w: Weekday) -> usize {
    usize::from(w.number_days_from_monday())
}

/// `Mon, 01 Jan 2024 00:00:00 GMT`. Sub-second precision is dropped, as in HTTP.
pub fn format_rfc1123(t: OffsetDateTime) -> String {
    let mut out = String::with_capacity(29);
    push_rfc1123(&mut out, t);
    out
}

/// `n` (< 100) as exactly two ASCII digits. Dates and API versions go out on every response, so
/// they are written digit by digit rather than through the formatting machinery.
pub(crate) fn two_digits(n: u8) -> [u8; 2] {
    [b'0' + n / 10 % 10, b'0' + n % 10]
}

/// Appends `n` as exactly two digits (`n` < 100).
fn push_2(out: &mut String, n: u8) {
    out.extend(two_digits(n).map(char::from));
}

/// [`format_rfc1123`] appended to `out`, with no allocation of its own.
pub fn push_rfc1123(out: &mut String, t: OffsetDateTime) {
    let t = t.to_offset(UtcOffset::UTC);
    out.push_str(WEEKDAYS[weekday_index(t.weekday())]);
    out.push_str(", ");
    push_2(out, t.day());
    out.push(' ');
    out.push_str(MONTHS[usize::from(u8::from(t.month())) - 1]);
    out.push(' ');
    match u16::try_from(t.year()) {
        Ok(y) if y <= 9999 => {
            push_2(out, (y / 100) as u8);
            push_2(out, (y % 100) as u8);
        }
        // Years outside 0..=9999 only come from hostile input; keep the general form.
        _ => {
            use std::fmt::Write as _;
            let _ = write!(out, "{:04}", t.year());
        }
    }
    out.push(' ');
    push_2(out, t.hour());
    out.push(':');
    push_2(out, t.minute());
    out.push(':');
    push_2(out, t.second());
    out.push_str(" GMT");
}

/// `2009-09-28T08:49:37.0000000Z`: always seven fraction digits (the service's 100 ns ticks),
/// truncated rather than rounded so a time never moves forward.
pub fn format_iso8601_7(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

/// `2024-01-01T00:00:00Z`: the form SDKs put in SAS `st`/`se`.
pub fn format_iso8601_seconds(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses the three HTTP date forms: RFC 1123 (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
///
/// Names are matched case-insensitively and `UTC` is accepted for `GMT`. The weekday must
/// be a real name but is not checked against the date: clients compute it, and rejecting a
/// request over a wrong weekday helps nobody. RFC 850 two-digit years 70–99 are 19xx and
/// 00–69 are 20xx, a fixed pivot so parsing does not depend on the clock.
pub fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Some((day_name, rest)) = s.split_once(',') {
        let rest = rest.trim_start();
        if is_name(day_name, &WEEKDAYS) {
            parse_rfc1123_rest(rest)
        } else if is_name(day_name, &WEEKDAYS_LONG) {
            parse_rfc850_rest(rest)
        } else {
            None
        }
    } else {
        parse_asctime(s)
    }
}

fn is_name(s: &str, names: &[&str]) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(s))
}

fn month_from_name(s: &str) -> Option<Month> {
    let idx = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(s))?;
    Month::try_from(u8::try_from(idx + 1).ok()?).ok()
}

fn is_gmt(s: &str) -> bool {
    s.eq_ignore_ascii_case("GMT") || s.eq_ignore_ascii_case("UTC")
}

/// Parses a fixed-width run of ASCII digits; `u32::from_str` would also take a sign.
fn digits(s: &str, width: usize) -> Option<u32> {
    if s.len() != width || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn hms(s: &str) -> Option<Time> {
    let mut it = s.split(':');
    let h = digits(it.next()?, 2)?;
    let m = digits(it.next()?, 2)?;
    let sec = digits(it.next()?, 2)?;
    if it.next().is_some() {
        return None;
    }
    Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(sec).ok()?,
    )
    .ok()
}

fn assemble(year: u32, month: Month, day: u32, time: Time) -> Option<OffsetDateTime> {
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// The first `N` whitespace-separated words of `s`, when it has exactly `N`.
fn words<const N: usize>(s: &str) -> Option<[&str; N]> {
    let mut it = s.split_ascii_whitespace();
    let mut out = [""; N];
    for w in &mut out {
        *w = it.next()?;
    }
    if it.next().is_some() {
        return None;
    }
    Some(out)
}

// "06 Nov 1994 08:49:37 GMT"
fn parse_rfc1123_rest(rest: &str) -> Option<OffsetDateTime> {
    let [day, month, year, time, zone] = words(rest)?;
    if !is_gmt(zone) {
        return None;
    }
    // Some clients send a one-digit day; the RFC says two, being strict helps nobody.
    let day = digits(day, 2).or_else(|| digits(day, 1))?;
    assemble(digits(year, 4)?, month_from_name(month)?, day, hms(time)?)
}

// "06-Nov-94 08:49:37 GMT"
fn parse_rfc850_rest(rest: &str) -> Option<OffsetDateTime> {
    let [date, time, zone] = words(rest)?;
    if !is_gmt(zone) {
        return None;
    }
    let mut d = date.split('-');
    let day = digits(d.next()?, 2)?;
    let month = month_from_name(d.next()?)?;
    let yy = digits(d.next()?, 2)?;
    if d.next().is_some() {
        return None;
    }
    let year = if yy >= 70 { 1900 + yy } else { 2000 + yy };
    assemble(year, month, day, hms(time)?)
}

// "Sun Nov  6 08:49:37 1994"
fn parse_asctime(s: &str) -> Option<OffsetDateTime> {
    let [day_name, month, day, time, year] = words(s)?;
    if !is_name(day_name, &WEEKDAYS) {
        return None;
    }
    let day = digits(day, 1).or_else(|| digits(day, 2))?;
    assemble(digits(year, 4)?, month_from_name(month)?, day, hms(time)?)
}

/// Parses the ISO 8601 subset the service accepts in ACLs and SAS: `YYYY-MM-DD`,
/// `YYYY-MM-DDThh:mmTZD`, `YYYY-MM-DDThh:mm:ssTZD` and `YYYY-MM-DDThh:mm:ss.fTZD` with one
/// to seven fraction digits, where TZD is `Z` or `±hh:mm`. The result is in UTC.
pub fn parse_iso8601(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(s.get(0..4)?, 4)?;
    let month = Month::try_from(u8::try_from(digits(s.get(5..7)?, 2)?).ok()?).ok()?;
    let day = digits(s.get(8..10)?, 2)?;
    if b.len() == 10 {
        return assemble(year, month, day, Time::MIDNIGHT);
    }
    let rest = s.get(10..)?.strip_prefix('T')?;

    // Split off the zone designator first; what is left is the clock time.
    let (clock, offset) = if let Some(clock) = rest.strip_suffix('Z') {
        (clock, UtcOffset::UTC)
    } else {
        let sign_at = rest.len().checked_sub(6)?;
        let (clock, zone) = (rest.get(..sign_at)?, rest.get(sign_at..)?);
        let sign: i8 = match zone.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        if zone.as_bytes()[3] != b':' {
            return None;
        }
        // `time` allows offsets up to ±25:59; ISO 8601 zone hours stop at 23.
        let oh = i8::try_from(digits(zone.get(1..3)?, 2)?)
            .ok()
            .filter(|h| *h <= 23)?;
        let om = i8::try_from(digits(zone.get(4..6)?, 2)?)
            .ok()
            .filter(|m| *m <= 59)?;
        (clock, UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?)
    };

    let (hm_s, fraction) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (clock, None),
    };
    let fields: Vec<&str> = hm_s.split(':').collect();
    let (h, m, sec) = match fields.as_slice() {
        [h, m] if fraction.is_none() => (digits(h, 2)?, digits(m, 2)?, 0),
        [h, m, sec] => (digits(h, 2)?, digits(m, 2)?, digits(sec, 2)?),
        _ => return None,
    };
    let nanos = match fraction {
        None => 0,
        Some(f) if (1..=7).contains(&f.len()) => {
            let v = digits(f, f.len())?;
            let scale = 10u32.pow(9 - u32::try_from(f.len()).ok()?);
            v * scale
        }
        Some(_) => return None,
    };
    let time = Time::from_hms_nano(
        u8::try_from(h).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(sec).ok()?,
        nanos,
    )
    .ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .to_offset(UtcOffset::UTC),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_rfc1123() {
        assert_eq!(
            format_rfc1123(datetime!(2024-01-01 00:00:00 UTC)),
            "Mon, 01 Jan 2024 00:00:00 GMT"
        );
        assert_eq!(
            format_rfc1123(datetime!(2009-10-09 21:04:30.999 UTC)),
            "Fri, 09 Oct 2009 21:04:30 GMT"
        );
        assert_eq!(
            format_rfc1123(datetime!(9999-12-31 23:59:59 UTC)),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        // Converted to GMT, not printed in the local offset.
        assert_eq!(
            format_rfc1123(datetime!(2024-01-01 01:30:00 +02:00)),
            "Sun, 31 Dec 2023 23:30:00 GMT"
        );
    }

    #[test]
    fn rfc1123_matches_the_format_macro_for_any_year() {
        for year in [-9999, -1, 0, 5, 99, 999, 1000, 1969, 2024, 9999] {
            for (month, day, h, m, sec) in [(1, 1, 0, 0, 0), (12, 31, 23, 59, 59), (2, 9, 7, 5, 3)]
            {
                let date =
                    Date::from_calendar_date(year, Month::try_from(month).expect("month"), day)
                        .expect("date");
                let t = PrimitiveDateTime::new(date, Time::from_hms(h, m, sec).expect("time"))
                    .assume_utc();
                let want = format!(
                    "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
                    WEEKDAYS[weekday_index(t.weekday())],
                    t.day(),
                    MONTHS[usize::from(u8::from(t.month())) - 1],
                    t.year(),
                    t.hour(),
                    t.minute(),
                    t.second()
                );
                assert_eq!(format_rfc1123(t), want);
            }
        }
    }

    #[test]
    fn formats_iso8601_7() {
        assert_eq!(
            format_iso8601_7(datetime!(2009-09-28 08:49:37 UTC)),
            "2009-09-28T08:49:37.0000000Z"
        );
        assert_eq!(
            format_iso8601_7(datetime!(2024-01-01 00:00:00.123456789 UTC)),
            "2024-01-01T00:00:00.1234567Z"
        );
        assert_eq!(
            format_iso8601_7(datetime!(2024-01-01 00:00:00.0000001 -01:00)),
            "2024-01-01T01:00:00.0000001Z"
        );
        assert_eq!(
            format_iso8601_seconds(datetime!(2030-01-01 00:00:00.9 UTC)),
            "2030-01-01T00:00:00Z"
        );
    }

    #[test]
    fn parses_http_dates() {
        let want = datetime!(1994-11-06 08:49:37 UTC);
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "sun, 06 nov 1994 08:49:37 gmt",
            " Sun, 06 Nov 1994 08:49:37 GMT ",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun Nov 06 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(s), Some(want), "{s:?}");
        }
        assert_eq!(
            parse_http_date("Monday, 01-Jan-24 00:00:00 GMT"),
            Some(datetime!(2024-01-01 00:00:00 UTC))
        );
        assert_eq!(
            parse_http_date("Mon, 01 Jan 2024 00:00:00 GMT"),
            Some(datetime!(2024-01-01 00:00:00 UTC))
        );
    }

    #[test]
    fn rejects_bad_http_dates() {
        for s in [
            "",
            "Mon, 01 Jan 2024 00:00:00",
            "Mon, 01 Jan 2024 00:00:00 PST",
            "Mon, 01 Jan 2024 00:00:00 +0000",
            "Mon, 32 Jan 2024 00:00:00 GMT",
            "Mon, 30 Feb 2024 00:00:00 GMT",
            "Mon, 01 Foo 2024 00:00:00 GMT",
            "Mon, 01 Jan 24 00:00:00 GMT",
            "Mon, 01 Jan 2024 24:00:00 GMT",
            "Mon, 01 Jan 2024 00:60:00 GMT",
            "Mon, 01 Jan 2024 0:00:00 GMT",
            "Xyz, 01 Jan 2024 00:00:00 GMT",
            "Monday, 01-Jan-2024 00:00:00 GMT",
            "Mon Jan 1 00:00:00",
            "2024-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_http_date(s), None, "{s:?}");
        }
    }

    #[test]
    fn round_trips_rfc1123() {
        let t = datetime!(2016-10-09 21:04:30 UTC);
        assert_eq!(parse_http_date(&format_rfc1123(t)), Some(t));
    }

    #[test]
    fn parses_iso8601_forms() {
        let cases = [
            ("2009-09-28", datetime!(2009-09-28 00:00:00 UTC)),
            ("2009-09-28T08:49Z", datetime!(2009-09-28 08:49:00 UTC)),
            ("2009-09-28T08:49:37Z", datetime!(2009-09-28 08:49:37 UTC)),
            (
                "2009-09-28T08:49:37.0000000Z",
                datetime!(2009-09-28 08:49:37 UTC),
            ),
            (
                "2009-09-28T08:49:37.1Z",
                datetime!(2009-09-28 08:49:37.1 UTC),
            ),
            (
                "2009-09-28T08:49:37.1234567Z",
                datetime!(2009-09-28 08:49:37.1234567 UTC),
            ),
            (
                "2009-09-28T08:49:37+02:00",
                datetime!(2009-09-28 06:49:37 UTC),
            ),
            ("2009-09-28T08:49-01:30", datetime!(2009-09-28 10:19:00 UTC)),
            (
                "2009-09-28T00:10:00.5+01:00",
                datetime!(2009-09-27 23:10:00.5 UTC),
            ),
        ];
        for (s, want) in cases {
            let got = parse_iso8601(s);
            assert_eq!(got, Some(want), "{s}");
            assert_eq!(got.map(|t| t.offset()), Some(UtcOffset::UTC), "{s}");
        }
    }

    #[test]
    fn rejects_bad_iso8601() {
        for s in [
            "",
            "2009-9-28",
            "2009-09-28T",
            "2009-09-28T08:49:37",
            "2009-09-28T08:49",
            "2009-09-28 08:49:37Z",
            "2009-09-28T08:49:37.Z",
            "2009-09-28T08:49:37.12345678Z",
            "2009-09-28T08:49.5Z",
            "2009-09-28T8:49:37Z",
            "2009-09-28T08:49:37z",
            "2009-09-28T08:49:37+0200",
            "2009-09-28T08:49:37+02",
            "2009-13-28T08:49:37Z",
            "2009-02-29T08:49:37Z",
            "2009-09-28T24:00:00Z",
            "2009-09-28T08:49:37+25:00",
            "2009-09-28T08:49:37+24:00",
            "2009-09-28T08:49:37+01:60",
            "2009-09-28T08:49:37.-1Z",
            "+009-09-28",
            "2009-09-28Z",
            "2009-09-28T08:4é:00Z",
            "2009-09-2é",
            "2009-09-28T08:49:00+0é:00",
        ] {
            assert_eq!(parse_iso8601(s), None, "{s:?}");
        }
    }

    #[test]
    fn parsers_never_panic_on_prefixes() {
        for s in [
            "2009-09-28T08:49:37.1234567+02:00",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Mon, 01 Jan 2024 00:00:00 GMT",
            "2é09-0é-2éT0é:4é:3é.1é+0é:0é",
        ] {
            for (i, _) in s.char_indices() {
                let _ = parse_iso8601(&s[..i]);
                let _ = parse_http_date(&s[..i]);
                let _ = parse_iso8601(&s[i..]);
                let _ = parse_http_date(&s[i..]);
            }
        }
    }

    #[test]
    fn round_trips_iso8601_7() {
        let t = datetime!(2024-02-29 23:59:59.9999999 UTC);
        assert_eq!(parse_iso8601(&format_iso8601_7(t)), Some(t));
    }
}
