//! Operator webhooks (`notify:`): signed JSON bodies for the events a target wants,
//! retried after a server error, never blocking a tool call while the receiver is
//! down; `hubctl notify test`.

mod common;
use common::workflow::{draft, hubctl_ok, plan, submit_plan};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A local HTTP receiver answering each request with the next status of `statuses`
/// (then 200).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn start(statuses: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hook?key=SECRETPATH",
            listener.local_addr().unwrap()
        );
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        let statuses: Vec<u16> = statuses.to_vec();
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                seen.lock().unwrap().push(Got { headers, body });
                let status = statuses.next().unwrap_or(200);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver { url, got }
    }

    /// Wait until `n` requests came.
    fn wait(&self, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} requests: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn signed(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[test]
fn a_round_awaiting_approval_is_posted_signed_and_retried_after_a_500() {
    let rx = Receiver::start(&[500]);
    let config = format!(
        "notify:\n  - url: {}\n    events: [round_awaiting_approval, task_completed]\n    secret: s3cret-value\n",
        rx.url
    );
    let hub = Hub::start(&["disp", "alice"], &config);
    let d = hub.client("disp");
    draft(&d, "T-1");
    let round = submit_plan(&d, "T-1", plan(&[("alice", "code")]));
    // The first try got a 500; the retry (a second later) the same body.
    let got = rx.wait(2);
    assert_eq!(got[0].body, got[1].body);
    let body = got[1].json();
    assert_eq!(body["kind"], "round_awaiting_approval");
    assert_eq!(body["event"]["entity_id"], "T-1");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("hubctl list-rounds T-1"),
        "{body}"
    );
    assert_eq!(
        got[1].header("X-Agent-Hub-Signature-256"),
        Some(signed("s3cret-value", &got[1].body).as_str())
    );
    assert_eq!(
        got[1].header("X-Agent-Hub-Event"),
        Some("round_awaiting_approval")
    );
    assert_eq!(got[1].header("Content-Type"), Some("application/json"));
    // No token anywhere in what went out.
    let all = String::from_utf8_lossy(&got[1].body).to_string();
    for secret in [token("disp"), token("alice"), hub.operator_token()] {
        assert!(!all.contains(&secret));
    }
    // Only the kinds asked for: nothing for the round's approval.
    hubctl_ok(&hub, &["approve", &round]);
    let out = hubctl_ok(&hub, &["notify", "test"]);
    assert!(out.contains("ok (HTTP 200)"), "{out}");
    assert!(
        !out.contains("SECRETPATH"),
        "the URL's path is never shown: {out}"
    );
    // Another wanted event: had the approval been sent, it would come before it.
    draft(&d, "T-2");
    submit_plan(&d, "T-2", plan(&[("alice", "more")]));
    let got = rx.wait(4);
    assert_eq!(got[2].json()["kind"], "test");
    assert_eq!(got[3].json()["event"]["entity_id"], "T-2", "{got:?}");
    assert_eq!(got.len(), 4, "no round_approved: {got:?}");
}

#[test]
fn a_dead_receiver_blocks_nothing_and_notify_test_says_so() {
    // A port that refuses connections.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = format!("notify:\n  - url: http://{dead}/hook\n    events: [all]\n");
    let hub = Hub::start(&["disp", "alice"], &config);
    let d = hub.client("disp");
    for i in 0..20 {
        draft(&d, &format!("T-{i}"));
        submit_plan(&d, &format!("T-{i}"), plan(&[("alice", "code")]));
    }
    let out = hub.hubctl(&["notify", "test"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stderr.contains("1 of 1 webhooks failed"), "{stderr}");
    // Without webhooks, the test says how to add one.
    let plain = Hub::start(&["alice"], "");
    let out = plain.hubctl(&["notify", "test"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no webhooks"));
}
