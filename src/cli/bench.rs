//! `hubctl bench`: load a hub over real HTTP and print throughput and latency.
//! By default it starts its own throwaway hub (this binary, `serve --port 0` on a temp
//! directory with generated `bench-N` agents) so that nothing real is touched; only
//! `--url U --live` loads an existing hub. Each client is a thread with its own
//! keep-alive connection, MCP session and agent, calling one tool in a loop until the
//! time is up; sessions are closed (DELETE) at the end. Numbers include the client's
//! own CPU (same machine), so compare runs made the same way rather than absolute values.

use super::{discovery, hub_url, CliError, Target};
use crate::config::{bootstrap, settings};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The tools `--tool` accepts (`lock_cycle` is lock_acquire + lock_release).
pub(crate) const TOOLS: [&str; 5] = [
    "hub_status",
    "agent_heartbeat",
    "message_send",
    "inbox_pull",
    "lock_cycle",
];

/// Most `--clients`: one thread and one connection each.
pub(crate) const MAX_CLIENTS: usize = 1024;

/// Longest `--seconds`.
const MAX_SECONDS: f64 = 3600.0;

/// The per-agent quotas the throwaway hub lifts (unless `--config` sets them), so
/// that they are not what the bench measures: key and value for config.yaml.
const LIFTED: [(&str, u64); 5] = [
    ("send_rate_per_second", 1_000_000),
    ("send_burst", 1_000_000),
    ("max_inbox_messages", 1_000_000_000),
    ("max_inbox_bytes", 1 << 40),
    ("max_in_flight_per_agent", 1_000_000),
];

mod scenario;

use scenario::{Failure, Operator, Rec, Session};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Concurrent clients (threads, one session each), 1-1024
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// How long to run (at most 3600)
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Tool to call: hub_status, agent_heartbeat, message_send (to the calling agent
    /// itself), inbox_pull, or lock_cycle (lock_acquire with wait + lock_release of
    /// one key shared by every client: fully contended)
    #[arg(long, default_value = "hub_status")]
    pub tool: String,
    /// A scenario instead of one tool: status, heartbeat, messaging (send to the
    /// next client's agent, pull one, ack it), locks (acquire with wait + release, 4 keys
    /// shared by all), locks-free (a key per client), workflow (teams of 7 agents,
    /// one thread each: draft, plan, operator approval, six assignees list, claim,
    /// progress, complete, the dispatcher reads the handoffs and approves), mixed
    #[arg(long, conflicts_with = "tool", value_name = "S")]
    pub scenario: Option<String>,
    /// Workflow with --live: approve rounds by running this command with the round id
    /// appended (split on spaces, no quoting), instead of POST /operator/rounds/{id}/approve
    /// (for hubs without that API, e.g. agent-hub-mcp's own hubctl in benches/compare.sh)
    #[arg(long, requires = "live", value_name = "CMD")]
    pub approve_with: Option<String>,
    /// With --live: each client calls agent_register once before the clock starts
    /// (a hub whose agents must be registered first, e.g. agent-hub-mcp; it changes
    /// the agents' display names and capabilities to `bench`)
    #[arg(long, requires = "live")]
    pub register: bool,
    /// Load the existing hub that --url (or the config dir's hub) names instead of a
    /// throwaway one: it opens sessions there, and message_send/agent_heartbeat write
    /// to its agents' inboxes and presence
    #[arg(long)]
    pub live: bool,
    /// With --live: the agent whose token every client uses [default: the `bench-*`
    /// agents of agents.env in turn, else all of its agents]
    #[arg(long, requires = "live")]
    pub agent: Option<String>,
    /// With --live: the server's pid, to report its CPU time per call (from
    /// /proc/PID/stat; same machine only)
    #[arg(long, requires = "live", value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Throwaway hub: a config.yaml to start it with (quotas it does not set are
    /// still lifted)
    #[arg(long, conflicts_with = "live", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Failed calls tolerated before the bench stops and exits non-zero
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_errors: u64,
    /// With --live: another node of the same cluster (repeat for more). Clients are
    /// spread over --url and these in turn, as a round-robin balancer spreads
    /// connections (a workflow team stays on one node); the operator's approvals go
    /// to --url
    #[arg(long, requires = "live", value_name = "URL")]
    pub also_url: Vec<String>,
}

