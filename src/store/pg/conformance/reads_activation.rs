//! The PostgreSQL activation and messaging reads (`store::reads::postgres::
//! {activation, mail}`) against SQLite's (`store::load`, `store::load_tasks`,
//! `store::mail`), for `tests/cluster_pg_reads_activation.rs`: every read asked
//! the same questions of a SQLite database and a PostgreSQL one holding the same
//! history, each answer compared. Values that SQLite returns in no defined order
//! (the `HashMap`s and `HashSet`s, a snapshot's locks) are sorted first; all else
//! must be equal as returned.

use crate::domain::shard::{ShardId, Shards};
use crate::store::load::{self, MailState, Snapshot};
use crate::store::load_tasks::{self, Owned, Scope};
use crate::store::mail;
use crate::store::pg::PgError;
use crate::store::reads::postgres::{activation as pg_act, mail as pg_mail};
use crate::store::StoreError;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

/// The questions to ask: each read is called with each of its arguments here (and
/// the look-ups by two ids with every pair).
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Shard sets to load; `None` is every shard.
    pub shards: Vec<Option<Vec<ShardId>>>,
    /// Agent ids (also the senders of dedupe look-ups).
    pub agents: Vec<String>,
    /// Task ids.
    pub tasks: Vec<String>,
    /// Round, assignment and handoff ids, each asked as each kind.
    pub owned: Vec<String>,
    /// Lock keys.
    pub lock_keys: Vec<String>,
    /// Message ids (also asked all at once).
    pub messages: Vec<String>,
    /// Dedupe keys.
    pub dedupe_keys: Vec<String>,
    /// Limits of an agent's assignments.
    pub limits: Vec<usize>,
}

/// What a comparison found.
#[derive(Debug, Default)]
pub struct Compared {
    /// One line per read whose answers differ (or that failed on either side).
    pub mismatches: Vec<String>,
    /// The reads (or parts of a snapshot, `load_open_work.mail`, ...) that gave a
    /// non-empty answer (a row, a `true`, a non-zero count) at least once.
    pub non_empty: BTreeSet<&'static str>,
    /// How many questions were asked of each side.
    pub calls: usize,
}

impl Compared {
    /// Compare one answer of each side, `view` making each a comparable text and
    /// saying whether it is non-empty.
    fn check<T>(
        &mut self,
        name: &'static str,
        args: impl Debug,
        lite: Result<T, StoreError>,
        pg: Result<T, PgError>,
        view: impl Fn(&T) -> (String, bool),
    ) {
        self.calls += 1;
        match (lite, pg) {
            (Ok(l), Ok(p)) => {
                let (l, l_full) = view(&l);
                let (p, _) = view(&p);
                if l != p {
                    self.mismatches
                        .push(format!("{name}{args:?}: SQLite {l}\n  PostgreSQL {p}"));
                } else if l_full {
                    self.non_empty.insert(name);
                }
            }
            (l, p) => self.mismatches.push(format!(
                "{name}{args:?}: SQLite {:?}, PostgreSQL {:?}",
                l.map(|v| view(&v).0),
                p.map(|v| view(&v).0)
            )),
        }
    }
}

/// A value as compared: its text, and whether it is non-empty.
type View = (String, bool);

/// Debug text, and whether a list is non-empty.
#[allow(clippy::ptr_arg)] // passed where a `Fn(&Vec<T>)` is wanted
fn list<T: Debug>(v: &Vec<T>) -> (String, bool) {
    (format!("{v:?}"), !v.is_empty())
}

fn some<T: Debug>(v: &Option<T>) -> (String, bool) {
    (format!("{v:?}"), v.is_some())
}

fn plain<T: Debug + PartialEq + Default>(v: &T) -> (String, bool) {
    (format!("{v:?}"), *v != T::default())
}

fn mail_text(m: &MailState) -> String {
    format!("{:?}", m.unread)
}

