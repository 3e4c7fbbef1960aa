//! Parsing of the DUR values of the command line (`250ms`, `5s`, `2m`, `1h`, bare
//! seconds), and deadline arithmetic on them that cannot panic. Like `timeout(1)`, a
//! fraction is allowed (`1.5s`); unlike it, an unknown unit is an error rather than
//! a guess, and so is anything longer than [`MAX_DURATION`]: every duration is
//! bounded at parse time (docs/DESIGN.md, "Lifecycle", rule 7).

use std::time::{Duration, Instant};

/// The longest DUR accepted: 365 days. Far beyond any sensible grace, linger or
/// readiness wait, and far below what makes `Instant + Duration` overflow (a value
/// near 1e19 s used to panic there once a deadline was computed).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Parses a DUR. Errors are phrased for clap, which prefixes the option name.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(invalid(text));
    }
    let value: f64 = number.parse().map_err(|_| invalid(text))?;
    // Milliseconds are divided rather than scaled by 0.001, which is inexact in
    // binary: 31536000000ms must come out as exactly MAX_DURATION, not a hair above.
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(invalid(text)),
    };
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(too_long());
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid(text))
}

/// `now + d`, or a year from now when that instant cannot be represented: a
/// deadline computed from a user-given duration must never panic. On a clock that
/// cannot even reach a year ahead, the deadline is `now`: an early decision beats a
/// crash that leaves the tree behind.
pub fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(MAX_DURATION))
        .unwrap_or(now)
}

fn invalid(text: &str) -> String {
    format!("'{text}' is not a duration: use e.g. 250ms, 5s, 2m, 1h or bare seconds")
}

fn too_long() -> String {
    format!(
        "a duration can be at most 365 days ({}s)",
        MAX_DURATION.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_documented_form() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in [
            "soon", "", "s", "5x", "-1s", "1.2.3", ".5", "5.", "1e3", "5 s s", "365d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn the_limit_is_365_days_in_every_unit() {
        for max in ["31536000", "31536000s", "525600m", "8760h", "31536000000ms"] {
            assert_eq!(parse_duration(max), Ok(MAX_DURATION), "{max}");
        }
        for over in [
            "31536000.001",
            "31536001s",
            "525601m",
            "8761h",
            "31536000001ms",
            "10000000000000000000",
            "99999999999999999999h",
        ] {
            let err = parse_duration(over).expect_err(over);
            assert!(err.contains("at most 365 days"), "{over}: {err}");
        }
    }

    #[test]
    fn deadlines_never_overflow() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(deadline_after(now, MAX_DURATION), now + MAX_DURATION);
        assert_eq!(deadline_after(now, Duration::MAX), now + MAX_DURATION);
    }
}