/// Check the arguments before anything is started or opened.
fn validate(target: &Target, args: &BenchArgs) -> Result<(), CliError> {
    if let Some(s) = &args.scenario {
        if !scenario::SCENARIOS.contains(&s.as_str()) {
            return Err(CliError::Api(format!(
                "unknown --scenario {s:?}; one of: {}",
                scenario::SCENARIOS.join(", ")
            )));
        }
        if s == "workflow" && args.clients < scenario::TEAM {
            return Err(CliError::Api(format!(
                "--scenario workflow needs at least {} --clients (one team)",
                scenario::TEAM
            )));
        }
    }
    if !TOOLS.contains(&args.tool.as_str()) {
        return Err(CliError::Api(format!(
            "unknown --tool {:?}; one of: {}",
            args.tool,
            TOOLS.join(", ")
        )));
    }
    if !(1..=MAX_CLIENTS).contains(&args.clients) {
        return Err(CliError::Api(format!(
            "--clients must be 1-{MAX_CLIENTS}, not {}",
            args.clients
        )));
    }
    if !(args.seconds > 0.0 && args.seconds <= MAX_SECONDS) {
        return Err(CliError::Api(format!(
            "--seconds must be above 0 and at most {MAX_SECONDS}, not {}",
            args.seconds
        )));
    }
    if target.url.is_some() && !args.live {
        return Err(CliError::Api(
            "--url names an existing hub: add --live to load it (the bench opens sessions \
             there and writes to its agents' inboxes and presence), or drop --url to bench \
             a throwaway hub"
                .into(),
        ));
    }
    if let Some(pid) = args.server_pid {
        cpu_ticks(pid).map_err(CliError::Api)?;
    }
    Ok(())
}

/// The throwaway hub: the child and its temp directory. Dropping it kills the child
/// (an error or a panic must not leave a server behind) and removes the directory.
struct Throwaway {
    child: Option<Child>,
    dir: PathBuf,
}

