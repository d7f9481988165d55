//! `agents.env`: one `AGENT_ID=TOKEN` per line, `#` comments, optional surrounding
//! quotes on the token. Parsed at start-up and on each reload (the reference re-read
//! it per call).

use super::ConfigError;
use crate::domain::ids::is_valid_agent_id;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentEntry {
    pub id: String,
    pub token: String,
    /// 1-based line number, for error messages.
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AgentsFile {
    pub agents: Vec<AgentEntry>,
}

impl AgentsFile {
    pub(crate) fn get(&self, id: &str) -> Option<&AgentEntry> {
        self.agents.iter().find(|a| a.id == id)
    }
}

fn unquote(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// Parse the text of `agents.env`; `file` is only used in error messages.
pub(crate) fn parse(file: &str, text: &str) -> Result<AgentsFile, ConfigError> {
    let err = |line: usize, reason: String| ConfigError::AgentsLine {
        file: file.to_string(),
        line,
        reason,
    };
    let mut agents = Vec::new();
    let mut ids = HashSet::new();
    let mut tokens = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((id, token)) = line.split_once('=') else {
            return Err(err(line_no, "expected AGENT_ID=TOKEN".into()));
        };
        let id = id.trim();
        let token = unquote(token.trim());
        if !is_valid_agent_id(id) {
            return Err(err(
                line_no,
                format!("invalid agent id {id:?}: use 1-64 characters of A-Z a-z 0-9 . _ -"),
            ));
        }
        if id == "hub" {
            return Err(err(
                line_no,
                "agent id `hub` is reserved for the hub's own notices".into(),
            ));
        }
        if token.is_empty() || token.chars().any(char::is_whitespace) {
            return Err(err(
                line_no,
                format!("token of {id} must be non-empty and contain no spaces"),
            ));
        }
        if !ids.insert(id.to_string()) {
            return Err(err(line_no, format!("agent id {id} is listed twice")));
        }
        if !tokens.insert(token.to_string()) {
            // Never echo the token itself.
            return Err(err(
                line_no,
                format!("the token of {id} is already used by another agent"),
            ));
        }
        agents.push(AgentEntry {
            id: id.to_string(),
            token: token.to_string(),
            line: line_no,
        });
    }
    Ok(AgentsFile { agents })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_quotes_and_export() {
        let f = parse(
            "agents.env",
            "# header\n\nclaude-code=abc\ncodex = \"quoted token\"x\nexport bot='t2'\n",
        );
        // A token with a space inside is refused even when quoted text follows.
        assert!(f.is_err());
        let f = parse(
            "agents.env",
            "# c\nclaude-code=abc\ncodex=\"q1\"\nexport bot='t2'\n",
        )
        .unwrap();
        let pairs: Vec<_> = f
            .agents
            .iter()
            .map(|a| (a.id.as_str(), a.token.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![("claude-code", "abc"), ("codex", "q1"), ("bot", "t2")]
        );
        assert_eq!(f.agents[1].line, 3);
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let e = parse("/x/agents.env", "a=1\nnot-a-pair\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/x/agents.env:2:"), "{e}");
    }

    #[test]
    fn duplicates_are_errors() {
        let e = parse("f", "a=1\na=2\n").unwrap_err().to_string();
        assert!(e.contains("f:2") && e.contains("twice"), "{e}");
        let e = parse("f", "a=1\nb=1\n").unwrap_err().to_string();
        assert!(e.contains("f:2") && e.contains("already used"), "{e}");
        assert!(!e.contains("=1"));
    }

    #[test]
    fn bad_ids_and_empty_tokens() {
        assert!(parse("f", "bad id=1\n").is_err());
        assert!(parse("f", "a=\n").is_err());
        assert!(parse("f", "a=\"\"\n").is_err());
    }
}
