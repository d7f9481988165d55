//! Timestamps in the reference's format: ISO-8601 UTC with microseconds and `+00:00`.

use chrono::{DateTime, SecondsFormat, Utc};

pub(crate) type Timestamp = DateTime<Utc>;

/// `2026-11-25T06:40:00.123456+00:00`, as the reference writes them.
pub(crate) fn iso(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Serde: a timestamp as [`iso`] text (`#[serde(serialize_with = "ser")]`).
pub(crate) fn ser<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*t))
}

/// Serde: an optional timestamp as [`iso`] text or null.
pub(crate) fn ser_opt<S: serde::Serializer>(
    t: &Option<Timestamp>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&iso(*t)),
        None => s.serialize_none(),
    }
}

/// Parse a stored timestamp; `None` when it is not RFC 3339.
pub(crate) fn parse_iso(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A timestamp as the reference stored it, in our format: RFC 3339 (Python's
/// `isoformat()`, which leaves out the fraction when it is zero) or SQLite's
/// `datetime('now')` default (`2026-11-25 06:40:00`, UTC). `None` for anything else.
pub(crate) fn normalize_reference(s: &str) -> Option<String> {
    if let Some(t) = parse_iso(s) {
        return Some(iso(t));
    }
    chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| iso(t.and_utc()))
}

/// A time the operator typed: RFC 3339 (`2026-11-29T12:00:00Z`), a browser's
/// local date and time taken as UTC (`2026-11-29T12:00`), a date (midnight UTC) or
/// an age counted back from `now` (`90s`, `30m`, `2h`, `7d`). Used by `hubctl audit
/// --since` and the dashboard's audit filter.
pub(crate) fn parse_since(text: &str, now: Timestamp) -> Option<Timestamp> {
    use chrono::{Duration, NaiveDate, NaiveDateTime};
    let t = text.trim();
    if let Some(at) = parse_iso(t) {
        return Some(at);
    }
    for form in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(t, form) {
            return Some(at.and_utc());
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return day.and_hms_opt(0, 0, 0).map(|m| m.and_utc());
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().ok()?;
    let age = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    }?;
    now.checked_sub_signed(age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_like_the_reference() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 6, 40, 0).unwrap();
        assert_eq!(iso(t), "2026-11-25T06:40:00.000000+00:00");
        assert_eq!(parse_iso(&iso(t)), Some(t));
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn reference_timestamps_are_normalized() {
        let n = normalize_reference;
        assert_eq!(
            n("2026-11-29T13:32:16.237295+00:00").as_deref(),
            Some("2026-11-29T13:32:16.237295+00:00")
        );
        assert_eq!(
            n("2026-11-29T13:32:16+00:00").as_deref(),
            Some("2026-11-29T13:32:16.000000+00:00")
        );
        assert_eq!(
            n("2026-11-29T15:32:16.5+02:00").as_deref(),
            Some("2026-11-29T13:32:16.500000+00:00")
        );
        assert_eq!(
            n("2026-11-29 13:32:16").as_deref(),
            Some("2026-11-29T13:32:16.000000+00:00")
        );
        assert_eq!(n("yesterday"), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn since_takes_times_dates_and_ages() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 14, 0, 0).unwrap();
        let at = |s: &str| parse_since(s, now).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2026-11-29T12:00:00Z").unwrap(),
            "2026-11-29T12:00:00+00:00"
        );
        assert_eq!(
            at(" 2026-11-29T12:30 ").unwrap(),
            "2026-11-29T12:30:00+00:00"
        );
        assert_eq!(at("2026-11-29").unwrap(), "2026-11-29T00:00:00+00:00");
        assert_eq!(at("2h").unwrap(), "2026-11-29T12:00:00+00:00");
        assert_eq!(at("90s").unwrap(), "2026-11-29T13:58:30+00:00");
        for bad in ["", "yesterday", "2x", "h", "-3d", "99999999999999d"] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }
}
