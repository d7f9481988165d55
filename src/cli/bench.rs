//! `hubctl bench`: load a running hub over real HTTP and print throughput and latency.
//! Each client is a thread with its own keep-alive connection and MCP session, calling
//! one tool in a loop until the time is up. Numbers include the client's own CPU
//! (same machine), so compare runs made the same way rather than absolute values.

use super::{hub_url, CliError, Target};
use crate::config::bootstrap;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Concurrent clients (threads, one session each)
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// How long to run
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Tool to call: hub_status, agent_heartbeat, message_send (to the calling agent
    /// itself), inbox_pull, or lock_cycle (lock_acquire with wait + lock_release of
    /// one key shared by every client: fully contended)
    #[arg(long, default_value = "hub_status")]
    pub tool: String,
    /// Agent whose token every client uses [default: clients take the agents of
    /// agents.env in turn, so that max_sessions_per_agent is not the limit measured]
    #[arg(long)]
    pub agent: Option<String>,
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
            .map_err(|e| e.to_string())?;
        let session = resp
            .header("mcp-session-id")
            .unwrap_or_default()
            .to_string();
        Ok(Client {
            http,
            url: url.to_string(),
            auth,
            session,
        })
    }

    fn call(&self, id: u64, tool: &str, args: &Value) -> Result<(), String> {
        let resp: Value = self
            .http
            .post(&self.url)
            .set("Authorization", &self.auth)
            .set("Accept", "application/json, text/event-stream")
            .set("Mcp-Session-Id", &self.session)
            .set("MCP-Protocol-Version", "2025-11-25")
            .send_json(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}))
            .map_err(|e| e.to_string())?
            .into_json()
            .map_err(|e| e.to_string())?;
        if resp["result"]["isError"] == Value::Bool(true) || resp.get("error").is_some() {
            return Err(resp.to_string());
        }
        Ok(())
    }
}

fn args_for(tool: &str, agent: &str, client: usize, i: u64) -> Value {
    match tool {
        "message_send" => {
            json!({"to_agent": agent, "subject": "bench", "body": format!("client {client} call {i}")})
        }
        "inbox_pull" => json!({"limit": 1}),
        _ => json!({}),
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

pub(crate) fn run(dir: &Path, target: &Target, args: BenchArgs) -> Result<(), CliError> {
    let loaded = bootstrap::prepare(dir, false)?;
    let entries: Vec<_> = match &args.agent {
        Some(id) => loaded.agents.get(id).into_iter().cloned().collect(),
        None => loaded.agents.agents.clone(),
    };
    if entries.is_empty() {
        return Err(CliError::Api("no such agent in agents.env".into()));
    }
    let url = format!("{}/mcp", hub_url(&loaded.dir, target, &loaded.settings));
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let tool: Arc<str> = Arc::from(args.tool.as_str());
    let started = Instant::now();
    let handles: Vec<_> = (0..args.clients.max(1))
        .map(|c| {
            let entry = &entries[c % entries.len()];
            let (url, token, agent, tool) = (
                url.clone(),
                entry.token.clone(),
                entry.id.clone(),
                tool.clone(),
            );
            std::thread::spawn(move || -> Result<(Vec<u64>, u64), String> {
                let client = Client::connect(&url, &token)?;
                let mut lat = Vec::new();
                let mut errors = 0;
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    let t = Instant::now();
                    let done = if &*tool == "lock_cycle" {
                        // One contended critical section: wait for the shared key, release it.
                        client
                            .call(i, "lock_acquire", &json!({"lock_key": "bench", "ttl_seconds": 30, "wait_seconds": 25}))
                            .and_then(|()| client.call(i, "lock_release", &json!({"lock_key": "bench"})))
                    } else {
                        client.call(i, &tool, &args_for(&tool, &agent, c, i))
                    };
                    match done {
                        Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                        Err(_) => errors += 1,
                    }
                }
                Ok((lat, errors))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        match h.join() {
            Ok(Ok((lat, e))) => {
                all.extend(lat);
                errors += e;
            }
            Ok(Err(e)) => {
                return Err(CliError::Unreachable {
                    url: url.clone(),
                    detail: e,
                })
            }
            Err(_) => return Err(CliError::Api("a bench client panicked".into())),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "tool={} clients={} seconds={:.1} calls={} errors={} calls/s={:.0} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
        args.tool,
        args.clients,
        elapsed,
        all.len(),
        errors,
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
    );
    Ok(())
}
