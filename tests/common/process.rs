//! `hubctl` as a child process: spawn `serve`, wait for its "listening on" line, keep
//! draining its output, kill it on drop (SIGKILL, also what the durability tests want).

use super::{config_dir, request, token, wait_for, Client, Resp, BIN, LATEST};
use serde_json::Value;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How long a child gets to print its "listening on" line.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);
const LISTENING: &str = "agent-hub listening on ";

/// Output of a child, collected by background threads (the pipes never fill).
#[derive(Clone, Default)]
pub(crate) struct Captured {
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Captured {
    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
    /// Wait until stdout contains `needle`; returns all of stdout so far either way.
    pub(crate) fn wait_stdout(&self, needle: &str, timeout: Duration) -> String {
        wait_for(timeout, || {
            let s = self.stdout();
            s.contains(needle).then_some(s)
        })
        .unwrap_or_else(|| self.stdout())
    }
    /// Wait until stderr contains `needle`; returns all of stderr so far either way.
    pub(crate) fn wait_stderr(&self, needle: &str, timeout: Duration) -> String {
        wait_for(timeout, || {
            let s = self.stderr();
            s.contains(needle).then_some(s)
        })
        .unwrap_or_else(|| self.stderr())
    }
}

/// A `hubctl serve` child that printed its "listening on" line.
pub(crate) struct Running {
    pub child: Child,
    /// `http://HOST:PORT/mcp` as printed.
    pub url: String,
    pub out: Captured,
}

impl Running {
    /// SIGKILL and reap.
    pub(crate) fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Command-line arguments of mixed types (`&str`, paths).
pub(crate) fn os_args(list: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    list.iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// Why a child did not come up: its exit status (None: still running at the timeout,
/// then killed) and its stderr.
#[derive(Debug)]
pub(crate) struct StartFailure {
    pub status: Option<std::process::ExitStatus>,
    pub stderr: String,
    pub stdout: String,
}

/// A `hubctl` command with no AGENT_HUB_* variables from the environment of the test
/// run, and HOME/XDG pointed at `home` so that nothing outside the test's temp dirs is read.
pub(crate) fn hubctl_cmd(home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("AGENT_HUB_HOST")
        .env_remove("AGENT_HUB_PORT")
        .env_remove("AGENT_HUB_DB")
        .env_remove("AGENT_HUB_STORE")
        .env_remove("AGENT_HUB_NODE_ID")
        .env_remove("AGENT_HUB_CONFIG_DIR")
        .env_remove("AGENT_HUB_CLUSTER_PLACEMENT")
        .env("RUST_LOG", "warn");
    if spread_suite() {
        cmd.env("AGENT_HUB_CLUSTER_PLACEMENT", "spread");
    }
    cmd
}

/// Spawn `hubctl <args>` (normally `serve ...`) with `env` added, and wait for its
/// "listening on" line. `home` is the HOME of the child.
pub(crate) fn spawn(
    home: &Path,
    args: &[OsString],
    env: &[(&str, &str)],
) -> Result<Running, StartFailure> {
    let mut cmd = hubctl_cmd(home);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn hubctl");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let out = Captured::default();
    let (tx, rx) = mpsc::channel();
    {
        let lines = out.stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(LISTENING) {
                    let _ = tx.send(url.trim().to_string());
                }
                lines.lock().unwrap().push(line);
            }
            // tx dropped here: EOF on stdout (the child exited) ends the wait at once.
        });
    }
    let errors = {
        let buf = out.stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut b = buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        })
    };
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(url) => Ok(Running { child, url, out }),
        Err(e) => {
            let status = if matches!(e, mpsc::RecvTimeoutError::Timeout) {
                let _ = child.kill();
                let _ = child.wait();
                None
            } else {
                child.wait().ok()
            };
            let _ = errors.join();
            Err(StartFailure {
                status,
                stderr: out.stderr(),
                stdout: out.stdout(),
            })
        }
    }
}

/// The usual `serve` arguments for a config directory: loopback, port 0, db inside
/// it; or, when the suite runs on PostgreSQL ([`SUITE_PG`]), a database of its own.
pub(crate) fn serve_args(dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "serve".into(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "0".into(),
        "--config-dir".into(),
        dir.into(),
        "--db".into(),
        dir.join("hub.db").into(),
    ];
    if let Some(url) = suite_database(dir) {
        args.extend(["--store".into(), url.into()]);
    }
    args
}

