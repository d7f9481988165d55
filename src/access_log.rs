//! The access log (`access_log: true`): one line per tool call on stderr with the
//! agent, the tool, the outcome code and the milliseconds it took; never arguments or
//! bodies. A call hands its line to a bounded channel and a thread of its own writes
//! it, so that a slow stderr never holds up a call: when the channel is full the line
//! is dropped and counted (a rate-limited warning says how many).
//!
//! Off by default: then [`record`] is one atomic load.

use crate::config::LogFormat as Format;
use crate::domain::AgentId;
use crate::log_limit::LogLimit;
use crate::metrics::CallOutcome;
use chrono::{DateTime, SecondsFormat, Utc};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

/// Lines waiting for the writer thread at most (beyond, dropped).
const QUEUE: usize = 16_384;

/// One tool call, as logged.
struct Line {
    at: DateTime<Utc>,
    agent: AgentId,
    tool: &'static str,
    outcome: &'static str,
    took: Duration,
}

/// The sending end, set once by [`start`].
static SENDER: OnceLock<SyncSender<Line>> = OnceLock::new();
/// Lines dropped because the queue was full (also on `/metrics`).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines dropped so far.
pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Start the writer thread; later calls do nothing (one access log per process).
pub(crate) fn start(format: Format) {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    if SENDER.set(tx).is_err() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || write_lines(&rx, format));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "access log thread not started; access lines are dropped");
    }
}

/// Log one tool call, if the access log is on. `tool` is the tool table's name (or
/// `unknown`): a name sent by a client is never written.
pub(crate) fn record(
    at: DateTime<Utc>,
    agent: &AgentId,
    tool: &'static str,
    outcome: CallOutcome,
    took: Duration,
) {
    let Some(tx) = SENDER.get() else {
        return;
    };
    let line = Line {
        at,
        agent: agent.clone(),
        tool,
        outcome: outcome.as_str(),
        took,
    };
    match tx.try_send(line) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            static FULL: LogLimit = LogLimit::new(10_000);
            if let Some(n) = FULL.hit() {
                tracing::warn!(
                    dropped = n,
                    "access log cannot keep up; lines dropped (one line per 10 s at most)"
                );
            }
        }
        // The thread is gone (it failed to start): already reported.
        Err(TrySendError::Disconnected(_)) => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer thread: format the lines queued, then write them in one go (stderr
/// is locked only for that write: the main log shares it).
fn write_lines(rx: &Receiver<Line>, format: Format) {
    let mut text = String::new();
    while let Ok(first) = rx.recv() {
        text.clear();
        render(&first, format, &mut text);
        // At most a queue's worth per write, so that one write stays bounded.
        for line in rx.try_iter().take(QUEUE) {
            render(&line, format, &mut text);
        }
        // Nowhere to report a failed write to stderr; the lines are lost.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// One line of the access log, with its newline.
fn render(line: &Line, format: Format, out: &mut String) {
    use std::fmt::Write as _;
    let at = line.at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let ms = line.took.as_secs_f64() * 1000.0;
    match format {
        Format::Text => {
            let _ = writeln!(
                out,
                "{at} ACCESS agent={} tool={} outcome={} ms={ms:.3}",
                line.agent.as_str(),
                line.tool,
                line.outcome
            );
        }
        Format::Json => {
            let v = serde_json::json!({
                "timestamp": at,
                "type": "access",
                "agent": line.agent.as_str(),
                "tool": line.tool,
                "outcome": line.outcome,
                "ms": (ms * 1000.0).round() / 1000.0,
            });
            let _ = writeln!(out, "{v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_in_both_formats() {
        let line = Line {
            at: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            agent: AgentId::new("alice"),
            tool: "message_send",
            outcome: "UNKNOWN_AGENT",
            took: Duration::from_micros(1500),
        };
        let mut s = String::new();
        render(&line, Format::Text, &mut s);
        assert_eq!(
            s,
            "1970-01-01T00:00:00.000000Z ACCESS agent=alice tool=message_send outcome=UNKNOWN_AGENT ms=1.500\n"
        );
        s.clear();
        render(&line, Format::Json, &mut s);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["agent"], "alice");
        assert_eq!(v["tool"], "message_send");
        assert_eq!(v["outcome"], "UNKNOWN_AGENT");
        assert_eq!(v["ms"], 1.5);
        assert_eq!(v["type"], "access");
    }
}
