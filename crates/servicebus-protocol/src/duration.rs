//! TimeSpans on the wire. Descriptions carry them as XML Schema durations, the form .NET's
//! `XmlConvert.ToString(TimeSpan)` writes (`PT1M`, `P14D`, `P10675199DT2H48M5.4775807S`), but
//! older clients (the `azure-servicebus` 0.50 control client) send `TimeSpan.ToString()`'s
//! `[-][d.]hh:mm:ss[.fffffff]`, so both are read. Arithmetic is in 100 ns ticks, the
//! TimeSpan's unit, so `TimeSpan.MaxValue` (which means "never") round-trips exactly.

use std::time::Duration;

/// `TimeSpan.MaxValue`: 10675199 days, 2:48:05.4775807. Azure's default TTL and idle delete.
pub const TIMESPAN_MAX: Duration = Duration::new(922_337_203_685, 477_580_700);

const TICKS_PER_SECOND: u128 = 10_000_000;

fn ticks(d: Duration) -> u128 {
    d.as_nanos() / 100
}

fn from_ticks(t: u128) -> Option<Duration> {
    let secs = u64::try_from(t / TICKS_PER_SECOND).ok()?;
    let nanos = u32::try_from((t % TICKS_PER_SECOND) * 100).ok()?;
    Some(Duration::new(secs, nanos))
}

/// Reads either form; `None` for anything else, a negative span, or one beyond
/// `TimeSpan.MaxValue`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let t = if s.starts_with('P') {
        iso8601(s)?
    } else {
        timespan(s)?
    };
    (t <= ticks(TIMESPAN_MAX)).then(|| from_ticks(t)).flatten()
}

/// Whole units before a designator, and for seconds up to seven fraction digits (ticks).
fn number(s: &str, fraction: bool) -> Option<u128> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) if fraction => (w, f),
        Some(_) => return None,
        None => (s, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || whole.len() > 20 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (s.contains('.') && frac.is_empty()) {
        return None;
    }
    let mut digits: String = frac.chars().take(7).collect();
    while digits.len() < 7 {
        digits.push('0');
    }
    let whole: u128 = whole.parse().ok()?;
    let frac: u128 = if fraction { digits.parse().ok()? } else { 0 };
    Some(whole * TICKS_PER_SECOND + frac)
}

/// `P[nD][T[nH][nM][n[.f]S]]` in ticks.
fn iso8601(s: &str) -> Option<u128> {
    let rest = s.strip_prefix('P').filter(|r| !r.is_empty())?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total: u128 = 0;
    if !days.is_empty() {
        total += number(days.strip_suffix('D')?, false)? * 86_400;
    }
    if let Some(mut t) = time {
        if t.is_empty() {
            return None;
        }
        for (unit, secs) in [('H', 3600), ('M', 60), ('S', 1)] {
            if let Some(i) = t.find(unit) {
                total = total.checked_add(number(&t[..i], unit == 'S')?.checked_mul(secs)?)?;
                t = &t[i + 1..];
            }
        }
        if !t.is_empty() {
            return None;
        }
    }
    Some(total)
}

/// `[d.]hh:mm:ss[.fffffff]` in ticks (no sign: negative spans mean nothing here).
fn timespan(s: &str) -> Option<u128> {
    let mut parts = s.split(':');
    let (first, minutes, seconds) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let unit = |s: &str| number(s, false).map(|t| t / TICKS_PER_SECOND);
    let (days, hours) = match first.split_once('.') {
        Some((d, h)) => (unit(d)?, unit(h)?),
        None => (0, unit(first)?),
    };
    let minutes = unit(minutes)?;
    let seconds = number(seconds, true)?;
    if hours > 23 || minutes > 59 || seconds >= 60 * TICKS_PER_SECOND {
        return None;
    }
    let whole = days.checked_mul(24)?.checked_add(hours)? * 60 + minutes;
    whole
        .checked_mul(60 * TICKS_PER_SECOND)?
        .checked_add(seconds)
}

/// The XML Schema form .NET writes: zero parts left out, `PT0S` for zero.
pub fn format_duration(d: Duration) -> String {
    let t = ticks(d.min(TIMESPAN_MAX));
    let secs_total = t / TICKS_PER_SECOND;
    let frac = t % TICKS_PER_SECOND;
    let (days, hours, minutes, secs) = (
        secs_total / 86_400,
        secs_total / 3600 % 24,
        secs_total / 60 % 60,
        secs_total % 60,
    );
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if hours > 0 || minutes > 0 || secs > 0 || frac > 0 || days == 0 {
        out.push('T');
        if hours > 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes > 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if secs > 0 || frac > 0 || (hours == 0 && minutes == 0) {
            out.push_str(&secs.to_string());
            if frac > 0 {
                let f = format!("{frac:07}");
                out.push('.');
                out.push_str(f.trim_end_matches('0'));
            }
            out.push('S');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn both_forms_read() {
        assert_eq!(parse_duration("PT1M"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("PT1H30M5S"), Some(Duration::from_secs(5405)));
        assert_eq!(parse_duration("P1DT2H"), Some(Duration::from_secs(93_600)));
        assert_eq!(parse_duration("PT0.5S"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_duration("P10675199DT2H48M5.4775807S"),
            Some(TIMESPAN_MAX)
        );
        // The 0.50 control client's form.
        assert_eq!(parse_duration("0:01:00"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("00:00:30"), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_duration("1.02:03:04.5"),
            Some(Duration::new(93_784, 500_000_000))
        );
        assert_eq!(
            parse_duration("10675199.02:48:05.4775807"),
            Some(TIMESPAN_MAX)
        );
        for bad in [
            "",
            "P",
            "PT",
            "1M",
            "PT1X",
            "PT-1S",
            "P1.5D",
            "PT1.S",
            "-0:01:00",
            "0:60:00",
            "24:00:00",
            "0:00",
            "P10675200D",
            "PT1H1H",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn written_as_dotnet_writes_them() {
        for (secs, nanos, text) in [
            (60, 0, "PT1M"),
            (30, 0, "PT30S"),
            (0, 0, "PT0S"),
            (14 * 86_400, 0, "P14D"),
            (86_400 + 3600, 0, "P1DT1H"),
            (5405, 0, "PT1H30M5S"),
            (0, 500_000_000, "PT0.5S"),
        ] {
            assert_eq!(format_duration(Duration::new(secs, nanos)), text);
        }
        assert_eq!(format_duration(TIMESPAN_MAX), "P10675199DT2H48M5.4775807S");
    }

    proptest! {
        #[test]
        fn written_durations_read_back(t in 0u64..=9_223_372_036_854_775_807) {
            let d = from_ticks(u128::from(t)).expect("in range");
            prop_assert_eq!(parse_duration(&format_duration(d)), Some(d));
        }
    }
}
