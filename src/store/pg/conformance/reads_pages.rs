//! The operator's paged reads and retention's reads on PostgreSQL
//! (`store::reads::postgres::{pages, prune}`) against SQLite's (`store::pages`,
//! `store::prune`), for `tests/cluster_pg_reads_pages.rs`: every read run on both
//! backends holding the same history, with many requests (every page of small and
//! large limits, open work and `all`, each audit filter, forged cursors), and
//! every difference reported.

use super::Batch;
use crate::domain::ids::hex;
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::task::{Assignment, AssignmentStatus, Round, RoundStatus, Task, TaskStatus};
use crate::domain::time::iso;
use crate::store::op::{AuditRow, Op};
use crate::store::pages::{self, AuditFilter, Cursor, Page, PageRequest};
use crate::store::pg::PgError;
use crate::store::prune::{self, Prunable};
use crate::store::reads::postgres::{pages as pg_pages, prune as pg_prune};
use crate::store::replay_cases::at;
use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

/// Every read compared, by name (audit once per filter field), as
/// [`Report::filled`] names them.
pub const READS: &[&str] = &[
    "tasks",
    "rounds",
    "awaiting_rounds",
    "audit",
    "audit by entity",
    "audit by actor",
    "audit by event_type",
    "audit since",
    "agents",
    "locks",
    "decisions",
    "messages",
    "task_messages",
    "sent_messages",
    "deliveries",
    "deliveries unread",
    "agent_known",
    "agent_assignments",
    "task_counts",
    "acked_messages",
    "finished_tasks",
    "audit_events",
    "count AckedMessages",
    "count FinishedTasks",
    "count AuditEvents",
];

/// What [`compare`] found.
#[derive(Debug, Default)]
pub struct Report {
    /// Each difference: the read, its arguments, and both answers.
    pub mismatches: Vec<String>,
    /// The reads that gave at least one non-empty answer (a row, `true`, a count
    /// above 0) on SQLite.
    pub filled: BTreeSet<&'static str>,
    /// How many calls were compared.
    pub calls: usize,
}

/// A message of the history: (id, from, to, round, second).
type Sent<'a> = (&'a str, &'a str, &'a [&'a str], Option<&'a str>, i64);

/// Time `s` seconds after the fixtures' instant, as stored.
fn t(s: i64) -> String {
    iso(at(s))
}

