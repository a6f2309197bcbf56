//! `[[api.identity]]` and `[api.proxy]`: the named callers of the API and the proxy
//! whose header names them, checked once at load (so at every reload too, which
//! re-reads the tokens), each error naming its key.

use super::file::{ApiConfig, IdentityConfig};
use super::ApiAuth;
use crate::api::Role;
use crate::model::{secret_setting, InvalidSetting, Secret};
use axum::http::HeaderName;
use ipnet::IpNet;
use std::net::IpAddr;

type Checked<T> = std::result::Result<T, InvalidSetting>;

/// A named caller: whoever presents `token` is `name`, with `role`. Debug never
/// prints the token.
#[derive(Debug, Clone)]
pub struct ApiIdentity {
    pub name: String,
    pub token: Secret,
    pub role: Role,
}

/// The proxy whose `header` names the user, believed only from `from`.
#[derive(Debug, Clone)]
pub struct TrustedProxy {
    pub header: HeaderName,
    pub from: Vec<IpNet>,
    pub role: Role,
}

impl TrustedProxy {
    /// Whether a connection from `peer` is the proxy's. An IPv4 peer on a dual-stack
    /// listener arrives as `::ffff:a.b.c.d`, and is matched as the IPv4 address it is.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.from.iter().any(|net| net.contains(&peer))
    }
}

/// `[[api.identity]]`: names unique and not blank, each its own token, and none the
/// single `[api]` bearer token (which is an admin's, whoever holds it).
pub(super) fn identities(api: &ApiConfig, single: Option<&ApiAuth>) -> Checked<Vec<ApiIdentity>> {
    let mut identities: Vec<ApiIdentity> = Vec::with_capacity(api.identity.len());
    for (i, written) in api.identity.iter().enumerate() {
        let key = |k: &str| format!("api.identity[{i}].{k}");
        let name = &written.name;
        if name.trim().is_empty() {
            return Err(InvalidSetting::new(key("name"), "is empty"));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidSetting::new(
                key("name"),
                format!("{name:?} holds a control character"),
            ));
        }
        if let Some(first) = identities.iter().position(|o| &o.name == name) {
            return Err(InvalidSetting::new(
                key("name"),
                format!("{name:?} is already the name of api.identity[{first}]"),
            ));
        }
        let (token_key, token) = identity_token(written, &key)?;
        if let Some(first) = identities.iter().position(|o| o.token == token) {
            return Err(InvalidSetting::new(
                token_key,
                format!(
                    "{name:?} has the same token as api.identity[{first}] ({:?}): each identity needs its own",
                    identities[first].name
                ),
            ));
        }
        if matches!(single, Some(ApiAuth::Bearer(t)) if *t == token.0) {
            return Err(InvalidSetting::new(
                token_key,
                format!("{name:?} has the same token as api.bearer_token_file/_env: each identity needs its own"),
            ));
        }
        identities.push(ApiIdentity {
            name: name.clone(),
            token,
            role: written.role,
        });
    }
    Ok(identities)
}

/// An identity's token, from exactly one of `token_file` and `token_env`, with the key
/// it came from.
fn identity_token(
    written: &IdentityConfig,
    key: &dyn Fn(&str) -> String,
) -> Checked<(String, Secret)> {
    let token_key = match (&written.token_file, &written.token_env) {
        (Some(_), Some(_)) => {
            return Err(InvalidSetting::new(
                key("token_file"),
                "give token_file or token_env, not both",
            ))
        }
        (None, None) => {
            return Err(InvalidSetting::new(
                key("token_file"),
                "needs token_file or token_env",
            ))
        }
        (Some(_), None) => key("token_file"),
        (None, Some(_)) => key("token_env"),
    };
    let token = secret_setting(
        &token_key,
        written.token_file.as_deref(),
        written.token_env.as_deref(),
    )?
    .unwrap_or_default();
    let token = token.trim();
    if token.is_empty() {
        return Err(InvalidSetting::new(token_key, "the token is empty"));
    }
    Ok((token_key, Secret(token.to_string())))
}

