//! `salve approvals list|show|approve|deny`: a client of the running salve's API, since
//! an answer is taken by the salve that asked (and, with replicas, ordered by the trail).
//! Who answers is who the token names: an `[[api.identity]]` the group lists.

use crate::model::ApprovalView;
use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub command: ApprovalsCommand,
    /// The running salve (default: http://127.0.0.1:9095).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// A file holding your API token (default: the SALVE_TOKEN environment variable).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Approvals, newest first: pending, or of any state.
    List {
        /// pending, approved, executed, suppressed, denied, expired, cancelled, invalidated
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        rule: Option<String>,
        /// e.g. k8s:prod/deployment/checkout
        #[arg(long)]
        target: Option<String>,
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One approval, as JSON.
    Show { id: String },
    /// Say yes: the action is decided again under the whole policy, now.
    Approve {
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Say no, for the rest of the alert's episode.
    Deny {
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(args: &ApprovalsArgs) -> anyhow::Result<Client> {
        let token = match &args.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("--token-file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("SALVE_TOKEN").ok(),
        };
        let base = args
            .url
            .clone()
            .unwrap_or_else(|| format!("http://{}", crate::config::DEFAULT_LISTEN));
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The answer's JSON, or the API's error (`error`, and who decided for a 409).
    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach salve at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"].as_str().unwrap_or("no reason given");
        Err(anyhow!("{status}: {message}"))
    }
}

pub fn approvals(args: ApprovalsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&client, args.command))
}

async fn run(client: &Client, command: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let url = |path: &str| format!("{}/api/v1/approvals{path}", client.base);
    match command {
        ApprovalsCommand::List {
            state,
            rule,
            target,
            json,
        } => {
            let query: Vec<(&str, String)> = [("state", state), ("rule", rule), ("target", target)]
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect();
            let body = client.call(client.http.get(url("")).query(&query)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(ExitCode::SUCCESS);
            }
            let approvals: Vec<ApprovalView> = serde_json::from_value(body)?;
            for a in approvals {
                println!("{}", line(&a));
            }
        }
        ApprovalsCommand::Show { id } => {
            let body = client.call(client.http.get(url(&format!("/{id}")))).await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        ApprovalsCommand::Approve { id, comment } => {
            answer(client, &url(&format!("/{id}/approve")), comment).await?
        }
        ApprovalsCommand::Deny { id, comment } => {
            answer(client, &url(&format!("/{id}/deny")), comment).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn answer(client: &Client, url: &str, comment: String) -> anyhow::Result<()> {
    let request = client.http.post(url).json(&json!({ "comment": comment }));
    let body = client.call(request).await?;
    let approval: ApprovalView = serde_json::from_value(body)?;
    println!("{}", line(&approval));
    Ok(())
}

/// One approval on one line: id, state, group, what on which target, for which alert,
/// until when or decided by whom.
fn line(a: &ApprovalView) -> String {
    let when = match (&a.decided_by, a.decided_at) {
        (Some(by), Some(at)) => format!("{} by {by}", at.to_rfc3339()),
        _ => format!("expires {}", a.expires_at.to_rfc3339()),
    };
    format!(
        "{} {:<11} {} rule={} {} {} alert={} {when}",
        a.id, a.state, a.group, a.rule, a.action, a.target, a.alertname
    )
}