fn shards_of(s: &Option<Vec<ShardId>>) -> Shards {
    match s {
        None => Shards::All,
        Some(list) => Shards::Some(list.clone()),
    }
}

/// Every read of activation and messaging, on both sides, with every argument of
/// `probe`. Reads only.
pub async fn compare_reads(
    lite: &rusqlite::Connection,
    pg: &mut deadpool_postgres::Client,
    probe: &Probe,
) -> Compared {
    let mut out = Compared::default();
    for s in &probe.shards {
        let shards = shards_of(s);
        let l = load::load_open_work(lite, &shards);
        let p = pg_act::load_open_work(pg, &shards).await;
        compare_snapshots(&mut out, s, l, p);
        let l = load_tasks::load_tasks(lite, Scope::Open(&shards));
        let p = pg_act::load_tasks(&*pg, Scope::Open(&shards)).await;
        out.check("load_tasks(Open)", s, l, p, list);
    }
    let c = &*pg;
    out.check(
        "last_audit_id",
        (),
        load::last_audit_id(lite),
        pg_act::last_audit_id(c).await,
        plain,
    );
    out.check(
        "count_tasks",
        (),
        load_tasks::count_tasks(lite),
        pg_act::count_tasks(c).await,
        plain,
    );
    for key in &probe.lock_keys {
        out.check(
            "fencing_counter",
            key,
            load::fencing_counter(lite, key),
            pg_act::fencing_counter(c, key).await,
            plain,
        );
    }
    for id in &probe.tasks {
        out.check(
            "load_tasks(Task)",
            id,
            load_tasks::load_tasks(lite, Scope::Task(id)),
            pg_act::load_tasks(c, Scope::Task(id)).await,
            list,
        );
        out.check(
            "task_exists",
            id,
            load_tasks::task_exists(lite, id),
            pg_act::task_exists(c, id).await,
            plain,
        );
    }
    for id in &probe.owned {
        for kind in [Owned::Round, Owned::Assignment, Owned::Handoff] {
            out.check(
                "owner_of",
                (kind, id),
                load_tasks::owner_of(lite, kind, id),
                pg_act::owner_of(c, kind, id).await,
                some,
            );
        }
    }
    for agent in &probe.agents {
        out.check(
            "load_agent",
            agent,
            load::load_agent(lite, agent),
            pg_act::load_agent(c, agent).await,
            |v| {
                let text = v.as_ref().map(|(a, m)| format!("{a:?} {}", mail_text(m)));
                let full = v.as_ref().is_some_and(|(_, m)| !m.unread.is_empty());
                (format!("{text:?}"), full)
            },
        );
        for &limit in &probe.limits {
            out.check(
                "assignments_of_agent",
                (agent, limit),
                load_tasks::assignments_of_agent(lite, agent, limit),
                pg_act::assignments_of_agent(c, agent, limit).await,
                list,
            );
        }
        for key in &probe.dedupe_keys {
            out.check(
                "dedupe_original",
                (agent, key),
                mail::dedupe_original(lite, agent, key),
                pg_mail::dedupe_original(c, agent, key).await,
                some,
            );
        }
        for id in &probe.messages {
            out.check(
                "sent_or_received",
                (agent, id),
                mail::sent_or_received(lite, agent, id),
                pg_mail::sent_or_received(c, agent, id).await,
                plain,
            );
        }
        out.check(
            "received_of",
            (agent, &probe.messages),
            mail::received_of(lite, agent, &probe.messages),
            pg_mail::received_of(c, agent, &probe.messages).await,
            |v| {
                let sorted: BTreeSet<&String> = v.iter().collect();
                (format!("{sorted:?}"), !v.is_empty())
            },
        );
    }
    let mut by_one: Vec<Vec<String>> = probe.messages.iter().map(|m| vec![m.clone()]).collect();
    by_one.push(probe.messages.clone());
    for ids in &by_one {
        out.check(
            "messages_by_id",
            ids,
            mail::messages_by_id(lite, ids),
            pg_mail::messages_by_id(c, ids).await,
            |v| {
                let sorted: BTreeMap<&String, _> = v.iter().collect();
                (format!("{sorted:?}"), !v.is_empty())
            },
        );
    }
    out
}

