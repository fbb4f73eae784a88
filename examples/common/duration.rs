//! Durations on the command line: `30s`, `500ms`, `2m`, `1h`, or plain seconds (`10`);
//! `0` or `off` turns an optional limit off.

use std::time::Duration;

/// Parse a duration; `None` if malformed.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Parse an optional limit: `0`/`off`/`none` is `None`.
#[allow(dead_code)] // Not every example has an optional limit.
pub fn parse_optional_duration(s: &str) -> Option<Option<Duration>> {
    match s.trim() {
        "off" | "none" => Some(None),
        v => parse_duration(v).map(|d| (!d.is_zero()).then_some(d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_optional_duration("off"), Some(None));
        assert_eq!(parse_optional_duration("0"), Some(None));
        assert_eq!(
            parse_optional_duration("5m"),
            Some(Some(Duration::from_secs(300)))
        );
    }
}
