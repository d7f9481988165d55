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

/// A history on [`super::base`] for what the replay cases leave untried: ties
/// broken by id (tasks, assignments and handoffs of one instant, deliveries of
/// one instant), several handoffs and locks, a finished task among open ones, a
/// rejected round, ids that byte order and a language's collation sort apart
/// (`t1` and `T1`, `m9B` and `m9a`), non-ASCII text (sizes are bytes), times with microseconds,
/// capabilities, a heartbeat, a read delivery among unread ones, a broadcast, and
/// an audit id above `ID_LIMIT` (not the hub's: `last_audit_id` leaves it out).
pub fn edge_history() -> super::Batch {
    use crate::domain::audit_id::ID_LIMIT;
    use crate::domain::lease::Lock;
    use crate::domain::message::Message;
    use crate::domain::task::TaskStatus;
    use crate::store::op::Op;
    use crate::store::replay_cases::{ack, at, audit, grant, rows_of, send, worked_task};
    use std::sync::Arc;

    let mut ops = vec![
        Op::AgentRegister {
            id: "alice".into(),
            name: "Alice Ünicode".into(),
            capabilities_json: "[\"rust\",\"pg\"]".into(),
            at: "2026-01-01T00:00:05.123456+00:00".into(),
        },
        Op::AgentHeartbeat {
            id: "bob".into(),
            at: "2026-01-01T00:00:07.654321+00:00".into(),
        },
        // One instant, ids out of order.
        send("m9b", "disp", &["bob"], 8),
        send("m9a", "disp", &["bob"], 8),
        send("m9c", "disp", &["bob"], 8),
        send("m9B", "disp", &["bob"], 8),
        ack("bob", "m9c"),
        send("m-bc", "alice", &["bob", "disp"], 9),
    ];
    let (t1, r1) = worked_task("T1");
    ops.push(Op::MessageInsert {
        message: Arc::new(Message {
            id: "m-ü✓".into(),
            dedupe_key: Some("clé".into()),
            reply_to: Some("m1".into()),
            from_agent: "bob".into(),
            to_agent: Some("alice".into()),
            round_id: Some(r1.clone()),
            msg_type: "question".into(),
            subject: "sujet é".into(),
            body: "héllo ✓ 🦀".into(),
            context_json: "{\"k\": [1, 2]}".into(),
            hop_count: 2,
            created_at: "2026-01-01T00:00:09.000001+00:00".into(),
        }),
        recipients: vec!["alice".into()],
    });
    // Handoffs: one of the same instant with a smaller id, one later.
    let h = t1.handoffs[0].clone();
    let mut same = h.clone();
    same.id = "T1-0".into();
    let mut later = h.clone();
    later.id = "T1-00".into();
    later.created_at = at(8);
    ops.push(Op::HandoffInsert(later));
    ops.push(Op::HandoffInsert(same));
    // Tasks of the same instant as T1: T3 open, its round rejected; T2 completed.
    for id in ["T3", "T2", "t1"] {
        let (mut s, r) = worked_task(id);
        ops.extend(rows_of(&s, &r));
        if id == "T2" {
            s.task.status = TaskStatus::Completed;
            s.task.updated_at = at(9);
            ops.push(Op::TaskUpsert(s.task.clone()));
        } else {
            let mut round = s.rounds[0].clone();
            round.rejected = true;
            round.review_verdict = Some("changes".into());
            round.review_note = Some("noté".into());
            ops.push(Op::RoundUpsert(round));
            ops.push(Op::TaskMessageCount {
                task_id: id.into(),
                count: 7,
            });
        }
    }
    for (key, holder, token) in [("file:x", "disp", 7), ("branch:a", "bob", 5)] {
        ops.push(grant(Lock {
            id: format!("L-{key}"),
            lock_key: key.into(),
            holder_agent_id: holder.into(),
            resource_type: "file".into(),
            resource_id: key.into(),
            fencing_token: token,
            expires_at: chrono::DateTime::from_timestamp(1_790_000_100, 123_456_000)
                .unwrap_or_default(),
            created_at: at(3),
        }));
    }
    let mut foreign = audit("T3", 9);
    foreign.id = ID_LIMIT + 5;
    ops.push(Op::Audit(foreign));
    ops.push(Op::Audit(audit("T3", 8)));
    super::Batch {
        name: "edge cases of the reads",
        ops,
    }
}