/// More history on [`super::base`], so that every list has pages of several rows:
/// agents, tasks, rounds, assignments, decisions, messages, locks and audit events
/// sharing times (the id orders them) and with ids that a language collation
/// orders differently from bytes (`a-b`, `Bob2`, `T_c`, `mB`, ...).
pub fn reads_history() -> Batch {
    let mut ops = Vec::new();
    let mut agents: Vec<(String, String)> = ["alice", "bob", "disp", "ann", "Zed", "a-b", "Bob2"]
        .iter()
        .map(|a| (a.to_string(), format!("hash-{a}")))
        .collect();
    agents.push(("gone".into(), "hash-gone".into()));
    ops.push(Op::AgentsSync {
        agents: agents.clone(),
        at: t(10),
    });
    agents.pop();
    agents.push(("a_c".into(), "hash-a_c".into()));
    // "gone" is inactive from now on.
    ops.push(Op::AgentsSync { agents, at: t(11) });

    // Tasks: (id, status, created, updated, rounds' statuses).
    use RoundStatus as R;
    use TaskStatus as S;
    let tasks: [(&str, S, i64, i64, &[R]); 7] = [
        ("T-a", S::Dispatched, 20, 30, &[R::Completed, R::InProgress]),
        (
            "Tb",
            S::AwaitingOperatorApproval,
            20,
            25,
            &[R::AwaitingOperatorApproval],
        ),
        ("T_c", S::Completed, 20, 21, &[R::Completed]),
        ("tD", S::Closed, 22, 21, &[R::Cancelled]),
        ("T10", S::Draft, 23, 23, &[]),
        (
            "T2x",
            S::AwaitingOperatorApproval,
            24,
            24,
            &[R::AwaitingOperatorApproval],
        ),
        (
            "T9",
            S::Completed,
            25,
            21,
            &[R::AwaitingReview, R::Completed, R::Dispatched],
        ),
    ];
    let mut rounds = Vec::new();
    for (id, status, created, updated, round_states) in tasks {
        let task = Task {
            id: id.into(),
            title: format!("title {id}"),
            description: "d".into(),
            status,
            dispatcher_agent_id: "disp".into(),
            created_at: at(created),
            updated_at: at(updated),
        };
        ops.push(Op::TaskCreated(task.clone()));
        ops.push(Op::TaskUpsert(task));
        for (n, rs) in round_states.iter().enumerate() {
            let n = n as i64 + 1;
            let round = Round {
                id: format!("{id}-r{n}"),
                task_id: id.into(),
                round_number: n as u32,
                status: *rs,
                plan_json: "{\"assignments\":[]}".into(),
                operator_note: (n == 1).then(|| "note".to_string()),
                rejected: n == 2,
                review_verdict: (n == 2).then(|| "changes".to_string()),
                review_note: None,
                // Rounds of different tasks at one time.
                created_at: at(30 + n),
                updated_at: at(40 + n),
            };
            rounds.push(round.id.clone());
            ops.push(Op::RoundUpsert(round.clone()));
            for (k, agent) in ["alice", "Bob2", "bob"].iter().enumerate() {
                let k = k as i64;
                let assignment = Assignment {
                    id: format!("{}-a{k}", round.id),
                    round_id: round.id.clone(),
                    task_id: id.into(),
                    agent_id: agent.to_string(),
                    goal: format!("goal {k}"),
                    status: if k == 0 {
                        AssignmentStatus::Claimed
                    } else {
                        AssignmentStatus::Pending
                    },
                    progress_note: (k == 1).then(|| "half".to_string()),
                    claimed_at: (k == 0).then(|| at(50)),
                    lease_expires_at: (k == 0).then(|| at(90)),
                    handoff_id: None,
                    created_at: at(50 + k % 2),
                    updated_at: at(50 + k),
                    seq: n * 10 + k,
                };
                ops.push(Op::AssignmentUpsert(assignment));
            }
            for (k, (action, when)) in [("reject", 33), ("approve", 33), ("approve", 34)]
                .iter()
                .enumerate()
            {
                ops.push(Op::Approval {
                    id: format!("{}-{}", round.id, ["d", "C", "b"][k]),
                    task_id: id.into(),
                    round_id: round.id.clone(),
                    action: action.to_string(),
                    note: format!("note {k}"),
                    at: t(*when),
                });
            }
        }
    }

    // Messages: (id, from, to, round, second); several per second.
    let messages: [Sent; 12] = [
        ("ma", "alice", &["bob"], None, 60),
        ("mB", "alice", &["bob", "ann"], Some("T-a-r1"), 60),
        ("m-c", "bob", &["alice"], Some("T-a-r2"), 60),
        ("M_d", "Zed", &["bob"], Some("T9-r1"), 60),
        ("m.e", "alice", &["Bob2", "bob"], None, 61),
        ("mZ", "ann", &["alice"], Some("T-a-r1"), 62),
        ("m10", "bob", &["a-b"], None, 62),
        ("m9", "bob", &["alice", "ann"], Some("T9-r3"), 63),
        ("m~x", "disp", &["bob"], None, 64),
        ("n1", "alice", &["bob"], Some("Tb-r1"), 64),
        ("N2", "alice", &["bob"], None, 64),
        ("o", "gone", &["bob"], None, 65),
    ];
    for (id, from, to, round, s) in messages {
        ops.push(Op::MessageInsert {
            message: Arc::new(Message {
                id: id.into(),
                dedupe_key: (id != "o").then(|| format!("key-{id}")),
                reply_to: (id == "mZ").then(|| "ma".to_string()),
                from_agent: from.into(),
                to_agent: (to.len() == 1).then(|| to[0].to_string()),
                round_id: round.map(str::to_string),
                msg_type: "info".into(),
                subject: format!("subject {id}"),
                body: format!("body of {id}"),
                context_json: "{\"k\":1}".into(),
                hop_count: (id == "m9") as i64,
                created_at: t(s),
            }),
            recipients: to.iter().map(|s| s.to_string()).collect(),
        });
    }
    for (agent, ids, s) in [
        ("bob", vec!["ma", "mB", "M_d", "m~x"], 70),
        ("ann", vec!["mB"], 71),
        ("alice", vec!["m-c", "mZ", "m9"], 71),
        ("Bob2", vec!["m.e"], 72),
    ] {
        ops.push(Op::MessageAck {
            agent: agent.into(),
            message_ids: ids.into_iter().map(str::to_string).collect(),
            at: t(s),
        });
    }

    // Locks of four keys, two granted at one time.
    for (id, key, holder, created, expires) in [
        ("L-a", "branch:a", "alice", 80, 200),
        ("Lb", "branch:b", "bob", 80, 150),
        ("L_c", "file:c", "ann", 81, 100),
        ("l9", "file:d", "Zed", 82, 300),
    ] {
        ops.push(Op::LockUpsert {
            lock: Lock {
                id: id.into(),
                lock_key: key.into(),
                holder_agent_id: holder.into(),
                resource_type: "branch".into(),
                resource_id: key.into(),
                fencing_token: 7,
                expires_at: at(expires),
                created_at: at(created),
            },
            renewed: false,
        });
    }

    // Audit events: ids chosen (ties on time ordered by id), actors, kinds and
    // entities varied; one payload not JSON.
    for (id, kind, (etype, entity), actor, s, payload) in [
        (
            9_000_001,
            "round_approved",
            ("task", "T-a"),
            "operator",
            90,
            "{}",
        ),
        (
            9_000_003,
            "round_approved",
            ("task", "Tb"),
            "operator",
            90,
            "{\"n\":1}",
        ),
        (9_000_002, "task_created", ("task", "T-a"), "disp", 90, "{}"),
        (
            9_000_010,
            "task_created",
            ("task", "T9"),
            "disp",
            91,
            "not json",
        ),
        (
            9_000_004,
            "lock_granted",
            ("lock", "branch:a"),
            "alice",
            92,
            "{}",
        ),
        (
            9_000_005,
            "agent_removed",
            ("agent", "gone"),
            "system",
            92,
            "[]",
        ),
        (
            9_000_006,
            "lock_granted",
            ("lock", "file:c"),
            "ann",
            93,
            "{}",
        ),
        (9_000_007, "task_created", ("task", "T_c"), "disp", 94, "{}"),
    ] {
        ops.push(Op::Audit(AuditRow {
            id,
            event_type: kind.into(),
            entity_type: etype.into(),
            entity_id: entity.into(),
            actor: actor.into(),
            payload_json: payload.into(),
            at: t(s),
        }));
    }
    Batch {
        name: "more history for the reads",
        ops,
    }
}

