//! A throwaway PostgreSQL server for the cluster tests (shared/spec/cluster.md §4):
//! `initdb` into a temp dir, `pg_ctl start` on a free loopback port with its Unix
//! socket in that dir, password logins (SCRAM) for a superuser `hub`; fresh
//! databases for the scenarios; `pg_ctl stop -m immediate` on drop, then SIGKILL of
//! the saved postmaster pid if that failed (never anything by name).
//!
//! The server's fsync, synchronous_commit and the rest stay at their defaults, so
//! commits are as durable as in production. Only `initdb --no-sync` is used: it
//! skips flushing the new cluster's files when initdb exits (about 3 of its 5 s on
//! a busy disk), which matters only if the OS crashes, and then the temp dir is
//! gone anyway.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then `initdb` and
//! `pg_ctl` run as `nobody` (Command::uid/gid, which also drops supplementary
//! groups; no runuser or sudo needed), in a temp dir chowned to it. Without
//! `initdb` on PATH or under /usr/lib/postgresql/*/bin, [`Postgres::start`] says
//! why, for the test to print before it passes.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The superuser `initdb` creates.
pub(crate) const USER: &str = "hub";
/// Who runs the server when the tests run as root.
const UNPRIVILEGED: &str = "nobody";
/// Variables that would point our commands at another server.
const PG_VARS: [&str; 8] = [
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
];

/// A running server; stopped on drop.
pub(crate) struct Postgres {
    dir: tempfile::TempDir,
    /// The directory of initdb, pg_ctl and createdb.
    bin: PathBuf,
    /// (uid, gid) to run the server commands as, when we are root.
    run_as: Option<(u32, u32)>,
    /// The postmaster, for SIGKILL if `pg_ctl stop` fails (0: unknown); updated by
    /// [`Postgres::restart_immediate`], which takes `&self` (scenarios share the
    /// server by reference).
    pid: AtomicU32,
    pub port: u16,
    /// USER's password, for PGPASSWORD or a password file.
    pub password: String,
}

/// The directory holding `initdb` (PATH first, then the newest
/// /usr/lib/postgresql/N/bin), symlinks resolved so that its siblings are found.
fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("initdb"))
            .find(|p| p.is_file())
    });
    let initdb = on_path.or_else(|| {
        std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let major: u32 = e.file_name().to_str()?.parse().ok()?;
                let initdb = e.path().join("bin/initdb");
                initdb.is_file().then_some((major, initdb))
            })
            .max()
            .map(|(_, p)| p)
    })?;
    Some(std::fs::canonicalize(initdb).ok()?.parent()?.to_path_buf())
}

