//! Configuration at start-up: errors that stop the server (config.yaml values,
//! agents.env lines), warnings that do not, and where each setting comes from
//! (flag > environment variable > config.yaml > default).

mod common;
use common::*;
use serde_json::json;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

// ---- Config errors ---------------------------------------------------------------

fn broken(agents_env: &str, config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("agents.env"), agents_env);
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    start_error(dir.path())
}

#[test]
fn negative_max_rounds_stops_start_up() {
    let e = broken("alice=tok-alice-0123456789abcdef\n", "max_rounds: -1\n");
    assert!(e.contains("max_rounds"), "{e}");
}

#[test]
fn unknown_durability_stops_start_up() {
    let e = broken("alice=tok-alice-0123456789abcdef\n", "durability: maybe\n");
    assert!(e.contains("durability"), "{e}");
}

#[test]
fn wrongly_typed_values_stop_start_up() {
    for (cfg, key) in [
        ("max_body_bytes: lots\n", "max_body_bytes"),
        (
            "session_idle_timeout_secs: -5\n",
            "session_idle_timeout_secs",
        ),
        ("allowed_origins: 5\n", "allowed_origins"),
        ("lease_minutes: soon\n", "lease_minutes"),
    ] {
        let e = broken("alice=tok-alice-0123456789abcdef\n", cfg);
        assert!(e.contains(key), "{cfg}: {e}");
    }
}

#[test]
fn malformed_agents_env_line_names_file_and_line() {
    let e = broken(
        "# comment\nalice=tok-alice-0123456789abcdef\nno-equals-sign\n",
        "",
    );
    assert!(e.contains("agents.env"), "{e}");
    assert!(
        e.contains("agents.env:3") || e.contains("line 3"),
        "line number 3: {e}"
    );
}

#[test]
fn duplicate_agent_id_stops_start_up() {
    let e = broken(
        "alice=tok-alice-0123456789abcdef\nalice=tok-other-0123456789abcdef\n",
        "",
    );
    assert!(e.contains("alice"), "{e}");
}

#[test]
fn duplicate_token_stops_start_up() {
    let e = broken(
        "alice=tok-same-0123456789abcdef\nbob=tok-same-0123456789abcdef\n",
        "",
    );
    assert!(!e.trim().is_empty(), "a message on stderr");
    assert!(
        !e.contains("tok-same-0123456789abcdef"),
        "never print tokens: {e}"
    );
}

#[test]
fn unknown_key_is_a_warning() {
    let hub = Hub::start(&["alice"], "max_roundz: 4\n");
    let err = hub.out.wait_stderr("max_roundz", Duration::from_secs(10));
    assert!(err.contains("max_roundz"), "warning naming the key: {err}");
    assert_eq!(
        hub.client("alice").rpc("ping", json!({}))["result"],
        json!({})
    );
}