/// Two snapshots, part by part (each part is its own name in
/// [`Compared::non_empty`]).
fn compare_snapshots(
    out: &mut Compared,
    shards: &Option<Vec<ShardId>>,
    lite: Result<Snapshot, StoreError>,
    pg: Result<Snapshot, PgError>,
) {
    let (lite, pg) = match (lite, pg) {
        (Ok(l), Ok(p)) => (l, p),
        (l, p) => {
            out.calls += 1;
            out.mismatches.push(format!(
                "load_open_work({shards:?}): SQLite {:?}, PostgreSQL {:?}",
                l.map(|_| "a snapshot"),
                p.map(|_| "a snapshot")
            ));
            return;
        }
    };
    let mail = |s: &Snapshot| -> BTreeMap<String, String> {
        s.mail
            .iter()
            .map(|(k, v)| (k.clone(), mail_text(v)))
            .collect()
    };
    // SQLite reads locks in no defined order.
    let locks = |s: &Snapshot| {
        let mut l = s.locks.clone();
        l.sort_by(|a, b| (&a.lock_key, &a.id).cmp(&(&b.lock_key, &b.id)));
        l
    };
    let parts: [(&'static str, View, View); 6] = [
        (
            "load_open_work.agents",
            list(&lite.agents),
            list(&pg.agents),
        ),
        (
            "load_open_work.mail",
            {
                let m = mail(&lite);
                let full = m.values().any(|v| v != "[]");
                (format!("{m:?}"), full)
            },
            (format!("{:?}", mail(&pg)), false),
        ),
        ("load_open_work.tasks", list(&lite.tasks), list(&pg.tasks)),
        (
            "load_open_work.task_count",
            plain(&lite.task_count),
            plain(&pg.task_count),
        ),
        (
            "load_open_work.locks",
            list(&locks(&lite)),
            list(&locks(&pg)),
        ),
        (
            "load_open_work.last_audit_id",
            plain(&lite.last_audit_id),
            plain(&pg.last_audit_id),
        ),
    ];
    for (name, l, p) in parts {
        out.check(name, shards, Ok(l), Ok(p), |v: &(String, bool)| v.clone());
    }
}

/// `sync_agents` with `agents` (id, token hash) at `now` on both sides, then every
/// agent of `probe` and every shard set of it loaded again and compared: what
/// `sync_agents` returns is `()` on both, its effect is what is compared.
pub async fn compare_sync_agents(
    lite: &mut rusqlite::Connection,
    pg: &mut deadpool_postgres::Client,
    agents: &[(String, String)],
    now: &str,
    probe: &Probe,
) -> Compared {
    let mut out = Compared::default();
    let l = load::sync_agents(lite, agents, now);
    let p = pg_act::sync_agents(pg, agents, now).await;
    out.check("sync_agents", agents, l, p, |v| (format!("{v:?}"), true));
    let after = Probe {
        agents: probe
            .agents
            .iter()
            .chain(agents.iter().map(|(id, _)| id))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        ..probe.clone()
    };
    for s in &after.shards {
        let shards = shards_of(s);
        let l = load::load_open_work(lite, &shards);
        let p = pg_act::load_open_work(pg, &shards).await;
        compare_snapshots(&mut out, s, l, p);
    }
    for agent in &after.agents {
        out.check(
            "load_agent",
            agent,
            load::load_agent(lite, agent),
            pg_act::load_agent(&*pg, agent).await,
            |v| {
                let text = v.as_ref().map(|(a, m)| format!("{a:?} {}", mail_text(m)));
                (format!("{text:?}"), v.is_some())
            },
        );
    }
    out
}