/// The values of one column of a SQLite query (text), distinct, in order.
fn column(lite: &rusqlite::Connection, sql: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = lite.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out: Vec<String> = rows.collect::<Result<_, _>>()?;
    out.dedup();
    Ok(out)
}

/// `t` as RFC 3339 with `Z` and no fraction (valid, not the hub's form): SQLite
/// compares it as text, so it sorts after every stored time of its second.
fn z_form(t: &str) -> String {
    match t.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => t.to_string(),
    }
}

/// A cursor as a client could send it: any (time, id).
fn forged(created_at: &str, id: &str) -> Option<Cursor> {
    Cursor::parse(&hex(format!("{created_at}~{id}").as_bytes()))
}

struct Compare<'a, C> {
    lite: &'a rusqlite::Connection,
    pg: &'a C,
    report: Report,
}

impl<C: GenericClient> Compare<'_, C> {
    /// Record whether both answers agree; returns SQLite's.
    fn check<T: Debug>(
        &mut self,
        read: &'static str,
        what: &str,
        lite: Result<T, StoreError>,
        pg: Result<T, PgError>,
        filled: impl Fn(&T) -> bool,
    ) -> Option<T> {
        self.report.calls += 1;
        match (lite, pg) {
            (Ok(l), Ok(p)) => {
                let (ls, ps) = (format!("{l:?}"), format!("{p:?}"));
                if ls != ps {
                    self.report
                        .mismatches
                        .push(format!("{read} {what}:\n  sqlite {ls}\n  pg     {ps}"));
                }
                if filled(&l) {
                    self.report.filled.insert(read);
                }
                Some(l)
            }
            (Ok(l), Err(e)) => {
                self.report
                    .mismatches
                    .push(format!("{read} {what}: sqlite {l:?}, pg failed: {e}"));
                None
            }
            (Err(e), Ok(p)) => {
                self.report
                    .mismatches
                    .push(format!("{read} {what}: sqlite failed: {e}, pg {p:?}"));
                None
            }
            (Err(l), Err(p)) => {
                self.report
                    .mismatches
                    .push(format!("{read} {what}: both failed: sqlite {l}, pg {p}"));
                None
            }
        }
    }

    /// Page through `read` on both, following SQLite's cursors to the end, for
    /// open work and `all` and several limits; then from forged cursors at every
    /// key of the full list (`key`: a row's (created_at, id)).
    async fn walk<T: Debug>(
        &mut self,
        read: &'static str,
        what: &str,
        lite: impl Fn(&rusqlite::Connection, &PageRequest) -> Result<Page<T>, StoreError>,
        pg: impl AsyncFn(&C, &PageRequest) -> Result<Page<T>, PgError>,
        key: impl Fn(&T) -> (String, String),
    ) {
        let mut keys = Vec::new();
        for all in [false, true] {
            for limit in [1, 2, 3, 1000] {
                let mut cursor = None;
                for step in 0.. {
                    let req = PageRequest {
                        all,
                        limit,
                        cursor: cursor.take(),
                    };
                    let l = lite(self.lite, &req);
                    let p = pg(self.pg, &req).await;
                    let label = format!("{what} all={all} limit={limit} page {step}");
                    let Some(page) = self.check(read, &label, l, p, |p| !p.items.is_empty()) else {
                        break;
                    };
                    if all && limit == 1000 {
                        keys = page.items.iter().map(&key).collect();
                    }
                    match page.next_cursor.as_deref().map(Cursor::parse) {
                        Some(Some(next)) if step < 200 => cursor = Some(next),
                        Some(_) => {
                            self.report
                                .mismatches
                                .push(format!("{read} {label}: a bad or endless cursor"));
                            break;
                        }
                        None => break,
                    }
                }
            }
        }
        for (at, id) in keys.iter().take(12) {
            let ids = [id.as_str(), "", "M", "m", "abc", "12x"];
            let times = [at.clone(), z_form(at)];
            for (time, id) in times.iter().flat_map(|t| ids.iter().map(move |i| (t, i))) {
                let Some(cursor) = forged(time, id) else {
                    continue;
                };
                let req = PageRequest {
                    all: true,
                    limit: 3,
                    cursor: Some(cursor),
                };
                let l = lite(self.lite, &req);
                let p = pg(self.pg, &req).await;
                self.check(read, &format!("{what} from ({time}, {id})"), l, p, |_| {
                    false
                });
            }
        }
    }
}