impl Throwaway {
    /// A fresh private temp directory; the child comes later.
    fn new_dir() -> Result<Throwaway, CliError> {
        let dir = std::env::temp_dir().join(format!(
            "hubctl-bench-{}",
            crate::domain::ids::random_hex(8)
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| CliError::Api(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Throwaway { child: None, dir })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM (a clean shutdown), then SIGKILL if it is still up after 10 s.
    fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
        // SAFETY: kill(2) on our own child, which is not reaped yet (so the pid is ours).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("the throwaway hub exited with {status}")),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(e.to_string()),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Err("the throwaway hub did not stop within 10 s of SIGTERM; killed".into())
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    use std::io::Write;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| CliError::Api(format!("cannot write {}: {e}", path.display())))
}

/// The throwaway hub's config.yaml: `--config`'s keys as given, plus [`LIFTED`] for
/// the quotas it does not set. Returns the text and the lifted `key=value`s.
fn throwaway_config(user: Option<&Path>) -> Result<(String, Vec<(String, u64)>), CliError> {
    let (name, text) = match user {
        Some(p) => (
            p.display().to_string(),
            fs::read_to_string(p)
                .map_err(|e| CliError::Api(format!("cannot read {}: {e}", p.display())))?,
        ),
        None => ("config.yaml".to_string(), String::new()),
    };
    // Refuse a bad file here, with its own name, rather than as the child's failure.
    settings::parse(&name, &text)?;
    let mut map = match serde_norway::from_str::<serde_norway::Value>(&text) {
        Ok(serde_norway::Value::Mapping(m)) => m,
        _ => serde_norway::Mapping::new(), // empty file (parse above refused the rest)
    };
    let mut lifted = Vec::new();
    for (key, value) in LIFTED {
        let k = serde_norway::Value::String(key.into());
        if !map.contains_key(&k) {
            map.insert(k, value.into());
            lifted.push((key.to_string(), value));
        }
    }
    let out = serde_norway::to_string(&map).map_err(|e| CliError::Api(e.to_string()))?;
    Ok((out, lifted))
}

/// Start the throwaway hub with `clients` agents; returns it, its `/mcp` URL, the
/// agents (id, token), the lifted quotas and its operator token.
#[allow(clippy::type_complexity)]
fn start_throwaway(
    clients: usize,
    config: Option<&Path>,
) -> Result<
    (
        Throwaway,
        String,
        Vec<(String, String)>,
        Vec<(String, u64)>,
        String,
    ),
    CliError,
> {
    let (config_text, lifted) = throwaway_config(config)?;
    let mut hub = Throwaway::new_dir()?;
    let agents: Vec<(String, String)> = (1..=clients)
        .map(|i| (format!("bench-{i}"), bootstrap::new_token()))
        .collect();
    let env: String = agents.iter().map(|(a, t)| format!("{a}={t}\n")).collect();
    write_private(&hub.dir.join("agents.env"), &env)?;
    let operator_token = bootstrap::new_token();
    write_private(
        &hub.dir.join("operator.token"),
        &format!("{operator_token}\n"),
    )?;
    write_private(&hub.dir.join("config.yaml"), &config_text)?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Api(format!("cannot find this program's path: {e}")))?;
    let log_path = hub.dir.join("hub.log");
    let log = fs::File::create(&log_path)
        .map_err(|e| CliError::Api(format!("cannot create {}: {e}", log_path.display())))?;
    let mut cmd = Command::new(exe);
    // SAFETY: prctl(2) is async-signal-safe; nothing else runs between fork and exec.
    // If hubctl dies without running Drop (SIGKILL), the hub gets SIGTERM.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd
        .arg("--config-dir")
        .arg(&hub.dir)
        // Loopback whatever config.yaml says: the clients are on this machine.
        .args(["--host", "127.0.0.1", "--port", "0", "serve", "--db"])
        .arg(hub.dir.join("hub.db"))
        // The user's environment must not point the child at their real hub's files.
        .env_remove("AGENT_HUB_DB")
        .env_remove("AGENT_HUB_CONFIG_DIR")
        .env_remove("AGENT_HUB_HOST")
        .env_remove("AGENT_HUB_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| CliError::Api(format!("cannot start the throwaway hub: {e}")))?;
    hub.child = Some(child);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(url) = discovery::live_url(&hub.dir) {
            return Ok((hub, format!("{url}/mcp"), agents, lifted, operator_token));
        }
        let exited = match hub.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            _ => None,
        };
        if exited.is_some() || Instant::now() > until {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            let last = log.lines().last().unwrap_or("no output").to_string();
            return Err(CliError::Api(format!(
                "the throwaway hub did not start ({}): {last}",
                exited.unwrap_or_else(|| "no address after 20 s".into())
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// utime + stime of a process, in clock ticks, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) may hold spaces and parentheses: count after its ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (1-based) are utime and stime; `rest` starts at field 3.
    let field = |i: usize| -> Result<u64, String> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: unexpected format"))
    };
    Ok(field(14)? + field(15)?)
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(100)
}

struct Client {
    http: ureq::Agent,
    url: String,
    auth: String,
    session: String,
}

impl Client {
    fn connect(url: &str, token: &str) -> Result<Client, String> {
        let http = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        let auth = format!("Bearer {token}");
        let resp = http
            .post(url)
            .set("Authorization", &auth)
            .set("Accept", "application/json, text/event-stream")
            .send_json(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "hubctl-bench", "version": "1"}}}))
            .map_err(|e| format!("initialize: {e}"))?;
        let session = resp
            .header("mcp-session-id")
            .ok_or("initialize: no Mcp-Session-Id in the answer")?
            .to_string();
        Ok(Client {
            http,
            url: url.to_string(),
            auth,
            session,
        })
    }

