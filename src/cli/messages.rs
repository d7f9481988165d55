//! `hubctl messages` (every message, or the deliveries to one agent with its read
//! state) and `hubctl purge-messages` (remove the deliveries to one agent). Both talk
//! to the operator API only.

use super::operator::{list_table, s, OperatorClient};
use super::tasks::{fetch, log_hint, log_query, print_json, rows_of, seg};
use super::{CliError, LogArgs, Target};
use clap::Args;
use serde_json::json;
use std::path::Path;

/// `hubctl messages` options.
#[derive(Debug, Args)]
pub struct MessagesArgs {
    /// Only the messages delivered to this agent, with its read state
    #[arg(long)]
    pub agent: Option<String>,
    /// Only the agent's unread messages (needs --agent)
    #[arg(long, requires = "agent")]
    pub unread: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub page: LogArgs,
}

pub(crate) fn messages(
    dir: &Path,
    target: &Target,
    args: &MessagesArgs,
    json: bool,
) -> Result<(), CliError> {
    let page = &args.page;
    let mut path = format!("/operator/messages?{}", log_query(page));
    let mut command = "messages".to_string();
    if let Some(a) = &args.agent {
        path.push_str(&format!("&agent={}", seg(a)));
        command.push_str(&format!(" --agent {a}"));
        if args.unread {
            path.push_str("&unread=1");
            command.push_str(" --unread");
        }
    }
    let Some(v) = fetch(dir, target, &path, json)? else {
        return Ok(());
    };
    match &args.agent {
        None => {
            let rows = rows_of(&v, "items", |m| {
                let to = m["to_agent"].as_str().unwrap_or("(all)").to_string();
                vec![
                    s(&m["created_at"]),
                    s(&m["from_agent"]),
                    to,
                    s(&m["msg_type"]),
                    s(&m["subject"]),
                ]
            });
            let head = ["AT", "FROM", "TO", "TYPE", "SUBJECT"];
            print!("{}", list_table(&head, &rows, "no messages"));
        }
        Some(a) => {
            let rows = rows_of(&v, "items", |m| {
                let read = m["read_at"].as_str().unwrap_or("unread").to_string();
                vec![
                    s(&m["created_at"]),
                    s(&m["from_agent"]),
                    s(&m["msg_type"]),
                    s(&m["subject"]),
                    read,
                ]
            });
            let empty = match args.unread {
                true => format!("no unread messages for {a}"),
                false => format!("no messages delivered to {a}"),
            };
            let head = ["AT", "FROM", "TYPE", "SUBJECT", "READ"];
            print!("{}", list_table(&head, &rows, &empty));
        }
    }
    log_hint(&v, &command, page);
    Ok(())
}

pub(crate) fn purge(
    dir: &Path,
    target: &Target,
    agent: &str,
    from: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    // A purge of a long history is one statement that may take a while.
    let client = OperatorClient::with_timeout(dir, target, std::time::Duration::from_secs(3600))?;
    let v = client.post(
        "/operator/messages/purge",
        &json!({"agent": agent, "from": from}),
    )?;
    if json {
        print_json(&v);
        return Ok(());
    }
    let n = v["purged"].as_u64().unwrap_or(0);
    let what = if n == 1 { "delivery" } else { "deliveries" };
    match from {
        Some(f) => println!("purged {n} {what} to {agent} from {f}"),
        None => println!("purged {n} {what} to {agent}"),
    }
    Ok(())
}