/// Run every read on both backends (the same history stored in `lite` and `pg`)
/// and report the differences. The arguments come from the stored rows (every
/// agent, task, round, audit entity, actor, kind and time), and some absent ones.
pub async fn compare(lite: &rusqlite::Connection, pg: &impl GenericClient) -> Report {
    let mut cmp = Compare {
        lite,
        pg,
        report: Report::default(),
    };
    let mut read_keys = |sql: &str| match column(lite, sql) {
        Ok(v) => v,
        Err(e) => {
            cmp.report.mismatches.push(format!("sqlite {sql}: {e}"));
            Vec::new()
        }
    };
    let mut agents = read_keys("SELECT id FROM agents ORDER BY id");
    agents.extend(read_keys(
        "SELECT DISTINCT from_agent FROM messages ORDER BY 1",
    ));
    agents.push("nobody".into());
    agents.sort();
    agents.dedup();
    let mut tasks = read_keys("SELECT id FROM root_tasks ORDER BY id");
    tasks.push("T-none".into());
    let mut round_ids = read_keys("SELECT id FROM rounds ORDER BY id");
    round_ids.push("R-none".into());
    let entities =
        read_keys("SELECT DISTINCT entity_type || '/' || entity_id FROM audit_events ORDER BY 1");
    let actors = read_keys("SELECT DISTINCT actor FROM audit_events ORDER BY 1");
    let kinds = read_keys("SELECT DISTINCT event_type FROM audit_events ORDER BY 1");
    let mut times = read_keys(
        "SELECT created_at FROM audit_events UNION SELECT created_at FROM messages
         UNION SELECT expires_at FROM locks UNION SELECT updated_at FROM root_tasks ORDER BY 1",
    );
    let forms: Vec<String> = times.iter().take(3).map(|t| z_form(t)).collect();
    times.extend(forms);
    times.extend([
        String::new(),
        "2000-01-01T00:00:00.000000+00:00".into(),
        "2099-01-01T00:00:00.000000+00:00".into(),
        "2026".into(),
    ]);

    let by_time = |created_at: String, id: &str| (created_at, id.to_string());
    cmp.walk(
        "tasks",
        "",
        pages::tasks,
        async |c, r| pg_pages::tasks(c, r).await,
        |t| by_time(iso(t.task.created_at), &t.task.id),
    )
    .await;
    cmp.walk(
        "rounds",
        "",
        pages::rounds,
        async |c, r| pg_pages::rounds(c, r).await,
        |r| by_time(iso(r.created_at), &r.id),
    )
    .await;
    cmp.walk(
        "awaiting_rounds",
        "",
        pages::awaiting_rounds,
        async |c, r| pg_pages::awaiting_rounds(c, r).await,
        |r| by_time(iso(r.created_at), &r.id),
    )
    .await;
    cmp.walk(
        "agents",
        "",
        pages::agents,
        async |c, r| pg_pages::agents(c, r).await,
        |k| k.clone(),
    )
    .await;
    cmp.walk(
        "messages",
        "",
        pages::messages,
        async |c, r| pg_pages::messages(c, r).await,
        |m| by_time(m.created_at.clone(), &m.id),
    )
    .await;

    // Audit: unfiltered, by each field alone, and all fields at once.
    let mut filters: Vec<(&'static str, AuditFilter)> = vec![("audit", AuditFilter::default())];
    for e in &entities {
        if let Some((t, i)) = e.split_once('/') {
            let entity = Some((t.to_string(), i.to_string()));
            filters.push((
                "audit by entity",
                AuditFilter {
                    entity,
                    ..Default::default()
                },
            ));
        }
    }
    filters.push((
        "audit by entity",
        AuditFilter {
            entity: Some(("task".into(), "T-none".into())),
            ..Default::default()
        },
    ));
    for a in &actors {
        let actor = Some(a.clone());
        filters.push((
            "audit by actor",
            AuditFilter {
                actor,
                ..Default::default()
            },
        ));
    }
    for k in &kinds {
        let event_type = Some(k.clone());
        filters.push((
            "audit by event_type",
            AuditFilter {
                event_type,
                ..Default::default()
            },
        ));
    }
    for s in &times {
        let since = Some(s.clone());
        filters.push((
            "audit since",
            AuditFilter {
                since,
                ..Default::default()
            },
        ));
    }
    filters.push((
        "audit",
        AuditFilter {
            entity: Some(("task".into(), "T-a".into())),
            actor: Some("operator".into()),
            event_type: Some("round_approved".into()),
            since: times.first().cloned(),
        },
    ));
    for (read, filter) in &filters {
        cmp.walk(
            read,
            &format!("{filter:?}"),
            |c, r| pages::audit(c, r, filter),
            async |c, r| pg_pages::audit(c, r, filter).await,
            |e| by_time(e.created_at.clone(), &e.id.to_string()),
        )
        .await;
    }

    for now in &times {
        cmp.walk(
            "locks",
            &format!("now {now}"),
            |c, r| pages::locks(c, r, now),
            async |c, r| pg_pages::locks(c, r, now).await,
            |l| by_time(iso(l.created_at), &l.id),
        )
        .await;
    }
    for round in &round_ids {
        let l = pages::decisions(lite, round);
        let p = pg_pages::decisions(pg, round).await;
        cmp.check("decisions", round, l, p, |d| !d.is_empty());
    }
    for task in &tasks {
        cmp.walk(
            "task_messages",
            task,
            |c, r| pages::task_messages(c, task, r),
            async |c, r| pg_pages::task_messages(c, task, r).await,
            |m| by_time(m.created_at.clone(), &m.id),
        )
        .await;
    }
    for agent in &agents {
        cmp.walk(
            "sent_messages",
            agent,
            |c, r| pages::sent_messages(c, agent, r),
            async |c, r| pg_pages::sent_messages(c, agent, r).await,
            |m| by_time(m.created_at.clone(), &m.id),
        )
        .await;
        for (read, unread) in [("deliveries", false), ("deliveries unread", true)] {
            cmp.walk(
                read,
                agent,
                |c, r| pages::deliveries(c, r, agent, unread),
                async |c, r| pg_pages::deliveries(c, r, agent, unread).await,
                |d| by_time(d.message.created_at.clone(), &d.message.id),
            )
            .await;
        }
        let l = pages::agent_known(lite, agent);
        let p = pg_pages::agent_known(pg, agent).await;
        cmp.check("agent_known", agent, l, p, |k| *k);
        cmp.walk(
            "agent_assignments",
            agent,
            |c, r| pages::agent_assignments(c, agent, r),
            async |c, r| pg_pages::agent_assignments(c, agent, r).await,
            |a| by_time(iso(a.created_at), &a.id),
        )
        .await;
    }
    let l = pages::task_counts(lite);
    let p = pg_pages::task_counts(pg).await;
    cmp.check("task_counts", "", l, p, |c| c.iter().any(|(_, n)| *n > 0));

    prune_reads(&mut cmp, &times).await;
    cmp.report
}

/// Retention's reads at every cutoff: each keyed batch from the start, then from
/// every key it returned and from forged keys.
async fn prune_reads<C: GenericClient>(cmp: &mut Compare<'_, C>, times: &[String]) {
    for cutoff in times {
        let start = (String::new(), String::new());
        let l = prune::acked_messages(cmp.lite, cutoff, &start);
        let p = pg_prune::acked_messages(cmp.pg, cutoff, &start).await;
        let what = format!("cutoff {cutoff:?}");
        let acked = cmp.check("acked_messages", &what, l, p, |v| !v.is_empty());
        let l = prune::finished_tasks(cmp.lite, cutoff, &start);
        let p = pg_prune::finished_tasks(cmp.pg, cutoff, &start).await;
        let finished = cmp.check("finished_tasks", &what, l, p, |v| !v.is_empty());
        let afters = |keys: Option<Vec<(String, String)>>| -> Vec<(String, String)> {
            let mut out = Vec::new();
            for (t, id) in keys.unwrap_or_default() {
                out.push((z_form(&t), id.clone()));
                out.push((t.clone(), "M".into()));
                out.push((t, id));
            }
            out
        };
        for after in afters(acked) {
            let l = prune::acked_messages(cmp.lite, cutoff, &after);
            let p = pg_prune::acked_messages(cmp.pg, cutoff, &after).await;
            cmp.check(
                "acked_messages",
                &format!("{what} after {after:?}"),
                l,
                p,
                |_| false,
            );
        }
        for after in afters(finished) {
            let l = prune::finished_tasks(cmp.lite, cutoff, &after);
            let p = pg_prune::finished_tasks(cmp.pg, cutoff, &after).await;
            cmp.check(
                "finished_tasks",
                &format!("{what} after {after:?}"),
                l,
                p,
                |_| false,
            );
        }
        let l = prune::audit_events(cmp.lite, cutoff);
        let p = pg_prune::audit_events(cmp.pg, cutoff).await;
        cmp.check("audit_events", &what, l, p, |v| !v.is_empty());
        for (read, policy) in [
            ("count AckedMessages", Prunable::AckedMessages),
            ("count FinishedTasks", Prunable::FinishedTasks),
            ("count AuditEvents", Prunable::AuditEvents),
        ] {
            let l = prune::count(cmp.lite, policy, cutoff);
            let p = pg_prune::count(cmp.pg, policy, cutoff).await;
            cmp.check(read, &what, l, p, |n| *n > 0);
        }
    }
}