    /// DELETE the session, so that none is left open on the hub.
    fn close(&self) -> Result<(), String> {
        self.http
            .delete(&self.url)
            .set("Authorization", &self.auth)
            .set("Mcp-Session-Id", &self.session)
            .set("MCP-Protocol-Version", "2025-11-25")
            .call()
            .map(|_| ())
            .map_err(|e| format!("closing the session: {e}"))
    }
}

fn failure(kind: String, tool: &str, detail: impl std::fmt::Display) -> Failure {
    let mut text = format!("{tool}: {detail}");
    text.truncate(300);
    Failure { kind, text }
}

impl Session for Client {
    fn call(&self, id: u64, tool: &str, args: &Value) -> Result<Value, Failure> {
        let sent = self
            .http
            .post(&self.url)
            .set("Authorization", &self.auth)
            .set("Accept", "application/json, text/event-stream")
            .set("Mcp-Session-Id", &self.session)
            .set("MCP-Protocol-Version", "2025-11-25")
            .send_json(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}));
        let body = match sent {
            Ok(r) => r
                .into_string()
                .map_err(|e| failure("transport".into(), tool, e))?,
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                return Err(failure(format!("http_{code}"), tool, body));
            }
            Err(e) => return Err(failure("transport".into(), tool, e)),
        };
        let resp = response_of(&body)
            .ok_or_else(|| failure("unreadable".into(), tool, "unreadable answer"))?;
        if let Some(code) = resp["error"]["code"].as_i64() {
            return Err(failure(format!("rpc_{code}"), tool, &resp["error"]));
        }
        let result = &resp["result"];
        // Our tools answer `{ok, ...}` as structuredContent; a FastMCP server (the
        // reference) wraps its text there as `{"result": "<json>"}`: then the text.
        let structured = match result.get("structuredContent") {
            Some(v) if v.get("ok").is_some() => v.clone(),
            _ => result["content"][0]["text"]
                .as_str()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or(Value::Null),
        };
        // agent-hub-mcp (benched by benches/compare.sh) says `ok: false` without isError.
        if result["isError"] == Value::Bool(true) || structured["ok"] == Value::Bool(false) {
            let kind = structured["error"]
                .as_str()
                .unwrap_or("tool_error")
                .to_string();
            let shown = if structured.is_null() {
                &result["content"]
            } else {
                &structured
            };
            return Err(failure(kind, tool, shown));
        }
        Ok(structured)
    }

    fn end(&self) -> Result<(), String> {
        self.close()
    }
}

/// Approvals by a command (`--approve-with`).
struct CommandOperator(Vec<String>);

impl Operator for CommandOperator {
    fn approve(&self, round_id: &str) -> Result<(), Failure> {
        let Some((program, args)) = self.0.split_first() else {
            return Err(failure(
                "approve_cmd".into(),
                "operator_approve",
                "empty command",
            ));
        };
        // A few tries: a command writing SQLite beside a busy server (the
        // reference's hubctl) may find the database locked, as an operator would.
        let mut last = String::new();
        for _ in 0..5 {
            match Command::new(program).args(args).arg(round_id).output() {
                Ok(out) if out.status.success() => return Ok(()),
                Ok(out) => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    // The last line says why (a Python traceback ends with it).
                    last = err
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("failed")
                        .to_string();
                }
                Err(e) => return Err(failure("approve_cmd".into(), "operator_approve", e)),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(failure("approve_cmd".into(), "operator_approve", last))
    }
}

/// The operator, for the workflow scenario's approvals.
struct HttpOperator {
    http: ureq::Agent,
    base: String,
    auth: String,
}

impl Operator for HttpOperator {
    fn approve(&self, round_id: &str) -> Result<(), Failure> {
        let url = format!("{}/operator/rounds/{round_id}/approve", self.base);
        match self
            .http
            .post(&url)
            .set("Authorization", &self.auth)
            .send_json(json!({"note": "bench"}))
        {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, r)) => Err(failure(
                format!("http_{code}"),
                "operator_approve",
                r.into_string().unwrap_or_default(),
            )),
            Err(e) => Err(failure("transport".into(), "operator_approve", e)),
        }
    }
}

