//! Plain text the dashboard's pages show: times as ages and countdowns, states as
//! words, plans as (agent, goal) rows, ids as URL parts. Pure functions of their
//! arguments (time is passed in); `app.js` formats countdowns the same way.

use crate::domain::task::{Plan, PlanItem};
use crate::domain::time::{parse_iso, Timestamp};
use chrono::Duration;

/// Time left until `deadline`: `1h 02m`, `4m 05s`, `12s`, or `expired`.
pub(crate) fn remaining(deadline: Timestamp, now: Timestamp) -> String {
    let secs = (deadline - now).num_seconds();
    if secs <= 0 {
        return "expired".into();
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// How long ago `t` was: `just now`, `42s ago`, `5m ago`, `3h ago`, `2d ago`.
pub(crate) fn ago(t: Timestamp, now: Timestamp) -> String {
    let d = now - t;
    if d < Duration::seconds(5) {
        "just now".into()
    } else if d < Duration::minutes(1) {
        format!("{}s ago", d.num_seconds())
    } else if d < Duration::hours(1) {
        format!("{}m ago", d.num_minutes())
    } else if d < Duration::days(1) {
        format!("{}h ago", d.num_hours())
    } else {
        format!("{}d ago", d.num_days())
    }
}

/// A stored time for people: `2026-11-29 12:00:05 UTC` (the text as stored when it
/// is not a time).
pub(crate) fn when(stored: &str) -> String {
    match parse_iso(stored) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => stored.to_string(),
    }
}

/// A state as words: `awaiting_operator_approval` → `awaiting operator approval`.
pub(crate) fn words(state: &str) -> String {
    state.replace('_', " ")
}

/// The (agent, goal) rows of a stored `plan_json`; `None` when it does not parse
/// (the page then shows the text).
pub(crate) fn plan_items(plan_json: &str) -> Option<Vec<PlanItem>> {
    let v = serde_json::Value::String(plan_json.to_string());
    Plan::parse(Some(&v)).ok().map(|p| p.items)
}

/// `id` as one URL path segment (ids of tasks and agents are safe already; lock
/// keys and anything else get percent-encoded).
pub(crate) use crate::domain::ids::path_segment as seg;

/// `path` with `key=value` pairs added to its query, values percent-encoded.
pub(crate) fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = path.to_string();
    for (k, v) in pairs {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(k);
        out.push('=');
        out.push_str(&seg(v));
    }
    out
}

/// Where an action sends the browser back to: a dashboard path it named, or the
/// overview (never another site: `//evil` and `/ui/../x` are refused).
pub(crate) fn back_to(asked: Option<&str>) -> String {
    match asked {
        Some(p)
            if (p == "/ui" || p.starts_with("/ui/") || p.starts_with("/ui?"))
                && !p.contains("..")
                && !p.contains('\\')
                && !p.contains("//")
                && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p.to_string()
        }
        _ => "/ui".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn countdowns_and_ages() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let s = Duration::seconds;
        assert_eq!(remaining(now + s(3725), now), "1h 02m");
        assert_eq!(remaining(now + s(245), now), "4m 05s");
        assert_eq!(remaining(now + s(12), now), "12s");
        assert_eq!(remaining(now, now), "expired");
        assert_eq!(remaining(now - s(5), now), "expired");
        assert_eq!(ago(now - s(2), now), "just now");
        assert_eq!(ago(now - s(42), now), "42s ago");
        assert_eq!(ago(now - s(301), now), "5m ago");
        assert_eq!(ago(now - s(3 * 3600 + 5), now), "3h ago");
        assert_eq!(ago(now - s(2 * 86400 + 5), now), "2d ago");
    }

    #[test]
    fn times_states_and_plans_as_text() {
        assert_eq!(
            when("2026-11-29T12:00:05.123456+00:00"),
            "2026-11-29 12:00:05 UTC"
        );
        assert_eq!(when("soon"), "soon");
        assert_eq!(
            words("awaiting_operator_approval"),
            "awaiting operator approval"
        );
        let items = plan_items(r#"{"assignments":[{"agent_id":"alice","goal":"code"}]}"#).unwrap();
        assert_eq!(
            (items[0].agent_id.as_str(), items[0].goal.as_str()),
            ("alice", "code")
        );
        assert!(plan_items("not json").is_none());
    }

    #[test]
    fn urls_stay_on_the_dashboard() {
        assert_eq!(seg("T-1:a.b_c"), "T-1:a.b_c");
        assert_eq!(seg("repo/main file"), "repo%2Fmain%20file");
        assert_eq!(
            with_query("/ui/tasks/T-1", &[("done", "approved"), ("id", "R 1")]),
            "/ui/tasks/T-1?done=approved&id=R%201"
        );
        assert_eq!(with_query("/ui?a=1", &[("b", "2")]), "/ui?a=1&b=2");
        for ok in ["/ui", "/ui/tasks/T-1", "/ui?cursor=ab"] {
            assert_eq!(back_to(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "https://evil.example/ui",
            "/uix",
            "/ui/../operator",
            "/ui//evil",
            "/ui/\\evil",
            "/ui/a b",
        ] {
            assert_eq!(back_to(Some(bad)), "/ui", "{bad}");
        }
        assert_eq!(back_to(None), "/ui");
    }
}
