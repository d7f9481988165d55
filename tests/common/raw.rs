//! Raw HTTP/1.1 over a `TcpStream`, for what ureq will not send: a body shorter than
//! its `Content-Length`, a body that stalls, a chunked body. The answer is read with
//! a deadline, so a server that waits for the rest of a body fails the test instead
//! of hanging it.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// An answer read off a raw connection.
#[derive(Debug)]
pub(crate) struct RawResp {
    pub status: u16,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
    /// From the first byte sent to the end of the answer.
    pub elapsed: Duration,
}

impl RawResp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// One connection to `127.0.0.1:port`.
pub(crate) struct RawConn {
    stream: TcpStream,
    started: Instant,
}

impl RawConn {
    pub(crate) fn open(port: u16) -> RawConn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            started: Instant::now(),
        }
    }

    /// A connection whose receive buffer is shrunk to 4 KiB before it connects (so
    /// that the window it offers stays small): a client that does not read then
    /// stops the server's writes after a few KiB instead of megabytes of kernel buffers.
    pub(crate) fn open_small_window(port: u16) -> RawConn {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket calls on a descriptor we create and then hand to
        // TcpStream, which owns (and closes) it; pointers are to live locals.
        let stream = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket");
            let size: libc::c_int = 4096;
            let rc = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                std::ptr::addr_of!(size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "SO_RCVBUF");
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
                },
                sin_zero: [0; 8],
            };
            let rc = libc::connect(
                fd,
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
            TcpStream::from_raw_fd(fd)
        };
        RawConn {
            stream,
            started: Instant::now(),
        }
    }

    /// Send the request line and headers (`Host` added), then `body_start`, and leave
    /// the connection open with the rest of the body unsent.
    pub(crate) fn send_head(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body_start: &[u8],
    ) {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.started = Instant::now();
        self.stream.write_all(head.as_bytes()).expect("send head");
        self.send(body_start);
    }

    /// More bytes; a server that already closed the connection is not an error here
    /// (the answer it sent first is what the test reads).
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.stream.write_all(bytes) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
            Err(e) => panic!("send: {e}"),
        }
    }

    /// The next answer, or `None` if none is complete within `timeout`.
    pub(crate) fn read_response(&mut self, timeout: Duration) -> Option<RawResp> {
        let end = Instant::now() + timeout;
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.read_more(&mut buf, end) {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line: {head:?}"));
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            if !self.read_more(&mut buf, end) {
                return None;
            }
        }
        Some(RawResp {
            status,
            headers,
            body: String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string(),
            elapsed: self.started.elapsed(),
        })
    }

    /// The response head (status line and headers) only, leaving the body unread.
    pub(crate) fn read_head(&mut self, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        let mut buf = Vec::new();
        while find(&buf, b"\r\n\r\n").is_none() {
            let mut byte = [0u8; 1];
            self.stream
                .set_read_timeout(Some(
                    end.saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1)),
                ))
                .expect("timeout");
            match self.stream.read(&mut byte) {
                Ok(1) => buf.push(byte[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&buf).to_string()
    }

    /// Whether the server closes the connection (EOF or reset) within `timeout`.
    pub(crate) fn closed_within(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut buf = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Append what arrives before `end`; false on timeout or end of stream.
    fn read_more(&mut self, buf: &mut Vec<u8>, end: Instant) -> bool {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.stream.set_read_timeout(Some(left)).expect("timeout");
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One chunk of a chunked body.
pub(crate) fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// A `tools/call` of `tool` on `c`'s session, sent on a raw connection to `port`
/// (one with a small receive window if `small_window`); the answer is left unread
/// unless the caller reads it. For clients that hang up or never read.
pub(crate) fn raw_tool_call(
    port: u16,
    c: &super::Client,
    tool: &str,
    args: serde_json::Value,
    small_window: bool,
) -> RawConn {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": args}})
    .to_string();
    let mut headers: Vec<(String, String)> = c.headers();
    headers.push(("Content-Length".into(), body.len().to_string()));
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut conn = if small_window {
        RawConn::open_small_window(port)
    } else {
        RawConn::open(port)
    };
    conn.send_head("POST", "/mcp", &refs, body.as_bytes());
    conn
}