/// The JSON-RPC response in a body: plain JSON, or an SSE stream (a call that may
/// wait, like lock_acquire, streams), whose `data:` line with a result or error it is.
fn response_of(body: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return Some(v);
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("result").is_some() || v.get("error").is_some())
}

/// What the client threads share: when to stop.
struct Shared {
    stop: AtomicBool,
    errors: AtomicU64,
    max_errors: u64,
}

impl Shared {
    /// Count `n` more failures; past the allowance the run has failed, so everyone
    /// stops rather than run out the clock.
    fn failed(&self, n: u64) {
        if n == 0 {
            return;
        }
        if self.errors.fetch_add(n, Ordering::Relaxed) + n > self.max_errors {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// The agents of a live hub the clients use, its `/mcp` URL and the operator token.
#[allow(clippy::type_complexity)]
fn live_setup(
    dir: &Path,
    target: &Target,
    args: &BenchArgs,
) -> Result<(String, Vec<(String, String)>, String), CliError> {
    let loaded = bootstrap::prepare(dir, false)?;
    let all = &loaded.agents.agents;
    let entries: Vec<_> = match &args.agent {
        Some(id) => match loaded.agents.get(id) {
            Some(e) => vec![e.clone()],
            None => {
                return Err(CliError::UnknownAgent {
                    id: id.clone(),
                    file: loaded.dir.join("agents.env").display().to_string(),
                    known: all
                        .iter()
                        .map(|a| a.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        },
        None => {
            let bench: Vec<_> = all
                .iter()
                .filter(|a| a.id.starts_with("bench-"))
                .cloned()
                .collect();
            if bench.is_empty() {
                all.clone()
            } else {
                bench
            }
        }
    };
    if entries.is_empty() {
        return Err(CliError::Api("no agents in agents.env".into()));
    }
    // More sessions than max_sessions_per_agent would evict the agent's oldest
    // session, which may be a real client's.
    let per_agent = args.clients.div_ceil(entries.len());
    let max = loaded.settings.max_sessions_per_agent;
    if per_agent >= max {
        return Err(CliError::Api(format!(
            "{} clients over {} agent(s) is {per_agent} sessions per agent, which could evict \
             the agents' own sessions (max_sessions_per_agent: {max}); use fewer --clients or \
             add agents named bench-1, bench-2, ... (hubctl agent add)",
            args.clients,
            entries.len()
        )));
    }
    let url = format!("{}/mcp", hub_url(&loaded.dir, target, &loaded.settings));
    let agents = entries.into_iter().map(|e| (e.id, e.token)).collect();
    Ok((url, agents, loaded.operator_token))
}

/// A node's MCP endpoint from its base URL or the endpoint itself.
fn mcp_url(u: &str) -> String {
    let base = u.trim_end_matches('/').trim_end_matches("/mcp");
    format!("{base}/mcp")
}

/// Run the bench threads: one per client, or one per team of [`scenario::TEAM`] for
/// the workflow scenario. Returns what they measured, the seconds it took and the
/// server's CPU ticks meanwhile (when its pid is known).
fn run_clients(
    nodes: &[String],
    agents: &[(String, String)],
    args: &BenchArgs,
    shared: &Arc<Shared>,
    cpu_of: Option<u32>,
    operator_token: &str,
) -> Result<(Rec, f64, Option<u64>), CliError> {
    let duration = Duration::from_secs_f64(args.seconds);
    let name: Arc<str> = Arc::from(args.scenario.as_deref().unwrap_or(&args.tool));
    let workflow = &*name == "workflow";
    let units = if workflow {
        args.clients / scenario::TEAM
    } else {
        args.clients
    };
    // Everyone connects first; the clock and the CPU count start when all have.
    let ready = Arc::new(Barrier::new(units + 1));
    let base = nodes[0].trim_end_matches("/mcp").to_string();
    let run = crate::domain::ids::random_hex(3);
    let handles: Vec<_> = (0..units)
        .map(|u| {
            // Distinct agents while there are enough: client i uses agent i mod N.
            let members: Vec<usize> = if workflow {
                (u * scenario::TEAM..(u + 1) * scenario::TEAM).collect()
            } else {
                vec![u]
            };
            let team: Vec<(String, String)> = members
                .iter()
                .map(|c| agents[c % agents.len()].clone())
                .collect();
            let next = agents[(u + 1) % agents.len()].0.clone();
            let op: Box<dyn Operator + Send> = match &args.approve_with {
                Some(cmd) => Box::new(CommandOperator(
                    cmd.split_whitespace().map(String::from).collect(),
                )),
                None => Box::new(HttpOperator {
                    http: ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(30))
                        .build(),
                    base: base.clone(),
                    auth: format!("Bearer {operator_token}"),
                }),
            };
            let url = nodes[u % nodes.len()].clone();
            let (name, shared, ready) = (name.clone(), shared.clone(), ready.clone());
            let register = args.register;
            let run = run.clone();
            std::thread::spawn(move || -> Rec {
                let mut rec = Rec::default();
                let connected: Result<scenario::Team, String> = team
                    .iter()
                    .map(|(agent, token)| {
                        Client::connect(&url, token)
                            .map(|c| (agent.clone(), Box::new(c) as Box<dyn Session + Send>))
                    })
                    .collect();
                if let (true, Ok(sessions)) = (register, &connected) {
                    for (agent, s) in sessions {
                        let args = json!({"name": agent, "capabilities": "[\"bench\"]"});
                        if let Err(e) = s.call(0, "agent_register", &args) {
                            *rec.errors.entry(e.kind).or_default() += 1;
                            rec.first_error.get_or_insert(e.text);
                            shared.failed(1);
                        }
                    }
                }
                if let Err(e) = &connected {
                    *rec.errors.entry("connect".into()).or_default() += 1;
                    rec.first_error = Some(e.clone());
                    shared.failed(1);
                    shared.stop.store(true, Ordering::Relaxed);
                }
                ready.wait();
                let Ok(sessions) = connected else {
                    return rec;
                };
                let deadline = Instant::now() + duration;
                let mut i = 0u64;
                while Instant::now() < deadline && !shared.stop.load(Ordering::Relaxed) {
                    i += 1;
                    let before = rec.failed();
                    if workflow {
                        scenario::workflow_cycle(&mut rec, &sessions, op.as_ref(), &run, u, i);
                    } else {
                        let (me, s) = &sessions[0];
                        scenario::step(&name, &mut rec, s.as_ref(), u, me, &next, i);
                    }
                    shared.failed(rec.failed() - before);
                }
                for (_, s) in &sessions {
                    if let Err(e) = s.end() {
                        *rec.errors.entry("close".into()).or_default() += 1;
                        rec.first_error.get_or_insert(e);
                        shared.failed(1);
                    }
                }
                rec
            })
        })
        .collect();
    ready.wait();
    let started = Instant::now();
    let cpu0 = cpu_of.map(cpu_ticks).transpose().map_err(CliError::Api)?;
    let mut recs = Vec::new();
    let mut panicked = false;
    for h in handles {
        match h.join() {
            Ok(r) => recs.push(r),
            Err(_) => panicked = true,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if panicked {
        return Err(CliError::Api("a bench client panicked".into()));
    }
    let cpu = match (cpu_of, cpu0) {
        (Some(pid), Some(before)) => Some(
            cpu_ticks(pid)
                .map_err(CliError::Api)?
                .saturating_sub(before),
        ),
        _ => None,
    };
    Ok((scenario::merge(recs), elapsed, cpu))
}

pub(crate) fn run(
    dir: &Path,
    target: &Target,
    args: BenchArgs,
    as_json: bool,
) -> Result<(), CliError> {
    validate(target, &args)?;
    let mut throwaway = None;
    let mut lifted = Vec::new();
    if !args.live && (target.host.is_some() || target.port.is_some()) {
        // They may come from AGENT_HUB_HOST/PORT, so not an error; but say it.
        eprintln!(
            "note: --host/--port (or AGENT_HUB_HOST/AGENT_HUB_PORT) ignored: benching a \
             throwaway hub; use --url U --live to load an existing one"
        );
    }
    let (url, agents, server_pid, operator_token) = if args.live {
        let (url, agents, op) = live_setup(dir, target, &args)?;
        (url, agents, args.server_pid, op)
    } else {
        let (hub, url, agents, l, op) = start_throwaway(args.clients, args.config.as_deref())?;
        lifted = l;
        let pid = hub.pid();
        throwaway = Some(hub);
        (url, agents, pid, op)
    };
    if !as_json {
        match &throwaway {
            Some(hub) => println!(
                "throwaway hub at {url} (pid {}, {} agents bench-1..bench-{}, temp dir {}); \
                 per-agent quotas lifted so that they are not what is measured: {}",
                server_pid.unwrap_or_default(),
                agents.len(),
                agents.len(),
                hub.dir.display(),
                if lifted.is_empty() {
                    "none (--config sets them all)".to_string()
                } else {
                    lifted
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            None if args.also_url.is_empty() => println!("live hub at {url}"),
            None => println!(
                "live hub at {url} and {} more node(s); clients spread over them in turn",
                args.also_url.len()
            ),
        }
    }
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        errors: AtomicU64::new(0),
        max_errors: args.max_errors,
    });
    let nodes: Vec<String> = std::iter::once(url.clone())
        .chain(args.also_url.iter().map(|u| mcp_url(u)))
        .collect();
    let (rec, elapsed, cpu) =
        run_clients(&nodes, &agents, &args, &shared, server_pid, &operator_token)?;
    let temp_dir = throwaway.as_ref().map(|h| h.dir.display().to_string());
    if let Some(mut hub) = throwaway.take() {
        if let Err(e) = hub.stop() {
            eprintln!("warning: {e}");
        }
        drop(hub); // removes the temp dir
    }
    let mut all: Vec<u64> = rec.lat.values().flatten().copied().collect();
    all.sort_unstable();
    let calls = all.len() as u64;
    let errors = rec.failed();
    let cpu_us = cpu
        .filter(|_| calls > 0)
        .map(|t| t as f64 * 1e6 / ticks_per_second() as f64 / calls as f64);
    let calls_per_sec = calls as f64 / elapsed;
    let name = args.scenario.clone().unwrap_or_else(|| args.tool.clone());
    let mut tools: Vec<(&&str, &Vec<u64>)> = rec.lat.iter().collect();
    tools.sort();
    let p = scenario::percentile;
    if as_json {
        let per_tool: serde_json::Map<String, Value> = tools
            .iter()
            .map(|(t, l)| {
                (
                    t.to_string(),
                    json!({"calls": l.len(), "p50_ms": p(l, 0.50), "p90_ms": p(l, 0.90), "p99_ms": p(l, 0.99), "max_ms": p(l, 1.0)}),
                )
            })
            .collect();
        let mut v = json!({
            "tool": args.tool,
            "scenario": args.scenario,
            "clients": args.clients,
            "seconds": elapsed,
            "calls": calls,
            "errors": errors,
            "errors_by_kind": rec.errors,
            "calls_per_sec": calls_per_sec,
            "p50_ms": p(&all, 0.50),
            "p90_ms": p(&all, 0.90),
            "p99_ms": p(&all, 0.99),
            "max_ms": p(&all, 1.0),
            "per_tool": per_tool,
            "hub": if temp_dir.is_some() { "throwaway" } else { "live" },
            "url": url,
            "also_urls": nodes[1..],
            "server_pid": server_pid,
            "temp_dir": temp_dir,
            "quotas_lifted": lifted.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "first_error": rec.first_error,
        });
        if let Some(us) = cpu_us {
            v["server_cpu_us_per_call"] = json!(us);
        }
        if name == "workflow" {
            v["cycles"] = json!(rec.cycles);
            v["cycles_per_sec"] = json!(rec.cycles as f64 / elapsed);
        }
        println!("{v}");
    } else {
        let label = if args.scenario.is_some() {
            "scenario"
        } else {
            "tool"
        };
        println!(
            "{label}={name} clients={} seconds={:.1} calls={} errors={} calls/s={:.0} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms{}",
            args.clients,
            elapsed,
            calls,
            errors,
            calls_per_sec,
            p(&all, 0.50),
            p(&all, 0.90),
            p(&all, 0.99),
            p(&all, 1.0),
            cpu_us
                .map(|us| format!(" server_cpu={us:.1}us/call"))
                .unwrap_or_default(),
        );
        if name == "workflow" {
            println!(
                "cycles={} cycles/s={:.1}",
                rec.cycles,
                rec.cycles as f64 / elapsed
            );
        }
        if tools.len() > 1 {
            for (t, l) in &tools {
                println!(
                    "  {t:<20} calls={:<8} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
                    l.len(),
                    p(l, 0.50),
                    p(l, 0.90),
                    p(l, 0.99),
                    p(l, 1.0)
                );
            }
        }
        if !rec.errors.is_empty() {
            let mut kinds: Vec<_> = rec.errors.iter().collect();
            kinds.sort();
            let shown: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}={n}")).collect();
            println!("errors by kind: {}", shown.join(", "));
        }
    }
    if errors > args.max_errors {
        return Err(CliError::Api(format!(
            "{errors} call(s) failed (--max-errors {}); first: {}",
            args.max_errors,
            rec.first_error.clone().unwrap_or_default()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_plain_or_streamed() {
        assert!(response_of(r#"{"result":{}}"#).is_some());
        let sse = "event: message\ndata: {\"method\":\"notifications/progress\"}\n\n\
                   event: message\ndata: {\"id\":1,\"result\":{}}\n\n";
        assert_eq!(response_of(sse).unwrap()["id"], 1);
        assert!(response_of("garbage").is_none());
    }

    #[test]
    fn node_urls_name_their_mcp_endpoint() {
        for u in [
            "http://10.0.0.2:7777",
            "http://10.0.0.2:7777/",
            "http://10.0.0.2:7777/mcp",
        ] {
            assert_eq!(mcp_url(u), "http://10.0.0.2:7777/mcp", "{u}");
        }
    }

    #[test]
    fn cpu_ticks_of_self() {
        assert!(cpu_ticks(std::process::id()).is_ok());
    }

    #[test]
    fn config_lifts_only_unset_quotas() {
        let dir = std::env::temp_dir().join(format!("bench-cfg-{}", std::process::id()));
        fs::write(&dir, "send_burst: 7\ndurability: fast\n").unwrap();
        let (text, lifted) = throwaway_config(Some(&dir)).unwrap();
        let _ = fs::remove_file(&dir);
        let (s, _) = settings::parse("x", &text).unwrap();
        assert_eq!(s.send_burst, 7);
        assert_eq!(s.send_rate_per_second, 1_000_000);
        assert!(!lifted.iter().any(|(k, _)| k == "send_burst"));
        assert_eq!(lifted.len(), LIFTED.len() - 1);
        let (_, all) = throwaway_config(None).unwrap();
        assert_eq!(all.len(), LIFTED.len());
    }
}
