//! A round-robin TCP proxy on loopback, as a load balancer in front of cluster
//! nodes (shared/spec/cluster.md §4 item 2): each new connection goes to the next
//! healthy backend. Health is checked as a balancer does: `GET /healthz` every
//! 100 ms (a stopping node answers 503 there while it still serves); a backend
//! that refuses the connection is skipped too. Bytes are relayed both ways as they
//! come (SSE included).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) struct Proxy {
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    backends: Arc<Mutex<Vec<u16>>>,
    /// Backends whose last health check failed.
    unhealthy: Arc<Mutex<std::collections::HashSet<u16>>>,
    /// Connections relayed, per backend port.
    served: Arc<Mutex<std::collections::HashMap<u16, usize>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub(crate) fn start(backends: &[u16]) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("addr").port();
        let proxy = Proxy {
            port,
            base: format!("http://127.0.0.1:{port}"),
            backends: Arc::new(Mutex::new(backends.to_vec())),
            unhealthy: Arc::default(),
            served: Arc::default(),
            stop: Arc::default(),
        };
        let (list, sick, stop) = (
            proxy.backends.clone(),
            proxy.unhealthy.clone(),
            proxy.stop.clone(),
        );
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_millis(500))
                .build();
            while !stop.load(Ordering::Acquire) {
                let ports = list.lock().unwrap().clone();
                for port in ports {
                    let ok = agent
                        .get(&format!("http://127.0.0.1:{port}/healthz"))
                        .call()
                        .is_ok();
                    let mut sick = sick.lock().unwrap();
                    if ok {
                        sick.remove(&port);
                    } else {
                        sick.insert(port);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (list, sick, served, stop) = (
            proxy.backends.clone(),
            proxy.unhealthy.clone(),
            proxy.served.clone(),
            proxy.stop.clone(),
        );
        std::thread::spawn(move || {
            let next = AtomicUsize::new(0);
            for client in listener.incoming() {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                let all = list.lock().unwrap().clone();
                let healthy: Vec<u16> = {
                    let sick = sick.lock().unwrap();
                    all.iter().copied().filter(|p| !sick.contains(p)).collect()
                };
                // None healthy: try them all (refusals are skipped).
                let ports = if healthy.is_empty() { all } else { healthy };
                let first = next.fetch_add(1, Ordering::Relaxed);
                let served = served.clone();
                std::thread::spawn(move || relay(client, &ports, first, &served));
            }
        });
        proxy
    }

    /// `http://127.0.0.1:PORT/mcp`
    pub(crate) fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// Replace the backends (a node restarted on a new port).
    pub(crate) fn set_backends(&self, ports: &[u16]) {
        *self.backends.lock().unwrap() = ports.to_vec();
    }

    /// Connections relayed to `port` so far.
    pub(crate) fn served(&self, port: u16) -> usize {
        self.served.lock().unwrap().get(&port).copied().unwrap_or(0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Connect to the backends in turn from `first`; relay until both sides close.
fn relay(
    client: TcpStream,
    ports: &[u16],
    first: usize,
    served: &Mutex<std::collections::HashMap<u16, usize>>,
) {
    let backend = (0..ports.len()).find_map(|i| {
        let port = ports[(first + i) % ports.len()];
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        *served.lock().unwrap().entry(port).or_default() += 1;
        Some(conn)
    });
    let Some(backend) = backend else {
        return; // Every backend refused: the client sees the connection closed.
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let (c2, b2) = match (client.try_clone(), backend.try_clone()) {
        (Ok(c), Ok(b)) => (c, b),
        _ => return,
    };
    let up = std::thread::spawn(move || pipe(client, backend));
    pipe(b2, c2);
    let _ = up.join();
}

/// Copy `from` into `to` until `from` closes, then close `to`'s write side.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