/// `postgres://USER@HOST:PORT` (with PGPASSWORD set): every hub of the test run
/// stores in PostgreSQL there, in a database of its own (`tests/cluster_suite.rs`
/// runs the integration suite this way).
pub(crate) const SUITE_PG: &str = "AGENT_HUB_TEST_PG";

/// With [`SUITE_PG`], set: every hub is two nodes on its database, the node that
/// serves and a second one on the same config directory, and the test calls the
/// second, which forwards everything (shared/spec/cluster.md §4 item 3: the suite
/// "against node 1 alone, most calls forwarded"). Set to `proxy`: the test calls
/// a round-robin TCP proxy in front of both instead, each connection on the next
/// node (§4 item 3, "and against the proxy").
pub(crate) const SUITE_GATEWAY: &str = "AGENT_HUB_TEST_GATEWAY";

/// Whether hubs of this test run store in PostgreSQL ([`SUITE_PG`]): lock
/// fencing tokens then carry their shard's ownership epoch in their high 32 bits,
/// and a restarted hub takes its shards at new epochs.
pub(crate) fn on_postgres() -> bool {
    std::env::var_os(SUITE_PG).is_some_and(|v| !v.is_empty())
}

fn gateway_suite() -> bool {
    std::env::var_os(SUITE_PG).is_some_and(|v| !v.is_empty())
        && std::env::var_os(SUITE_GATEWAY).is_some_and(|v| !v.is_empty())
}

/// [`SUITE_GATEWAY`] is `proxy` or `spread`: calls go through a round-robin proxy.
fn proxy_suite() -> bool {
    gateway_suite() && std::env::var(SUITE_GATEWAY).is_ok_and(|v| v == "proxy" || v == "spread")
}

/// [`SUITE_GATEWAY`] is `spread`: the two nodes serve at once, each its share of
/// the shards (`cluster_placement: spread`), behind the proxy.
pub(crate) fn spread_suite() -> bool {
    gateway_suite() && std::env::var(SUITE_GATEWAY).is_ok_and(|v| v == "spread")
}

/// In [`SUITE_GATEWAY`] mode: once the node of `url` serves, a second node on the
/// same directory and database that forwards to it, running once it answers.
fn start_gateway(dir: &Path, url: &str) -> Option<Running> {
    if !gateway_suite() {
        return None;
    }
    let base = url.trim_end_matches("/mcp");
    let ready = wait_for(Duration::from_secs(30), || {
        (super::request("GET", &format!("{base}/readyz"), &[], "").status == 200).then_some(())
    });
    assert!(ready.is_some(), "{base} does not serve");
    // A new id each time: a restarted gateway does not wait out the old one's.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut args = serve_args(dir);
    args.extend(["--node-id".into(), format!("gw-{nanos}").into()]);
    let gw = spawn(dir, &args, &[]).unwrap_or_else(|e| panic!("gateway did not start: {e:?}"));
    let token = std::fs::read_to_string(dir.join("operator.token")).expect("operator.token");
    let auth = format!("Bearer {}", token.trim());
    let hub = format!("{}/operator/hub", gw.url.trim_end_matches("/mcp"));
    let forwards = wait_for(Duration::from_secs(30), || {
        (super::request("GET", &hub, &[("Authorization", &auth)], "").status == 200).then_some(())
    });
    assert!(
        forwards.is_some(),
        "the gateway does not forward: {}",
        gw.out.stderr()
    );
    if spread_suite() {
        // Both serve their share once the shards have moved (each holds some,
        // and each has loaded what it holds).
        let cluster = format!("{}/operator/cluster", gw.url.trim_end_matches("/mcp"));
        let both = wait_for(Duration::from_secs(30), || {
            let view = super::request("GET", &cluster, &[("Authorization", &auth)], "").json();
            let members = view["cluster"]["members"].as_array()?.clone();
            let shares: Vec<i64> = members
                .iter()
                .filter(|m| m["live"] == true)
                .map(|m| m["shards"].as_i64().unwrap_or(0))
                .collect();
            let split = shares.len() == 2 && shares.iter().all(|n| *n > 0);
            let ready = [base, gw.url.trim_end_matches("/mcp")]
                .iter()
                .all(|b| super::request("GET", &format!("{b}/readyz"), &[], "").status == 200);
            (split && ready).then_some(())
        });
        assert!(
            both.is_some(),
            "the nodes do not both serve: {}",
            gw.out.stderr()
        );
    }
    Some(gw)
}