/// `[api.proxy]`: a header name HTTP allows, and at least one address to believe it from.
pub(super) fn trusted_proxy(api: &ApiConfig) -> Checked<Option<TrustedProxy>> {
    let Some(proxy) = &api.proxy else {
        return Ok(None);
    };
    let header = HeaderName::from_bytes(proxy.header.trim().as_bytes()).map_err(|_| {
        InvalidSetting::new(
            "api.proxy.header",
            format!("{:?} is not an HTTP header name", proxy.header),
        )
    })?;
    if proxy.from.is_empty() {
        return Err(InvalidSetting::new(
            "api.proxy.from",
            "name the proxy's addresses: a header believed from anywhere would let anyone be anyone",
        ));
    }
    Ok(Some(TrustedProxy {
        header,
        from: proxy.from.iter().map(|net| net.0).collect(),
        role: proxy.role,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    /// Loads `text` with `{dir}` naming a folder that holds `tokens` (file, text).
    fn load(text: &str, tokens: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("a temp folder");
        for (file, token) in tokens {
            std::fs::write(dir.path().join(file), token).expect("write a token");
        }
        let text = text.replace("{dir}", &dir.path().display().to_string());
        Config::parse(&text, Path::new("salve.toml"))
    }

    fn refused(text: &str, tokens: &[(&str, &str)]) -> String {
        match load(text, tokens) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn identities_are_read_with_their_roles_and_the_proxy_with_its_addresses() {
        let config = load(
            "[[api.identity]]\nname = \"alice\"\ntoken_file = \"{dir}/a\"\nrole = \"approver\"\n\
             [[api.identity]]\nname = \"ci\"\ntoken_file = \"{dir}/b\"\nrole = \"sender\"\n\
             [api.proxy]\nheader = \"X-Forwarded-Email\"\nfrom = [\"127.0.0.1/32\", \"::1\"]\n",
            &[("a", "a-token\n"), ("b", " b ")],
        )
        .expect("valid");
        let identities: Vec<String> = config
            .identities
            .iter()
            .map(|i| format!("{} {} {}", i.name, i.role, i.token.expose()))
            .collect();
        assert_eq!(identities, ["alice approver a-token", "ci sender b"]);
        assert!(!format!("{:?}", config.identities).contains("a-token"));
        let proxy = config.proxy.expect("a proxy");
        assert_eq!(proxy.header.as_str(), "x-forwarded-email");
        assert_eq!(proxy.role, crate::api::Role::Viewer, "the default");
        let trusted = [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "10.0.0.1",
            "127.0.0.2",
        ]
        .map(|peer| proxy.trusts(peer.parse().expect("an address")));
        assert_eq!(trusted, [true, true, true, false, false]);
    }

    #[test]
    fn an_identity_that_would_be_ambiguous_or_half_set_is_refused_at_its_key() {
        let tokens = [("a", "same"), ("blank", " \n")];
        let identity = |name: &str, token: &str| {
            format!("[[api.identity]]\nname = \"{name}\"\n{token}\nrole = \"viewer\"\n")
        };
        let a = "token_file = \"{dir}/a\"";
        let cases = [
            (identity(" ", a), "api.identity[0].name: is empty"),
            (identity("a\\n", a), "api.identity[0].name: \"a\\n\" holds a control character"),
            (identity("a", ""), "api.identity[0].token_file: needs token_file or token_env"),
            (
                identity("a", "token_file = \"{dir}/blank\""),
                "api.identity[0].token_file: the token is empty",
            ),
            (
                identity("a", "token_env = \"SALVE_TEST_SURELY_UNSET\""),
                "api.identity[0].token_env: environment variable SALVE_TEST_SURELY_UNSET is not set",
            ),
            (
                identity("a", "token_env = \"X\"\ntoken_file = \"/x\""),
                "api.identity[0].token_file: give token_file or token_env, not both",
            ),
            (
                format!("[api]\nbearer_token_file = \"{{dir}}/a\"\n{}", identity("a", a)),
                "api.identity[0].token_file: \"a\" has the same token as \
                 api.bearer_token_file/_env: each identity needs its own",
            ),
            (
                "[api.proxy]\nheader = \"X Email\"\nfrom = [\"127.0.0.1\"]\n".to_string(),
                "api.proxy.header: \"X Email\" is not an HTTP header name",
            ),
            (
                "[api.proxy]\nheader = \"X-Email\"\nfrom = []\n".to_string(),
                "api.proxy.from: name the proxy's addresses: a header believed from anywhere \
                 would let anyone be anyone",
            ),
            (
                "[api.proxy]\nheader = \"X-Email\"\nfrom = [\"127.0.0.1\", \"10.0.0.0/33\"]\n"
                    .to_string(),
                "salve.toml:3:22: api.proxy.from[1]: \"10.0.0.0/33\" is not a network \
                 (write it like \"10.0.0.0/8\")",
            ),
        ];
        for (text, expected) in cases {
            let refusal = refused(&text, &tokens);
            assert!(refusal.ends_with(expected), "{text}\n{refusal}");
        }
    }
}
