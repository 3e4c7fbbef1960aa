//! Parsing of the DUR values of the command line (`250ms`, `5s`, `2m`, `1h`, bare
//! seconds). Like `timeout(1)`, a fraction is allowed (`1.5s`); unlike it, an
//! unknown unit is an error rather than a guess.

use std::time::Duration;

/// Parses a DUR. Errors are phrased for clap, which prefixes the option name.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(invalid(text)),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(invalid(text));
    }
    let value: f64 = number.parse().map_err(|_| invalid(text))?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| invalid(text))
}

/// `now + d`, never overflowing: a deadline too far to represent is as good as
/// never.
pub fn deadline_after(now: std::time::Instant, d: Duration) -> std::time::Instant {
    now.checked_add(d).unwrap_or_else(|| now + MAX_DURATION)
}

/// The longest DUR accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

fn invalid(text: &str) -> String {
    format!("'{text}' is not a duration: use e.g. 250ms, 5s, 2m, 1h or bare seconds")
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
            "soon",
            "",
            "s",
            "5x",
            "-1s",
            "1.2.3",
            ".5",
            "5.",
            "1e3",
            "5 s s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
