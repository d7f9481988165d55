//! Test harness: a real `hubctl serve` child process on port 0 with its own config
//! directory, and a small MCP client over real HTTP (ureq). Tests talk to the hub
//! the way users do.
#![allow(dead_code)] // each test file uses a different part of the harness

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_hubctl");
pub const ACCEPT: &str = "application/json, text/event-stream";

pub fn token(agent: &str) -> String {
    format!("tok-{agent}-0123456789abcdef")
}

/// A running hub.
pub struct Hub {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub base: String,
    pub url: String,
    child: Option<Child>,
}

/// Write agents.env (tokens from [`token`]) and config.yaml into a fresh directory.
pub fn config_dir(agents: &[&str], config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let env: String = agents
        .iter()
        .map(|a| format!("{a}={}\n", token(a)))
        .collect();
    write_private(&dir.path().join("agents.env"), &env);
    std::fs::write(dir.path().join("config.yaml"), config).expect("write config");
    dir
}

pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Spawn `hubctl serve` on port 0 and wait for its "listening on" line.
/// Returns the child and the URL, or the child's stderr when it exits first.
pub fn spawn_serve(dir: &Path, extra_env: &[(&str, &str)]) -> Result<(Child, String), String> {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .arg("--config-dir")
        .arg(dir)
        .arg("--db")
        .arg(dir.join("hub.db"))
        .env_remove("AGENT_HUB_HOST")
        .env_remove("AGENT_HUB_PORT")
        .env_remove("AGENT_HUB_DB")
        .env_remove("AGENT_HUB_CONFIG_DIR")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    // Keep draining stdout so the pipe never fills.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("agent-hub listening on ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    // Keep draining stderr too; its text is the answer when the server refuses to start.
    let errors = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(url) => Ok((child, url)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(errors.join().unwrap_or_default())
        }
    }
}

impl Hub {
    pub fn start(agents: &[&str], config: &str) -> Hub {
        Hub::start_in(config_dir(agents, config))
    }

    pub fn start_in(dir: tempfile::TempDir) -> Hub {
        let (child, url) =
            spawn_serve(dir.path(), &[]).unwrap_or_else(|e| panic!("hub did not start: {e}"));
        let base = url.trim_end_matches("/mcp").to_string();
        let port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        Hub {
            dir,
            port,
            base,
            url,
            child: Some(child),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// SIGKILL: no flush, no clean shutdown.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().expect("wait")
    }

    /// Kill -9 and start again on the same directory and database.
    pub fn restart(mut self) -> Hub {
        self.kill9();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp"));
        Hub::start_in(dir)
    }

    pub fn client(&self, agent: &str) -> Client {
        Client::connect(&self.url, &token(agent), "2025-11-25")
    }

    pub fn operator_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("operator.token"))
            .expect("operator.token")
            .trim()
            .to_string()
    }

    /// Run `hubctl` against this hub.
    pub fn hubctl(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config-dir")
            .arg(self.dir.path())
            .args(["--port", &self.port.to_string()])
            .args(args)
            .env_remove("AGENT_HUB_HOST")
            .env_remove("AGENT_HUB_PORT")
            .output()
            .expect("run hubctl")
    }

    pub fn operator_get(&self, path: &str) -> Value {
        let r = post_like(
            "GET",
            &format!("{}{path}", self.base),
            &[(
                "Authorization",
                &format!("Bearer {}", self.operator_token()),
            )],
            "",
        );
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A raw HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    /// The JSON-RPC error code of the body.
    pub fn rpc_code(&self) -> i64 {
        self.json()["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no error code: {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

fn to_resp(r: Result<ureq::Response, ureq::Error>) -> Resp {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| {
            resp.header(&n)
                .map(|v| (n.to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    let body = resp.into_string().unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

/// Any method, any headers, any body.
pub fn post_like(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let r = if method == "GET" || method == "DELETE" {
        req.call()
    } else {
        req.send_string(body)
    };
    to_resp(r)
}

/// An MCP client with one session.
pub struct Client {
    pub url: String,
    pub token: String,
    pub session: String,
    pub version: String,
    http: ureq::Agent,
}

impl Client {
    pub fn connect(url: &str, token: &str, version: &str) -> Client {
        let http = agent();
        let r = to_resp(
            http.post(url)
                .set("Authorization", &format!("Bearer {token}"))
                .set("Accept", ACCEPT)
                .set("Content-Type", "application/json")
                .send_string(&init_body(version)),
        );
        assert_eq!(r.status, 200, "initialize: {}", r.body);
        let session = r
            .header("mcp-session-id")
            .expect("session header")
            .to_string();
        Client {
            url: url.to_string(),
            token: token.to_string(),
            session,
            version: r.json()["result"]["protocolVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            http,
        }
    }

    /// POST a raw body on this session with the usual headers.
    pub fn post(&self, body: &str) -> Resp {
        to_resp(
            self.http
                .post(&self.url)
                .set("Authorization", &format!("Bearer {}", self.token))
                .set("Accept", ACCEPT)
                .set("Content-Type", "application/json")
                .set("Mcp-Session-Id", &self.session)
                .send_string(body),
        )
    }

    /// A JSON-RPC request; returns the whole response object.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        let r = self.post(
            &json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string(),
        );
        assert_eq!(r.status, 200, "{method}: {}", r.body);
        r.json()
    }

    /// `tools/call`; returns (structuredContent or parsed text, isError).
    pub fn call_raw(&self, tool: &str, args: Value) -> (Value, bool) {
        let v = self.rpc("tools/call", json!({"name": tool, "arguments": args}));
        let result = &v["result"];
        assert!(result.is_object(), "{tool}: no result: {v}");
        let text: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().expect("text content"))
                .expect("JSON text");
        if let Some(sc) = result.get("structuredContent") {
            assert_eq!(sc, &text, "structuredContent equals the text");
        }
        (text, result["isError"] == Value::Bool(true))
    }

    /// A successful tool call's object (panics on a refusal).
    pub fn call(&self, tool: &str, args: Value) -> Value {
        let (v, err) = self.call_raw(tool, args.clone());
        assert!(!err && v["ok"] == true, "{tool}({args}) failed: {v}");
        v
    }

    /// A refused tool call's error code.
    pub fn refused(&self, tool: &str, args: Value) -> String {
        let (v, err) = self.call_raw(tool, args.clone());
        assert!(err && v["ok"] == false, "{tool}({args}) should fail: {v}");
        v["error"].as_str().unwrap_or_default().to_string()
    }
}

pub fn init_body(version: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "tests", "version": "1"}}})
    .to_string()
}
