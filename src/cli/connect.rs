//! `hubctl connect <agent>`: client configuration snippets, also printed on the first
//! start. Claude Code takes the token in an inline header; Codex ignores inline
//! headers for HTTP servers and reads the token from an environment variable.

use super::{hub_url, CliError, Target};
use crate::config::bootstrap;
use std::path::Path;

pub(crate) fn snippets(mcp_url: &str, agent_id: &str, token: &str) -> String {
    format!(
        r#"Claude Code — add to your project's .mcp.json:
{{
  "mcpServers": {{
    "agent-hub": {{
      "type": "http",
      "url": "{mcp_url}",
      "headers": {{ "Authorization": "Bearer {token}" }}
    }}
  }}
}}
  or run: claude mcp add --transport http agent-hub {mcp_url} --header "Authorization: Bearer {token}"

Codex — add to ~/.codex/config.toml:
[mcp_servers.agent-hub]
url = "{mcp_url}"
bearer_token_env_var = "AGENT_HUB_TOKEN"
  and start Codex with: export AGENT_HUB_TOKEN={token}

These contain the token of agent `{agent_id}`: do not commit them.
"#
    )
}

pub(crate) fn run(dir: &Path, agent_id: &str, target: &Target) -> Result<(), CliError> {
    let loaded = bootstrap::prepare(dir, false)?;
    let Some(agent) = loaded.agents.get(agent_id) else {
        let known: Vec<&str> = loaded.agents.agents.iter().map(|a| a.id.as_str()).collect();
        return Err(CliError::UnknownAgent {
            id: agent_id.to_string(),
            file: dir
                .join(crate::config::paths::AGENTS_FILE)
                .display()
                .to_string(),
            known: if known.is_empty() {
                "(none)".into()
            } else {
                known.join(", ")
            },
        });
    };
    let url = format!("{}/mcp", hub_url(&loaded.dir, target, &loaded.settings));
    print!("{}", snippets(&url, &agent.id, &agent.token));
    Ok(())
}
