//! Parsing of human units on the command line: durations and rates.

use std::time::Duration;

/// Parses `0`, `90`, `30s`, `10m`, `2h`, `1d`, `1h30m`, `250ms` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<f64>() {
        return secs(n, s);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{s}`: a number needs a unit (s, m, h, d, ms)"))?;
        let (num, tail) = rest.split_at(digits);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let mult = match unit {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(format!("`{s}`: unknown unit `{unit}` (s, m, h, d, ms)")),
        };
        total += n * mult;
        rest = next;
    }
    secs(total, s)
}

fn secs(n: f64, s: &str) -> Result<Duration, String> {
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{s}` is not a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(n))
}

/// Parses a rate in bits or bytes per second into bytes per second: `1Mbit`, `384kbit`,
/// `10Gbit`, `2MB/s`, `500KiB/s`, or a bare number of bytes per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("/s").trim_end_matches("ps");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a rate"))?;
    let bits = |m: f64| n * m / 8.0;
    let bytes = |m: f64| n * m;
    let v = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => bytes(1.0),
        "bit" => bits(1.0),
        "kbit" => bits(1e3),
        "mbit" => bits(1e6),
        "gbit" => bits(1e9),
        "kb" => bytes(1e3),
        "mb" => bytes(1e6),
        "gb" => bytes(1e9),
        "kib" => bytes(1024.0),
        "mib" => bytes(1024.0 * 1024.0),
        "gib" => bytes(1024.0 * 1024.0 * 1024.0),
        _ => return Err(format!("`{s}`: unknown rate unit `{unit}`")),
    };
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{s}` is not a rate"));
    }
    Ok(v.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1Mbit").unwrap(), 125_000);
        assert_eq!(parse_rate("384kbit").unwrap(), 48_000);
        assert_eq!(parse_rate("2MB/s").unwrap(), 2_000_000);
        assert_eq!(parse_rate("1MiB/s").unwrap(), 1_048_576);
        assert_eq!(parse_rate("1000").unwrap(), 1000);
        assert!(parse_rate("fast").is_err());
    }
}
