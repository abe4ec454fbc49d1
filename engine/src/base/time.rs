//! Durations, time slices and RFC 822 dates, as mod_md writes and reads them.
//!
//! All durations are kept in microseconds (`i64`), like APR's
//! `apr_interval_time_t`, so that values round-trip exactly with the C module.

pub const USEC_PER_SEC: i64 = 1_000_000;
pub const SECS_PER_DAY: i64 = 86_400;
pub const SECS_PER_HOUR: i64 = 3_600;

/// A point in time or a length of time in microseconds.
pub type Micros = i64;

pub(crate) fn from_secs(s: i64) -> Micros {
    s.saturating_mul(USEC_PER_SEC)
}

pub(crate) fn secs(t: Micros) -> i64 {
    t / USEC_PER_SEC
}

/// Splits `value` like C's `strtoll(value, &end, 10)`: optional leading
/// whitespace, optional sign, decimal digits. Returns the number (None on
/// overflow) and the byte offset where parsing stopped (0 when no digits).
fn strtoi64(value: &str) -> (Option<i64>, usize) {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i] == b' ' || (b'\t'..=b'\r').contains(&b[i])) {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut n: Option<i64> = Some(0);
    while i < b.len() && b[i].is_ascii_digit() {
        let d = i64::from(b[i] - b'0');
        n = n.and_then(|n| n.checked_mul(10)).and_then(|n| {
            if neg {
                n.checked_sub(d)
            } else {
                n.checked_add(d)
            }
        });
        i += 1;
    }
    if i == start {
        return (Some(0), 0);
    }
    (n, i)
}

/// Why a duration did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// The number does not fit.
    Range,
    /// No number at the start.
    NoNumber,
    /// Unknown unit.
    Unit,
}

/// `md_duration_parse`: optional sign and a decimal integer, then a unit
/// (`d`, `h`, `s`, `mi`, `ms`, case-insensitive; text after the unit letters
/// is ignored). A bare number uses `def_unit`.
pub fn parse_duration(value: &str, def_unit: &str) -> Result<Micros, DurationError> {
    let (n, end) = strtoi64(value);
    let n = n.ok_or(DurationError::Range)?;
    let unit = if end >= value.len() {
        if end == 0 && !value.is_empty() {
            return Err(DurationError::NoNumber);
        }
        def_unit
    } else if end == 0 {
        return Err(DurationError::NoNumber);
    } else {
        &value[end..]
    };
    let mut u = unit.chars().map(|c| c.to_ascii_lowercase());
    // The C module multiplies without a check: a huge count wraps around
    // (often to a negative duration that the directive then rejects, or
    // not). The same values are accepted and refused here.
    let mul = |secs: i64| -> Result<Micros, DurationError> {
        Ok(n.wrapping_mul(secs).wrapping_mul(USEC_PER_SEC))
    };
    match u.next() {
        Some('d') => mul(SECS_PER_DAY),
        Some('s') => mul(1),
        Some('h') => mul(SECS_PER_HOUR),
        Some('m') => match u.next() {
            Some('s') => Ok(n.wrapping_mul(1000)),
            Some('i') => mul(60),
            _ => Err(DurationError::Unit),
        },
        _ => Err(DurationError::Unit),
    }
}

/// A renewal/warning window: an absolute length, or a percentage of a
/// normalisation period (`norm > 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSlice {
    pub norm: Micros,
    pub len: Micros,
}

impl TimeSlice {
    pub(crate) fn percent_of(norm: Micros, percent: i64) -> TimeSlice {
        TimeSlice {
            norm,
            len: from_secs(secs(norm) * percent / 100),
        }
    }

