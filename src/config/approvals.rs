//! `[approvals]`: the groups of people who may say yes to a risky action, where their
//! requests go, how long a request waits, and which actions ask whatever the rule says.

use crate::model::{Action, HumanDuration, InvalidSetting, MAX_APPROVAL_TTL};
use crate::policy::{ApprovalTerms, DEFAULT_APPROVAL_TTL};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// `[approvals]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ApprovalsConfig {
    /// Actions that always ask a person first, whatever the rule says, e.g.
    /// `["rollback", "scale"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<Action>,
    /// Targets whose actions always ask a person first: regular expressions matched
    /// against the whole target, e.g. `["k8s:prod/.*"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require_targets: Vec<String>,
    /// The group `require` and `require_targets` ask. May be left out when only one
    /// group is defined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The address people reach salve at, for the signed links mailed to a group's
    /// `emails`, e.g. `https://salve.example.org`. Default: `http://` and `listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    /// `[approvals.NAME]`: the groups.
    #[serde(flatten)]
    pub groups: BTreeMap<String, ApprovalGroupConfig>,
}

/// `[approvals.NAME]`: who may approve, and where requests go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalGroupConfig {
    /// How long a request waits for an answer before it expires into "no". Default
    /// `15m`; between `1s` and `24h`. A rule's `.approval(group, ttl)` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<HumanDuration>,
    /// `[notify.NAME]` channels the request goes to.
    pub notify: Vec<String>,
    /// Slack user ids that may approve from the request's buttons.
    pub slack_users: Vec<String>,
    /// A Slack team (workspace) id whose every member may approve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack_team: Option<String>,
    /// `[[api.identity]]` names that may approve through the API and `salve approvals`.
    pub identities: Vec<String>,
    /// Addresses that get a signed link each, through the group's email channels.
    pub emails: Vec<String>,
}

/// A group, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalGroup {
    pub name: String,
    pub ttl: Duration,
    pub notify: Vec<String>,
    pub slack_users: Vec<String>,
    pub slack_team: Option<String>,
    pub identities: Vec<String>,
    pub emails: Vec<String>,
    /// A hash of the group as written: a reload that changes it invalidates its
    /// pending requests.
    pub hash: String,
}

impl ApprovalGroup {
    /// Everyone the group names, as a request lists them.
    pub fn approvers(&self) -> Vec<String> {
        let slack = self.slack_users.iter().map(|u| format!("slack:{u}"));
        let team = self.slack_team.iter().map(|t| format!("slack-team:{t}"));
        let api = self.identities.iter().map(|i| format!("api:{i}"));
        let email = self.emails.iter().map(|e| format!("email:{e}"));
        slack.chain(team).chain(api).chain(email).collect()
    }
}

/// `[approvals]`, validated: the groups, and what policy applies.
#[derive(Debug, Clone, Default)]
pub struct Approvals {
    pub groups: HashMap<String, ApprovalGroup>,
    pub terms: ApprovalTerms,
    /// `external_url`, without a trailing slash, if given.
    pub external_url: Option<String>,
}

impl Approvals {
    pub fn group(&self, name: &str) -> Option<&ApprovalGroup> {
        self.groups.get(name)
    }
}

/// A short stable hash of some text, as hex: what a reload compares.
pub fn text_hash(text: &str) -> String {
    use std::hash::Hasher;
    let mut h = siphasher::sip128::SipHasher13::new();
    h.write(text.as_bytes());
    format!(
        "{:032x}",
        siphasher::sip128::Hasher128::finish128(&h).as_u128()
    )
}

/// Validates `[approvals]` against the channels it names.
pub fn approvals(
    written: &ApprovalsConfig,
    channel_exists: impl Fn(&str) -> bool,
) -> Result<Approvals, InvalidSetting> {
    let mut groups = HashMap::new();
    for (name, group) in &written.groups {
        let key = |field: &str| format!("approvals.{name}.{field}");
        let ttl = group.ttl.map_or(DEFAULT_APPROVAL_TTL, |t| t.get());
        if ttl < Duration::from_secs(1) || ttl > MAX_APPROVAL_TTL {
            return Err(InvalidSetting::new(
                key("ttl"),
                "must be between 1s and 24h",
            ));
        }
        if let Some(channel) = group.notify.iter().find(|c| !channel_exists(c)) {
            return Err(InvalidSetting::new(
                key("notify"),
                format!("no [notify.{channel}] channel"),
            ));
        }
        if group.slack_users.is_empty()
            && group.slack_team.is_none()
            && group.identities.is_empty()
            && group.emails.is_empty()
        {
            return Err(InvalidSetting::new(
                format!("approvals.{name}"),
                "names nobody who may approve: give slack_users, slack_team, identities or emails",
            ));
        }
        let hash = text_hash(&serde_json::to_string(group).unwrap_or_default());
        groups.insert(
            name.clone(),
            ApprovalGroup {
                name: name.clone(),
                ttl,
                notify: group.notify.clone(),
                slack_users: group.slack_users.clone(),
                slack_team: group.slack_team.clone(),
                identities: group.identities.clone(),
                emails: group.emails.clone(),
                hash,
            },
        );
    }
    let terms = terms(written, &groups)?;
    let external_url = match &written.external_url {
        Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
            return Err(InvalidSetting::new(
                "approvals.external_url",
                format!("{url:?} is not an http:// or https:// address"),
            ))
        }
        Some(url) => Some(url.trim_end_matches('/').to_string()),
        None => None,
    };
    Ok(Approvals {
        groups,
        terms,
        external_url,
    })
}

fn terms(
    written: &ApprovalsConfig,
    groups: &HashMap<String, ApprovalGroup>,
) -> Result<ApprovalTerms, InvalidSetting> {
    let mut require_targets = Vec::new();
    for (i, pattern) in written.require_targets.iter().enumerate() {
        let anchored = format!("^(?:{pattern})$");
        let regex = regex::Regex::new(&anchored).map_err(|e| {
            InvalidSetting::new(format!("approvals.require_targets[{i}]"), e.to_string())
        })?;
        require_targets.push(regex);
    }
    if written.require.contains(&Action::Notify) {
        return Err(InvalidSetting::new(
            "approvals.require",
            "notify never asks: a page that waits for a yes pages nobody",
        ));
    }
    let group = match &written.group {
        Some(name) if !groups.contains_key(name) => {
            return Err(InvalidSetting::new(
                "approvals.group",
                format!("no [approvals.{name}] group"),
            ))
        }
        Some(name) => Some(name.clone()),
        None if groups.len() == 1 => groups.keys().next().cloned(),
        None => None,
    };
    let requires = !written.require.is_empty() || !require_targets.is_empty();
    if requires && group.is_none() {
        return Err(InvalidSetting::new(
            "approvals.group",
            "require and require_targets need the group they ask (approvals.group), or exactly one [approvals.NAME] group",
        ));
    }
    Ok(ApprovalTerms {
        ttl: groups.iter().map(|(n, g)| (n.clone(), g.ttl)).collect(),
        require: written.require.clone(),
        require_targets,
        group,
        assumed: None,
    })
}
