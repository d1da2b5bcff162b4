//! Strict RFC 3339 timestamp check for `occurred_at`.
//!
//! Postgres' `timestamptz` input accepts far more than RFC 3339 (and reads
//! some strings according to the session's DateStyle), so the append path
//! accepts only `YYYY-MM-DD(T|t| )HH:MM:SS[.frac](Z|z|+HH:MM|-HH:MM)` and then
//! lets Postgres convert it. Offsets are limited to what Postgres stores
//! (±15:59): a larger one would fail inside the conversion instead.

/// Why a string is not an RFC 3339 timestamp, for the error message.
pub fn check(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0u32, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let expect = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));

    let (year, month, day) = match (num(0, 4), num(5, 2), num(8, 2)) {
        (Some(y), Some(m), Some(d)) if expect(4, b"-") && expect(7, b"-") => (y, m, d),
        _ => return Err("expected a date as YYYY-MM-DD"),
    };
    if !expect(10, b"Tt ") {
        return Err("expected 'T' between date and time");
    }
    let (hour, minute, second) = match (num(11, 2), num(14, 2), num(17, 2)) {
        (Some(h), Some(m), Some(s)) if expect(13, b":") && expect(16, b":") => (h, m, s),
        _ => return Err("expected a time as HH:MM:SS"),
    };
    if year == 0 {
        return Err("year 0000 does not exist");
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err("no such date");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("no such time of day");
    }
    let mut at = 19;
    if expect(at, b".") {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err("expected digits after the decimal point");
        }
        at += 1 + digits;
    }
    match b.get(at) {
        Some(b'Z' | b'z') if b.len() == at + 1 => Ok(()),
        Some(b'+' | b'-') if b.len() == at + 6 => match (num(at + 1, 2), num(at + 4, 2)) {
            // RFC 3339 allows offsets up to 23:59; PostgreSQL stores at most 15:59.
            (Some(h), Some(m)) if expect(at + 3, b":") && h <= 15 && m <= 59 => Ok(()),
            (Some(h), Some(m)) if expect(at + 3, b":") && h <= 23 && m <= 59 => {
                Err("a UTC offset beyond ±15:59, which PostgreSQL cannot store")
            }
            _ => Err("expected a UTC offset as +HH:MM or -HH:MM"),
        },
        _ => Err("expected a UTC offset: 'Z', +HH:MM or -HH:MM"),
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}