    /// `md_timeslice_parse`. Errors are the C module's texts (the directive
    /// handler puts the directive name in front).
    pub fn parse(value: &str, norm: Micros) -> Result<TimeSlice, &'static str> {
        if let Ok(len) = parse_duration(value, "d") {
            return Ok(TimeSlice { norm: 0, len });
        }
        let (n, end) = strtoi64(value);
        match n {
            Some(n) if end > 0 && value.as_bytes().get(end) == Some(&b'%') => {
                if n < 0 {
                    Err("percent must be less than 100")
                } else {
                    Ok(TimeSlice::percent_of(norm, n))
                }
            }
            _ => Err("has unrecognized format"),
        }
    }

    /// Integer percentage of a percentage slice.
    pub(crate) fn percent(&self) -> Option<i64> {
        if self.norm > 0 {
            Some(secs(self.len) * 100 / secs(self.norm).max(1))
        } else {
            None
        }
    }

    /// `md_timeslice_format`: `"33%"` or the largest exact unit (`"30d"`).
    pub fn format(&self) -> String {
        match self.percent() {
            Some(p) => format!("{p}%"),
            None => format_duration_unit(self.len),
        }
    }

    /// Length of this slice applied to a period of length `period` (§1.1).
    pub(crate) fn length_within(&self, period: Micros) -> Micros {
        match self.percent() {
            Some(p) => {
                let plen = period.max(0);
                if secs(plen) > 100 {
                    from_secs(secs(plen) * p / 100)
                } else {
                    plen * p / 100
                }
            }
            None => self.len,
        }
    }
}

/// Largest exact unit: `"<n>d"`, `"<n>h"`, `"<n>mi"`, `"<n>s"`, `"<n>ms"`.
pub(crate) fn format_duration_unit(d: Micros) -> String {
    let s = secs(d);
    if s % SECS_PER_DAY == 0 {
        format!("{}d", s / SECS_PER_DAY)
    } else if s % SECS_PER_HOUR == 0 {
        format!("{}h", s / SECS_PER_HOUR)
    } else if s % 60 == 0 {
        format!("{}mi", s / 60)
    } else if (d / 1000) % 1000 == 0 {
        format!("{s}s")
    } else {
        format!("{}ms", d / 1000)
    }
}

/// Human form used in log messages: `2 days 03 hours 05 minutes`,
/// `0 seconds`, `250 ms`; `roughly` keeps only the largest unit with `~`.
pub(crate) fn print_duration(d: Micros, roughly: bool) -> String {
    let total = secs(d);
    let days = total / SECS_PER_DAY;
    let mut rem = total % SECS_PER_DAY;
    let mut s = String::from(if roughly { "~" } else { "" });
    let mut sep = "";
    if days > 0 {
        s.push_str(&format!("{days} days"));
        if roughly {
            return s;
        }
        sep = " ";
    }
    if rem > 0 {
        let parts = [(SECS_PER_HOUR, "hours"), (60, "minutes"), (1, "seconds")];
        for (unit, name) in parts {
            let v = rem / unit;
            rem %= unit;
            if v > 0 {
                s.push_str(&format!("{sep}{v:02} {name}"));
                if roughly {
                    return s;
                }
                sep = " ";
            }
        }
    } else if days == 0 {
        return if d != 0 {
            format!("{} ms", d / 1000)
        } else {
            "0 seconds".to_string()
        };
    }
    s
}