/// `id -u NAME` and `id -g NAME`.
fn ids_of(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// A port that was free a moment ago (the server may still lose a race for it:
/// [`Postgres::start`] then tries another).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn random_hex() -> String {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).expect("OS random numbers");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Postgres {
    /// Start a fresh server, or say why PostgreSQL is not available here. Fails
    /// the test (panics) if it is installed but does not start.
    /// [`Postgres::start`], or `None` after printing why the test is skipped
    /// (PostgreSQL not installed).
    pub(crate) fn or_skip() -> Option<Postgres> {
        match Postgres::start() {
            Ok(s) => Some(s),
            Err(why) => {
                println!("skipped: {why}");
                None
            }
        }
    }

    pub(crate) fn start() -> Result<Postgres, String> {
        Self::start_with(|_| {})
    }

    /// [`Postgres::start`], with `prepare` run on the new cluster before it boots
    /// (to change its configuration files in [`Postgres::data_dir`]).
    pub(crate) fn start_with(prepare: impl FnOnce(&Postgres)) -> Result<Postgres, String> {
        let bin = find_bin().ok_or(
            "initdb not found on PATH or in /usr/lib/postgresql/*/bin \
             (Debian: apt-get install postgresql-15; .ci/run does this as root)",
        )?;
        for tool in ["pg_ctl", "createdb"] {
            if !bin.join(tool).is_file() {
                return Err(format!("{tool} not found beside {}", bin.display()));
            }
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().metadata().expect("stat temp dir").uid() == 0;
        let run_as = if root {
            let ids = ids_of(UNPRIVILEGED).ok_or(format!(
                "running as root, and there is no user {UNPRIVILEGED} to run PostgreSQL as"
            ))?;
            std::os::unix::fs::chown(dir.path(), Some(ids.0), Some(ids.1))
                .expect("chown the temp dir");
            Some(ids)
        } else {
            None
        };
        let mut pg = Postgres {
            dir,
            bin,
            run_as,
            pid: AtomicU32::new(0),
            port: 0,
            password: random_hex(),
        };
        pg.initdb();
        prepare(&pg);
        pg.boot();
        Ok(pg)
    }

    /// A server command, as the unprivileged user when we are root, with no PG*
    /// variables from the test's environment.
    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.current_dir(self.dir.path())
            .env("HOME", self.dir.path());
        for var in PG_VARS {
            cmd.env_remove(var);
        }
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The cluster's data directory (its postgresql.conf and pg_hba.conf).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data()
    }

    /// Give `path` to the user the server runs as (when the tests run as root).
    pub(crate) fn give(&self, path: &std::path::Path) {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
        }
    }

    fn initdb(&self) {
        let pwfile = self.dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", self.password)).expect("write pwfile");
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).expect("chown pwfile");
        }
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg("--no-sync")
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "{}", describe("initdb", &out));
        let _ = std::fs::remove_file(pwfile);
    }

    /// `pg_ctl start` on a free port; a few tries in case another process takes
    /// the port between our check and the server's bind.
    fn boot(&mut self) {
        let log = self.dir.path().join("server.log");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                self.dir.path().display()
            );
            let out = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "30", "-o", &options, "start"])
                .output()
                .expect("run pg_ctl start");
            if out.status.success() {
                self.port = port;
                self.save_pid();
                return;
            }
            last = format!(
                "{}\nlog: {}",
                describe("pg_ctl start", &out),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("PostgreSQL did not start: {last}");
    }

    /// `pg_ctl restart -m immediate`: the server stops without a checkpoint (as in
    /// a crash: clients' connections are cut) and starts again on the same port,
    /// recovering from its WAL. Panics if it does not come back.
    pub(crate) fn restart_immediate(&self) {
        let log = self.dir.path().join("server.log");
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-m", "immediate", "-w", "-t", "60", "restart"])
            .output()
            .expect("run pg_ctl restart");
        assert!(
            out.status.success(),
            "{}\nlog: {}",
            describe("pg_ctl restart", &out),
            self.log()
        );
        self.save_pid();
    }

    /// `pg_ctl stop -m immediate`, `down` without a server, then `pg_ctl start`
    /// on the same port: an outage longer than [`Postgres::restart_immediate`]'s.
    pub(crate) fn outage(&self, down: std::time::Duration) {
        let stop = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .output()
            .expect("run pg_ctl stop");
        assert!(stop.status.success(), "{}", describe("pg_ctl stop", &stop));
        std::thread::sleep(down);
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let start = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .expect("run pg_ctl start");
        assert!(
            start.status.success(),
            "{}\nlog: {}",
            describe("pg_ctl start", &start),
            self.log()
        );
        self.save_pid();
    }

    /// The postmaster's pid, from its pid file.
    fn save_pid(&self) {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse().ok());
        self.pid.store(pid.unwrap_or(0), Ordering::Relaxed);
    }

    /// The Unix socket's directory.
    pub(crate) fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `postgres://hub@127.0.0.1:PORT/DB`: no password in it, as the hub requires.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// `url`'s database through the server's Unix socket.
    pub(crate) fn socket_url(&self, db: &str) -> String {
        let dir = self.dir.path().display().to_string().replace('/', "%2F");
        format!("postgres://{USER}@{dir}:{}/{db}", self.port)
    }

    /// Fresh databases, created side by side (each CREATE DATABASE waits for a
    /// flush); returns their URLs.
    pub(crate) fn create_databases(&self, names: &[&str]) -> Vec<String> {
        let children: Vec<_> = names
            .iter()
            .map(|db| {
                let mut cmd = Command::new(self.bin.join("createdb"));
                for var in PG_VARS {
                    cmd.env_remove(var);
                }
                cmd.env("PGPASSWORD", &self.password)
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-U",
                        USER,
                        "-p",
                        &self.port.to_string(),
                        db,
                    ])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("run createdb")
            })
            .collect();
        for (db, child) in names.iter().zip(children) {
            let out = child.wait_with_output().expect("wait for createdb");
            assert!(
                out.status.success(),
                "{}",
                describe(&format!("createdb {db}"), &out)
            );
        }
        names.iter().map(|db| self.url(db)).collect()
    }

    /// An environment for `agent_hub::pg::config_from_url` holding only
    /// PGPASSWORD.
    pub(crate) fn env(&self) -> impl Fn(&str) -> Option<OsString> {
        let password = OsString::from(&self.password);
        move |k| (k == "PGPASSWORD").then(|| password.clone())
    }

    /// The server's log so far (for failure messages).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stopped = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "10", "stop"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !stopped {
            let pid = self.pid.load(Ordering::Relaxed);
            if pid != 0 {
                let _ = Command::new("kill")
                    .args(["-s", "KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

// --- Hub nodes on a server (tests/cluster*.rs) ---

/// `serve` of `dir` on the database `url`, as cluster node `node`. The nodes of
/// one database share a cluster key, as a cluster's nodes must (it signs session
/// ids and proves node-to-node calls): one derived from `url` is written to `dir`
/// unless it has one.
pub(crate) fn node_args(dir: &Path, url: &str, node: &str) -> Vec<OsString> {
    use sha2::{Digest, Sha256};
    let key = dir.join("cluster.key");
    if !key.exists() {
        let digest = Sha256::digest(url.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        super::write_private(&key, &format!("{hex}\n"));
    }
    let mut args = super::serve_args(dir);
    args.extend(["--store", url, "--node-id", node].map(OsString::from));
    args
}

/// A config dir of `agents` and `config` with the same operator token and cluster
/// key as `first`'s (a cluster's nodes share them).
pub(crate) fn config_like(first: &super::Hub, agents: &[&str], config: &str) -> tempfile::TempDir {
    let dir = super::config_dir(agents, config);
    for file in ["operator.token", "cluster.key"] {
        let text = std::fs::read_to_string(first.path().join(file)).expect(file);
        super::write_private(&dir.path().join(file), &text);
    }
    dir
}

/// A node on `url` in `dir` (its config and tokens); panics if it does not start.
pub(crate) fn start_node(
    server: &Postgres,
    dir: tempfile::TempDir,
    url: &str,
    node: &str,
) -> super::Hub {
    let r = super::spawn(
        dir.path(),
        &node_args(dir.path(), url, node),
        &[("PGPASSWORD", &server.password)],
    )
    .unwrap_or_else(|e| panic!("node {node} did not start: {e:?}\n{}", server.log()));
    super::Hub::from_running(dir, r)
}

/// `/readyz`'s status (200 only on the node that serves).
pub(crate) fn ready(hub: &super::Hub) -> u16 {
    super::request("GET", &format!("{}/readyz", hub.base), &[], "").status
}

/// Wait until `hub` is ready (its log in the panic if not): how long it took.
pub(crate) fn until_ready(hub: &super::Hub, within: std::time::Duration) -> std::time::Duration {
    let started = std::time::Instant::now();
    super::wait_for(within, || (ready(hub) == 200).then_some(())).unwrap_or_else(|| {
        panic!(
            "{} not ready within {within:?}; its log:\n{}",
            hub.base,
            hub.out.stderr()
        )
    });
    started.elapsed()
}
