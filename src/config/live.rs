//! Settings a reload (SIGHUP, `hubctl reload`) changes while the server runs: limits,
//! quotas, presence, waits, lock TTL bounds, retention, the log level and channel
//! pushes (`push`: each agent reads them per event). The others
//! (where and how it serves and stores) keep their start-up values until a restart,
//! and the reload says which of them changed in the file.

use super::Settings;
use arc_swap::ArcSwap;

/// The settings in force, shared by everything that reads them per call; a reload
/// swaps in a new value, and readers see either the old one or the new one whole.
pub(crate) type LiveSettings = ArcSwap<Settings>;

/// The outcome of putting a re-read `config.yaml` beside the settings in force.
#[derive(Debug)]
pub(crate) struct Merged {
    /// The settings to put in force: the live keys from the file, the rest as before.
    pub settings: Settings,
    /// Live keys whose value changed.
    pub changed: Vec<&'static str>,
    /// Keys that changed in the file but take effect only after a restart.
    pub restart_needed: Vec<&'static str>,
}

macro_rules! classify {
    (live: [$($live:ident),* $(,)?], restart: [$($restart:ident),* $(,)?] $(,)?) => {
        /// Merge `new` (the file as re-read) into `old` (in force).
        pub(crate) fn merge(old: &Settings, new: &Settings) -> Merged {
            // Names every field without `..`: a new setting does not compile until
            // it is classified here.
            let Settings { $($live: _,)* $($restart: _,)* } = new;
            let mut settings = old.clone();
            let mut changed = Vec::new();
            let mut restart_needed = Vec::new();
            $(
                if old.$live != new.$live {
                    settings.$live = new.$live.clone();
                    changed.push(stringify!($live));
                }
            )*
            $(
                if old.$restart != new.$restart {
                    restart_needed.push(stringify!($restart));
                }
            )*
            Merged { settings, changed, restart_needed }
        }
    };
}

classify! {
    live: [
        max_rounds,
        max_assignments_per_round,
        max_messages_per_task,
        max_simultaneous_assignments,
        lease_minutes,
        finished_task_idle_secs,
        max_open_tasks_per_agent,
        presence_window_secs,
        inbox_wait_max_seconds,
        max_pull_bytes,
        max_inbox_messages,
        max_inbox_bytes,
        send_rate_per_second,
        send_burst,
        lock_ttl_min_seconds,
        lock_ttl_max_seconds,
        lock_wait_max_seconds,
        max_locks_per_agent,
        max_lock_waits_per_agent,
        retention,
        log_level,
        push,
    ],
    restart: [
        host,
        port,
        db,
        store,
        node_id,
        advertise_url,
        cluster_lease_ttl_secs,
        cluster_placement,
        durability,
        commit_batch_max_ops,
        commit_batch_window_ms,
        max_body_bytes,
        body_read_timeout_secs,
        max_batch_items,
        max_connections,
        max_in_flight,
        max_in_flight_per_agent,
        max_answer_bytes_in_flight_per_agent,
        write_timeout_secs,
        shutdown_drain_secs,
        allowed_origins,
        session_idle_timeout_secs,
        max_sessions_per_agent,
        sse_keepalive_secs,
        metrics_public,
        access_log,
        log_format,
        // public_url, cookie_secure and the dashboard_* keys.
        dashboard,
        notify,
    ],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_keys_change_the_others_wait_for_a_restart() {
        let old = Settings::default();
        let new = Settings {
            max_inbox_messages: 5,
            lock_ttl_max_seconds: 60,
            port: Some(9999),
            durability: crate::config::Durability::Fast,
            ..Settings::default()
        };
        let m = merge(&old, &new);
        assert_eq!(m.changed, ["max_inbox_messages", "lock_ttl_max_seconds"]);
        assert_eq!(m.restart_needed, ["port", "durability"]);
        assert_eq!(m.settings.max_inbox_messages, 5);
        assert_eq!(m.settings.port, None, "kept until a restart");
        assert_eq!(m.settings.durability, old.durability);
        let same = merge(&old, &Settings::default());
        assert!(same.changed.is_empty() && same.restart_needed.is_empty());
    }
}