/// The database of the hubs of `dir` when the suite runs on PostgreSQL: named after
/// the directory, so that a restart on the same directory finds its data; created
/// on first use.
fn suite_database(dir: &Path) -> Option<String> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let base = std::env::var(SUITE_PG).ok().filter(|b| !b.is_empty())?;
    let mut h = DefaultHasher::new();
    dir.hash(&mut h);
    let name = format!("suite_{:016x}", h.finish());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut config: tokio_postgres::Config = format!("{base}/postgres")
            .parse()
            .expect("AGENT_HUB_TEST_PG");
        if let Ok(p) = std::env::var("PGPASSWORD") {
            config.password(p);
        }
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to the suite's PostgreSQL");
        tokio::spawn(conn);
        let known = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .expect("look up the database");
        if known.is_none() {
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the database");
        }
    });
    Some(format!("{base}/{name}"))
}

/// `hubctl serve` on `dir` must refuse to start: returns its stderr after checking
/// that it exited with a non-zero status.
pub(crate) fn start_error(dir: &Path) -> String {
    match spawn(dir, &serve_args(dir), &[]) {
        Ok(mut r) => {
            let _ = r.child.kill();
            let _ = r.child.wait();
            panic!("hub started although it should not: {}", r.url);
        }
        Err(f) => {
            let status = f
                .status
                .unwrap_or_else(|| panic!("hub neither started nor exited: {}", f.stderr));
            assert!(!status.success(), "exit status {status}: {}", f.stderr);
            f.stderr
        }
    }
}

