//! Parsing of human units on the command line: durations and rates.

use std::time::Duration;

/// The longest duration, and the longest `--arrivals` schedule, accepted: 100 years (the
/// simulator's virtual clock counts nanoseconds in a `u64`, about 584 years).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

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
    Duration::try_from_secs_f64(n)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| format!("`{s}` is longer than 100 years"))
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

/// Parses a size in bytes: `1000000`, `1MB` (10^6), `32MiB`, `50GiB`, `4KiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("`{s}`: unknown size unit `{unit}`")),
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{s}` is not a size"));
    }
    Ok(v.round() as u64)
}

/// Parses an arrival schedule: phases separated by commas, each either Poisson,
/// `RATE for DURATION` with RATE as `6/min`, `0.1/s` or `300/h`
/// (`6/min for 1h, 120/min for 1h, 6/min for 1h`), or fixed, `COUNT every DURATION`: COUNT
/// arrivals exactly DURATION apart, the first at the start of the phase (`30 every 2s`, a
/// phase of 60 s).
pub fn parse_schedule(s: &str) -> Result<Vec<crate::sim::Phase>, String> {
    let mut phases = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if let Some((count, gap)) = part.split_once(" every ") {
            let count: u32 = count
                .trim()
                .parse()
                .map_err(|_| format!("`{count}`: expected a whole number of arrivals"))?;
            let gap = parse_duration(gap)?;
            if count == 0 || gap.is_zero() {
                return Err(format!(
                    "`{part}`: expected a positive count and gap, e.g. `30 every 2s`"
                ));
            }
            phases.push(crate::sim::Phase {
                per_second: 1.0 / gap.as_secs_f64(),
                duration: gap
                    .checked_mul(count)
                    .filter(|d| *d <= MAX_DURATION)
                    .ok_or_else(|| format!("`{part}` lasts longer than 100 years"))?,
                fixed: true,
            });
            continue;
        }
        let (rate, dur) = part.split_once(" for ").ok_or_else(|| {
            format!(
                "`{part}`: expected `RATE for DURATION` (e.g. `6/min for 1h`) or \
                 `COUNT every DURATION` (e.g. `30 every 2s`)"
            )
        })?;
        let (n, per) = rate
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{rate}`: expected a rate like `6/min`"))?;
        let n: f64 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{rate}` is not a rate"))?;
        let per_second = match per.trim() {
            "s" | "sec" => n,
            "m" | "min" => n / 60.0,
            "h" | "hour" => n / 3600.0,
            other => return Err(format!("`{rate}`: unknown unit `{other}` (s, min, h)")),
        };
        if !per_second.is_finite() || per_second < 0.0 {
            return Err(format!("`{rate}` is not a non-negative rate"));
        }
        phases.push(crate::sim::Phase {
            per_second,
            duration: parse_duration(dur)?,
            fixed: false,
        });
    }
    let total = phases.iter().map(|p| p.duration).sum::<Duration>();
    if total > MAX_DURATION {
        return Err(format!("`{s}` lasts longer than 100 years"));
    }
    Ok(phases)
}

/// Parses a peer class `WEIGHT:DOWN/UP`, e.g. `0.6:20Mbit/2Mbit`.
pub fn parse_peer_class(s: &str) -> Result<crate::sim::PeerClass, String> {
    let (w, rates) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected WEIGHT:DOWN/UP, e.g. 0.6:20Mbit/2Mbit"))?;
    let (down, up) = rates
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected WEIGHT:DOWN/UP, e.g. 0.6:20Mbit/2Mbit"))?;
    let weight: f64 = w
        .trim()
        .parse()
        .map_err(|_| format!("`{w}` is not a weight"))?;
    if !(weight > 0.0 && weight.is_finite()) {
        return Err(format!("`{w}`: the weight must be positive"));
    }
    Ok(crate::sim::PeerClass {
        weight,
        down: parse_rate(down)?,
        up: parse_rate(up)?,
    })
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
        assert_eq!(parse_rate("10Gbit").unwrap(), 1_250_000_000);
        assert_eq!(parse_rate("1.5Mbit").unwrap(), 187_500);
    }

    #[test]
    fn durations_too_long_for_the_clock_are_errors_not_panics() {
        // Found by the units and sim_arrivals fuzz targets: Duration::from_secs_f64 panicked.
        assert!(parse_duration("33333333333333333333.").is_err());
        assert!(parse_duration("1e300").is_err());
        assert_eq!(parse_duration("36500d").unwrap(), MAX_DURATION);
        assert!(parse_duration("36501d").is_err());
        assert!(parse_schedule("1/s for 3666666666666666666666h").is_err());
        assert!(parse_schedule("4000000000 every 100d").is_err());
        assert!(parse_schedule("1/s for 36500d, 1/s for 1s").is_err());
        assert!(parse_schedule("1/s for 36500d").is_ok());
    }

    #[test]
    fn sizes_schedules_classes() {
        assert_eq!(parse_size("1000000").unwrap(), 1_000_000);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("32MiB").unwrap(), 32 << 20);
        assert!(parse_size("3 apples").is_err());
        let s = parse_schedule("6/min for 1h, 120/min for 1h,0.5/s for 30m").unwrap();
        assert_eq!(s.len(), 3);
        assert!((s[0].per_second - 0.1).abs() < 1e-12);
        assert!((s[1].per_second - 2.0).abs() < 1e-12);
        assert_eq!(s[2].duration, Duration::from_secs(1800));
        assert!(parse_schedule("6/min").is_err());
        assert!(parse_schedule("6/fortnight for 1h").is_err());
        assert!(s.iter().all(|p| !p.fixed));
        // Fixed schedules, alone or between Poisson phases.
        let f = parse_schedule("30 every 2s").unwrap();
        assert_eq!(f.len(), 1);
        assert!(f[0].fixed);
        assert_eq!(f[0].duration, Duration::from_secs(60));
        assert!((f[0].per_second - 0.5).abs() < 1e-12);
        let m = parse_schedule("6/min for 1h, 10 every 250ms, 1/s for 1m").unwrap();
        assert_eq!(
            m.iter().map(|p| p.fixed).collect::<Vec<_>>(),
            vec![false, true, false]
        );
        assert_eq!(m[1].duration, Duration::from_millis(2500));
        assert!((m[1].per_second - 4.0).abs() < 1e-12);
        for bad in [
            "0 every 2s",
            "30 every 0s",
            "2.5 every 1s",
            "-3 every 1s",
            "30 every",
        ] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
        let c = parse_peer_class("0.6:20Mbit/2Mbit").unwrap();
        assert_eq!((c.down, c.up), (2_500_000, 250_000));
        assert!(parse_peer_class("0:1Mbit/1Mbit").is_err());
        assert!(parse_peer_class("1Mbit/1Mbit").is_err());
    }
}
