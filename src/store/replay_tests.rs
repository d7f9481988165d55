//! Replay (cluster.md §3): a batch applied a second time, as after a commit whose
//! outcome was lost, a retried forward or a shard's new owner, leaves exactly the
//! state of applying it once. One batch per op kind, on a database that holds what
//! the batch acts on; every table compared whole.

use super::op::{Op, Tally};
use super::replay_cases::{base, cases, kind, late_grant, KINDS};
use super::{migrate, writer::commit_batch};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::collections::BTreeSet;

fn db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    migrate::run(&mut conn, "t0").unwrap();
    // As the writer's connection has it: a replay must not trip a foreign key.
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn
}

fn commit(conn: &mut Connection, ops: &[Op]) {
    let ops: Vec<&Op> = ops.iter().collect();
    commit_batch(conn, &ops).unwrap();
}

/// Every row of every table (SQLite's own `sqlite_sequence` too), its values as
/// text, the rows sorted: contents only, whatever their rowids.
fn dump(conn: &Connection) -> Vec<(String, Vec<String>)> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    let cells: Vec<String> = (0..n)
                        .map(|i| match r.get_ref(i).unwrap() {
                            ValueRef::Null => "NULL".to_string(),
                            ValueRef::Integer(v) => v.to_string(),
                            ValueRef::Real(v) => v.to_string(),
                            ValueRef::Text(v) | ValueRef::Blob(v) => {
                                format!("{:?}", String::from_utf8_lossy(v))
                            }
                        })
                        .collect();
                    Ok(cells.join("|"))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.sort();
            (t, rows)
        })
        .collect()
}

/// `now` must equal `then`, table by table (the first table that differs is named).
fn assert_same(now: &[(String, Vec<String>)], then: &[(String, Vec<String>)], what: &str) {
    for ((table, rows), (_, old)) in now.iter().zip(then) {
        assert_eq!(rows, old, "{what}: table {table}");
    }
    assert_eq!(now.len(), then.len(), "{what}: tables");
}

#[test]
fn every_op_applied_twice_leaves_the_state_of_once() {
    let base = base();
    let mut covered = BTreeSet::new();
    for (what, batch) in cases(&base) {
        covered.extend(batch.iter().map(kind));
        let mut conn = db();
        commit(&mut conn, &base);
        let before = dump(&conn);
        commit(&mut conn, &batch);
        let once = dump(&conn);
        assert_ne!(once, before, "{what}: the batch changed nothing");
        commit(&mut conn, &batch);
        assert_same(&dump(&conn), &once, &format!("{what}, applied twice"));
    }
    let all: BTreeSet<&str> = KINDS.iter().copied().collect();
    assert_eq!(covered, all, "every op kind has a case");
}

/// The whole base history, applied again over itself (a new owner re-applying
/// what it cannot tell was committed): nothing changes, not even the task count.
#[test]
fn a_whole_history_applied_twice_is_the_same_history() {
    let base = base();
    let mut conn = db();
    commit(&mut conn, &base);
    let once = dump(&conn);
    commit(&mut conn, &base);
    assert_same(&dump(&conn), &once, "the base history");
    assert_eq!(super::load_tasks::count_tasks(&conn).unwrap(), 1);
}

/// A purge applied again reports what it deleted itself: nothing more, once the
/// first application is committed. The count the caller reads is the one of the
/// application its ticket was committed with.
#[test]
fn a_replayed_purge_deletes_nothing_more() {
    let mut conn = db();
    commit(&mut conn, &base());
    let deleted = Tally::default();
    let purge = [Op::DeliveriesPurge {
        agent: "bob".into(),
        from: None,
        deleted: deleted.clone(),
    }];
    commit(&mut conn, &purge);
    assert_eq!(deleted.get(), 2);
    commit(&mut conn, &purge);
    assert_eq!(deleted.get(), 0);
}

/// A grant replayed after a newer holder's: the lock stays the newer holder's and
/// no fencing counter goes back.
#[test]
fn an_older_grant_replayed_late_changes_no_lock() {
    let mut conn = db();
    commit(&mut conn, &base());
    let [older, newer, late] = late_grant();
    commit(&mut conn, &older);
    commit(&mut conn, &newer);
    let newest = dump(&conn);
    commit(&mut conn, &late);
    assert_same(&dump(&conn), &newest, "an older grant");
    let (holder, token, last): (String, i64, i64) = conn
        .query_row(
            "SELECT l.holder_agent_id, l.fencing_token, f.last_token
             FROM locks l JOIN lock_fencing f ON f.lock_key = l.lock_key",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((holder.as_str(), token, last), ("disp", 3, 3));
}