#[test]
fn loose_agents_env_permissions_are_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = config_dir(&["alice"], "");
    std::fs::set_permissions(
        dir.path().join("agents.env"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let hub = Hub::start_in(dir);
    let err = hub.out.wait_stderr("chmod 600", Duration::from_secs(10));
    assert!(err.contains("chmod 600"), "{err}");
    assert_eq!(
        hub.client("alice").rpc("ping", json!({}))["result"],
        json!({})
    );
}

#[test]
fn comments_quotes_and_blank_lines_in_agents_env() {
    let dir = tempfile::tempdir().unwrap();
    write_private(
        &dir.path().join("agents.env"),
        "# agents\n\nalice=\"tok-alice-0123456789abcdef\"\n  # indented comment\nbob=tok-bob-0123456789abcdef\n",
    );
    let hub = Hub::start_in(dir);
    assert_eq!(
        hub.client("alice").call("agent_heartbeat", json!({}))["agent_id"],
        "alice"
    );
    assert_eq!(
        hub.client("bob").call("agent_heartbeat", json!({}))["agent_id"],
        "bob"
    );
}

// ---- Where settings come from ----------------------------------------------------

fn serve_with(dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut a: Vec<OsString> = vec!["serve".into(), "--config-dir".into(), dir.into()];
    a.extend(extra_args.iter().map(OsString::from));
    spawn(dir, &a, env).unwrap_or_else(|e| panic!("start {extra_args:?} {env:?}: {e:?}"))
}

fn host_of(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap();
    rest.rsplit_once(':').unwrap().0
}

#[test]
fn host_flag_beats_env_beats_config_file() {
    // All of 127.0.0.0/8 is loopback on Linux.
    let dir = config_dir(&["alice"], "host: 127.0.0.2\n");
    let db = dir.path().join("hub.db");
    let db = db.to_str().unwrap();
    let r = serve_with(dir.path(), &["--port", "0", "--db", db], &[]);
    assert_eq!(host_of(&r.url), "127.0.0.2", "config.yaml over the default");
    r.stop();
    let r = serve_with(
        dir.path(),
        &["--port", "0", "--db", db],
        &[("AGENT_HUB_HOST", "127.0.0.3")],
    );
    assert_eq!(host_of(&r.url), "127.0.0.3", "env over config.yaml");
    let c = Client::connect(&r.url, &token("alice"), LATEST);
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
    r.stop();
    let r = serve_with(
        dir.path(),
        &["--port", "0", "--db", db, "--host", "127.0.0.4"],
        &[("AGENT_HUB_HOST", "127.0.0.3")],
    );
    assert_eq!(host_of(&r.url), "127.0.0.4", "flag over env");
    r.stop();
}

#[test]
fn port_flag_beats_env_beats_config_file() {
    // A port held by this test: a hub that tried to bind it could not start.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = held.local_addr().unwrap().port().to_string();
    let dir = config_dir(&["alice"], &format!("port: {busy}\n"));
    let db = dir.path().join("hub.db");
    let db = db.to_str().unwrap();
    let r = serve_with(
        dir.path(),
        &["--host", "127.0.0.1", "--db", db],
        &[("AGENT_HUB_PORT", "0")],
    );
    assert_ne!(port_of(&r.url).to_string(), busy, "env over config.yaml");
    r.stop();
    let r = serve_with(
        dir.path(),
        &["--host", "127.0.0.1", "--db", db, "--port", "0"],
        &[("AGENT_HUB_PORT", &busy)],
    );
    assert_ne!(port_of(&r.url).to_string(), busy, "flag over env");
    r.stop();
    // And config.yaml alone is used: the busy port makes the start fail.
    let a: Vec<OsString> = os_args(&[
        &"serve",
        &"--host",
        &"127.0.0.1",
        &"--config-dir",
        &dir.path(),
        &"--db",
        &db,
    ]);
    match spawn(dir.path(), &a, &[]) {
        Ok(mut r) => {
            let _ = r.child.kill();
            panic!(
                "started on {} although config.yaml names a busy port",
                r.url
            );
        }
        Err(f) => assert!(
            f.status.is_some_and(|s| !s.success()),
            "must exit non-zero: {f:?}"
        ),
    }
    drop(held);
}

#[test]
fn db_flag_beats_env_beats_config_file() {
    let dir = config_dir(&["alice"], "");
    let p = |f: &str| dir.path().join(f);
    std::fs::write(
        p("config.yaml"),
        format!("db: {}\n", p("file.db").display()),
    )
    .unwrap();
    let r = serve_with(dir.path(), &["--host", "127.0.0.1", "--port", "0"], &[]);
    r.stop();
    assert!(p("file.db").exists(), "config.yaml over the default");
    let env_db = p("env.db");
    let r = serve_with(
        dir.path(),
        &["--host", "127.0.0.1", "--port", "0"],
        &[("AGENT_HUB_DB", env_db.to_str().unwrap())],
    );
    r.stop();
    assert!(env_db.exists(), "env over config.yaml");
    let flag_db = p("flag.db");
    let r = serve_with(
        dir.path(),
        &[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            flag_db.to_str().unwrap(),
        ],
        &[("AGENT_HUB_DB", p("other.db").to_str().unwrap())],
    );
    r.stop();
    assert!(flag_db.exists(), "flag over env");
    assert!(!p("other.db").exists(), "flag over env");
}

#[test]
fn config_dir_from_env_and_flag() {
    let from_env = config_dir(&["alice"], "");
    let from_flag = config_dir(&["bob"], "");
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("hub.db");
    let base = [
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        db.to_str().unwrap(),
    ];
    let r = spawn(
        home.path(),
        &base.iter().map(OsString::from).collect::<Vec<_>>(),
        &[("AGENT_HUB_CONFIG_DIR", from_env.path().to_str().unwrap())],
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let c = Client::connect(&r.url, &token("alice"), LATEST);
    assert_eq!(c.call("agent_heartbeat", json!({}))["agent_id"], "alice");
    r.stop();
    let mut a: Vec<OsString> = base.iter().map(OsString::from).collect();
    a.push("--config-dir".into());
    a.push(from_flag.path().into());
    let r = spawn(
        home.path(),
        &a,
        &[("AGENT_HUB_CONFIG_DIR", from_env.path().to_str().unwrap())],
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let c = Client::connect(&r.url, &token("bob"), LATEST);
    assert_eq!(c.call("agent_heartbeat", json!({}))["agent_id"], "bob");
    let refused = request(
        "POST",
        &r.url,
        &std_headers(&bearer("alice")),
        &init_body(LATEST),
    );
    assert_eq!(refused.status, 401, "alice is not in the flag's agents.env");
    r.stop();
}

#[test]
fn config_yaml_limits_take_effect() {
    let hub = Hub::start(
        &["alice"],
        "max_body_bytes: 4096\nsse_keepalive_secs: 1\nsession_idle_timeout_secs: 600\nmax_rounds: 5\n",
    );
    let c = hub.client("alice");
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"p":"{}"}}}}"#,
        "x".repeat(5000)
    );
    assert_eq!(c.post(&big).status, 413);
    let s = c.open_stream().expect("GET");
    s.read_comments(1, Duration::from_secs(10));
}