const WDAY: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTH: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 to (year, month 1..12, day 1..31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `apr_rfc822_date`: `Sun, 29 Nov 2026 11:01:12 GMT`.
pub fn rfc822(t: Micros) -> String {
    let s = t.div_euclid(USEC_PER_SEC);
    let days = s.div_euclid(SECS_PER_DAY);
    let sod = s.rem_euclid(SECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let wday = (days + 4).rem_euclid(7) as usize;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WDAY[wday],
        d,
        MONTH[(m - 1) as usize],
        y,
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// A short form for people: `2026-11-29 11:01 UTC`.
pub fn short_utc(t: Micros) -> String {
    let s = t.div_euclid(USEC_PER_SEC);
    let (y, m, d) = civil_from_days(s.div_euclid(SECS_PER_DAY));
    let sod = s.rem_euclid(SECS_PER_DAY);
    format!(
        "{y}-{m:02}-{d:02} {:02}:{:02} UTC",
        sod / 3600,
        (sod % 3600) / 60
    )
}

/// Parses the RFC 822 form written by `rfc822` (and `apr_date_parse_rfc`'s
/// common forms: optional weekday, `GMT`/`UTC`/`Z`/`+0000`).
pub fn parse_rfc822(s: &str) -> Option<Micros> {
    let s = s.trim();
    let s = match s.find(',') {
        Some(i) => &s[i + 1..],
        None => s,
    };
    let mut it = s.split_whitespace();
    let d: u32 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let m = MONTH.iter().position(|x| x.eq_ignore_ascii_case(mon))? as u32 + 1;
    let mut y: i64 = it.next()?.parse().ok()?;
    if y < 100 {
        y += if y < 70 { 2000 } else { 1900 };
    }
    let hms: Vec<&str> = it.next()?.split(':').collect();
    if hms.len() < 2 || !(1..=31).contains(&d) {
        return None;
    }
    let h: i64 = hms[0].parse().ok()?;
    let mi: i64 = hms[1].parse().ok()?;
    let sec: i64 = hms.get(2).map(|x| x.parse().ok()).unwrap_or(Some(0))?;
    let mut off = 0i64;
    if let Some(z) = it.next() {
        if let Some(rest) = z.strip_prefix(['+', '-']) {
            if rest.len() == 4 {
                let v: i64 = rest.parse().ok()?;
                off = (v / 100) * 3600 + (v % 100) * 60;
                if z.starts_with('-') {
                    off = -off;
                }
            }
        }
    }
    let days = days_from_civil(y, m, d);
    Some(from_secs(
        days * SECS_PER_DAY + h * 3600 + mi * 60 + sec - off,
    ))
}

/// RFC 3339 (`2026-11-29T12:00:00Z`, fractional seconds, `Z` or `±hh:mm`).
pub fn parse_rfc3339(s: &str) -> Option<Micros> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac: Micros = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &r[..n];
        let mut us = String::from(&digits[..n.min(6)]);
        while us.len() < 6 {
            us.push('0');
        }
        frac = us.parse().ok()?;
        rest = &r[n..];
    }
    let off = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let t = &rest[1..];
            if t.len() != 5 || t.as_bytes()[2] != b':' {
                return None;
            }
            sign * (t[..2].parse::<i64>().ok()? * 3600 + t[3..].parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(from_secs(days * SECS_PER_DAY + h * 3600 + mi * 60 + sec - off) + frac)
}

/// Now, in microseconds since the epoch.
pub fn now() -> Micros {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        let base = parse_rfc822("Sun, 29 Nov 2026 12:00:00 GMT").unwrap();
        assert_eq!(parse_rfc3339("2026-11-29T12:00:00Z"), Some(base));
        assert_eq!(
            parse_rfc3339("2026-11-29T12:00:00.25Z"),
            Some(base + 250_000)
        );
        assert_eq!(parse_rfc3339("2026-11-29T13:30:00+01:30"), Some(base));
        assert_eq!(parse_rfc3339("2026-11-29T10:00:00-02:00"), Some(base));
        for bad in [
            "",
            "2026-11-29",
            "2026-13-29T12:00:00Z",
            "2026-11-29T12:00:00",
            "2026-11-29T12:00:00.Z",
            "x026-11-29T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30", "s"), Ok(from_secs(30)));
        assert_eq!(parse_duration("30", "d"), Ok(from_secs(30 * 86400)));
        assert_eq!(parse_duration("30days", "s"), Ok(from_secs(30 * 86400)));
        assert_eq!(parse_duration("2h", "s"), Ok(from_secs(7200)));
        assert_eq!(parse_duration("2H", "s"), Ok(from_secs(7200)));
        assert_eq!(parse_duration("5mi", "s"), Ok(from_secs(300)));
        assert_eq!(parse_duration("5min", "s"), Ok(from_secs(300)));
        assert_eq!(parse_duration("250ms", "s"), Ok(250_000));
        assert_eq!(parse_duration("-1d", "s"), Ok(from_secs(-86400)));
        assert_eq!(parse_duration("+3s", "d"), Ok(from_secs(3)));
        assert_eq!(parse_duration("5m", "s"), Err(DurationError::Unit));
        assert_eq!(parse_duration("5x", "s"), Err(DurationError::Unit));
        assert_eq!(parse_duration("abc", "s"), Err(DurationError::NoNumber));
        assert_eq!(parse_duration("d", "s"), Err(DurationError::NoNumber));
        assert_eq!(
            parse_duration("99999999999999999999", "s"),
            Err(DurationError::Range)
        );
        // the multiplication wraps, as in the C module
        assert_eq!(
            parse_duration("999999999999999d", "s"),
            Ok(999_999_999_999_999i64
                .wrapping_mul(86400)
                .wrapping_mul(USEC_PER_SEC))
        );
        assert_eq!(
            parse_duration("9223372036854775807s", "s"),
            Ok(-USEC_PER_SEC)
        );
    }

    #[test]
    fn slices() {
        let norm = from_secs(100 * 86400);
        let ts = TimeSlice::parse("33%", norm).unwrap();
        assert_eq!(ts.format(), "33%");
        assert_eq!(TimeSlice::parse("33%x", norm).unwrap().format(), "33%");
        assert_eq!(TimeSlice::parse("30", norm).unwrap().format(), "30d");
        assert_eq!(TimeSlice::parse("12h", norm).unwrap().format(), "12h");
        assert_eq!(TimeSlice::parse("90mi", norm).unwrap().format(), "90mi");
        assert_eq!(TimeSlice::parse("61s", norm).unwrap().format(), "61s");
        assert_eq!(TimeSlice::parse("1500ms", norm).unwrap().format(), "1500ms");
        assert_eq!(
            TimeSlice::parse("-5%", norm),
            Err("percent must be less than 100")
        );
        assert_eq!(
            TimeSlice::parse("abc", norm),
            Err("has unrecognized format")
        );
        assert_eq!(TimeSlice::parse("5q", norm), Err("has unrecognized format"));
        // 33% of a 90 day certificate is 29.7 days.
        let l = ts.length_within(from_secs(90 * 86400));
        assert_eq!(secs(l), 90 * 86400 * 33 / 100);
        // tiny periods are computed in microseconds
        assert_eq!(ts.length_within(100 * USEC_PER_SEC), 33 * USEC_PER_SEC);
    }

    #[test]
    fn human() {
        assert_eq!(print_duration(0, false), "0 seconds");
        assert_eq!(print_duration(250_000, false), "250 ms");
        assert_eq!(print_duration(from_secs(2), false), "02 seconds");
        assert_eq!(
            print_duration(from_secs(3 * 86400 + 4 * 3600 + 5 * 60), false),
            "3 days 04 hours 05 minutes"
        );
        assert_eq!(print_duration(from_secs(86400), false), "1 days");
        assert_eq!(print_duration(from_secs(35), true), "~35 seconds");
        assert_eq!(print_duration(from_secs(3 * 86400 + 5), true), "~3 days");
    }

    #[test]
    fn dates() {
        let t = from_secs(1_795_950_072); // 2026-11-29 11:01:12 UTC
        assert_eq!(rfc822(t), "Sun, 29 Nov 2026 11:01:12 GMT");
        assert_eq!(parse_rfc822("Sun, 29 Nov 2026 11:01:12 GMT"), Some(t));
        assert_eq!(rfc822(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            rfc822(from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            parse_rfc822("29 Feb 2000 01:00:00 +0100"),
            Some(from_secs(951_782_400))
        );
        assert_eq!(parse_rfc822("garbage"), None);
    }
}