/// The port of `http://host:port/...`.
pub(crate) fn port_of(url: &str) -> u16 {
    let rest = url.split("://").nth(1).expect("scheme");
    let authority = rest.split('/').next().unwrap();
    authority
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// A running hub.
pub(crate) struct Hub {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    pub out: Captured,
    child: Option<Child>,
    /// [`SUITE_GATEWAY`] mode: the node the test calls, which forwards to `child`.
    gateway: Option<Child>,
    /// [`SUITE_GATEWAY`]`=proxy`: the proxy in front of `child` and `gateway`,
    /// which the test calls.
    _proxy: Option<super::proxy::Proxy>,
}

impl Hub {
    /// Agents (tokens from [`token`]) and a config.yaml text; then start.
    pub(crate) fn start(agents: &[&str], config: &str) -> Hub {
        Hub::start_in(config_dir(agents, config))
    }

    /// Like [`Hub::start`], with variables added to the child's environment (say,
    /// `RUST_LOG=info` to see info logs).
    pub(crate) fn start_env(agents: &[&str], config: &str, env: &[(&str, &str)]) -> Hub {
        let dir = config_dir(agents, config);
        let r = spawn(dir.path(), &serve_args(dir.path()), env)
            .unwrap_or_else(|e| panic!("hub did not start: {e:?}"));
        Hub::from_running(dir, r)
    }

    pub(crate) fn start_in(dir: tempfile::TempDir) -> Hub {
        let r = spawn(dir.path(), &serve_args(dir.path()), &[])
            .unwrap_or_else(|e| panic!("hub did not start: {e:?}"));
        Hub::from_running(dir, r)
    }

    pub(crate) fn from_running(dir: tempfile::TempDir, r: Running) -> Hub {
        assert!(r.url.ends_with("/mcp"), "endpoint URL: {}", r.url);
        let gw = start_gateway(dir.path(), &r.url);
        let proxy = gw
            .as_ref()
            .filter(|_| proxy_suite())
            .map(|g| super::proxy::Proxy::start(&[port_of(&r.url), port_of(&g.url)]));
        let url = match (&proxy, &gw) {
            (Some(p), _) => p.url(),
            (None, Some(g)) => g.url.clone(),
            (None, None) => r.url,
        };
        let base = url.trim_end_matches("/mcp").to_string();
        Hub {
            dir,
            port: port_of(&url),
            base,
            url,
            out: r.out,
            child: Some(r.child),
            gateway: gw.map(|g| g.child),
            _proxy: proxy,
        }
    }

    /// The same hub reached through `base` (a proxy in front of it and others):
    /// clients and `hubctl` of the returned hub call that address.
    pub(crate) fn routed(mut self, base: &str) -> Hub {
        self.base = base.to_string();
        self.url = format!("{base}/mcp");
        self.port = port_of(&self.url);
        self
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no flush, no clean shutdown.
    pub(crate) fn kill9(&mut self) {
        for c in [self.child.take(), self.gateway.take()]
            .into_iter()
            .flatten()
        {
            let mut c = c;
            let _ = c.kill(); // SIGKILL on Unix
            let _ = c.wait();
        }
    }

    /// Send a signal (`kill -s NAME`, e.g. "HUP") without waiting for anything.
    pub(crate) fn signal(&self, name: &str) {
        let pids = std::iter::once(self.pid()).chain(self.gateway.as_ref().map(Child::id));
        for pid in pids {
            let ok = Command::new("kill")
                .args(["-s", name, &pid.to_string()])
                .status()
                .expect("run kill")
                .success();
            assert!(ok, "kill -s {name} failed");
        }
    }

    /// The exit status if the child exits within `timeout` (None: still running).
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let status = wait_for(timeout, || {
            self.child
                .as_mut()
                .expect("running")
                .try_wait()
                .expect("try_wait")
        })?;
        self.child = None;
        if let Some(mut gw) = self.gateway.take() {
            if wait_for(timeout, || gw.try_wait().ok().flatten()).is_none() {
                let _ = gw.kill();
                let _ = gw.wait();
            }
        }
        Some(status)
    }

    /// Kill -9 and start again on the same directory and database (new port).
    pub(crate) fn restart(mut self) -> Hub {
        self.kill9();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp"));
        Hub::start_in(dir)
    }

    /// A client of `agent` on a fresh 2025-11-25 session.
    pub(crate) fn client(&self, agent: &str) -> Client {
        Client::connect(&self.url, &token(agent), LATEST)
    }

    /// A client of `agent` on a fresh session of the given protocol version.
    pub(crate) fn client_v(&self, agent: &str, version: &str) -> Client {
        Client::connect(&self.url, &token(agent), version)
    }

    /// A sessionless 2026-07-28 client of `agent`.
    pub(crate) fn modern(&self, agent: &str) -> super::Modern {
        super::Modern::new(&self.url, &token(agent))
    }

    pub(crate) fn operator_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("operator.token"))
            .expect("operator.token")
            .trim()
            .to_string()
    }

    /// Run `hubctl --config-dir DIR --url BASE <args>` against this hub.
    pub(crate) fn hubctl(&self, args: &[&str]) -> Output {
        hubctl_cmd(self.dir.path())
            .arg("--config-dir")
            .arg(self.dir.path())
            .args(["--url", &self.base])
            .args(args)
            .output()
            .expect("run hubctl")
    }

    /// GET on the operator API with the operator token; must be 200.
    pub(crate) fn operator_get(&self, path: &str) -> Value {
        let r = self.operator_get_raw(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }

    /// GET on the operator API with the operator token, whatever the status.
    pub(crate) fn operator_get_raw(&self, path: &str) -> Resp {
        request(
            "GET",
            &format!("{}{path}", self.base),
            &[(
                "Authorization",
                &format!("Bearer {}", self.operator_token()),
            )],
            "",
        )
    }

    /// One agent as `GET /operator/agents` shows it.
    pub(crate) fn operator_agent(&self, id: &str) -> Value {
        let all = self.operator_get("/operator/agents");
        all["items"]
            .as_array()
            .expect("agents list")
            .iter()
            .find(|a| a["agent_id"] == id)
            .unwrap_or_else(|| panic!("agent {id} not listed: {all}"))
            .clone()
    }

    /// POST to /mcp with exactly these headers.
    pub(crate) fn post(&self, headers: &[(&str, &str)], body: &str) -> Resp {
        request("POST", &self.url, headers, body)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill9();
    }
}
