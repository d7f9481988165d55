//! What every HTTP worker shares: the hub handle, sessions, tokens, and the
//! request limits; and the allowed browser origins. Route files import this, never
//! `server.rs`.

use crate::actors::Hub;
use crate::auth::TokenIndex;
use crate::mcp::session::Sessions;
use std::sync::Arc;
use std::time::Duration;

/// Origins a browser page may call us from.
#[derive(Debug, Clone)]
pub(crate) enum Origins {
    Any,
    List(Vec<String>),
}

impl Origins {
    /// The configured list, or the loopback origins of the port we listen on.
    pub(crate) fn new(configured: Option<&[String]>, port: u16) -> Origins {
        match configured {
            Some(list) if list.iter().any(|o| o == "*") => Origins::Any,
            Some(list) => Origins::List(list.to_vec()),
            None => Origins::List(vec![
                format!("http://localhost:{port}"),
                format!("http://127.0.0.1:{port}"),
                format!("http://[::1]:{port}"),
            ]),
        }
    }

    pub(crate) fn allows(&self, origin: &str) -> bool {
        match self {
            Origins::Any => true,
            Origins::List(l) => {
                let o = origin.trim_end_matches('/');
                l.iter().any(|a| a.eq_ignore_ascii_case(o))
            }
        }
    }
}

/// Shared by every worker (actix clones the `web::Data` Arc).
pub(crate) struct AppState {
    pub hub: Hub,
    pub sessions: Arc<Sessions>,
    pub tokens: TokenIndex,
    pub origins: Origins,
    pub max_body_bytes: usize,
    pub sse_keepalive: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_origins_are_loopback_of_our_port() {
        let o = Origins::new(None, 8765);
        assert!(o.allows("http://localhost:8765"));
        assert!(o.allows("http://127.0.0.1:8765/"));
        assert!(!o.allows("http://localhost:9999"));
        assert!(!o.allows("http://evil.example"));
        assert!(Origins::new(Some(&["*".to_string()]), 1).allows("http://evil.example"));
    }
}
