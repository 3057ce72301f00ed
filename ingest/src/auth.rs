//! How muster authenticates to a service: an API key header, a static bearer JWT, or OAuth 2.0
//! client credentials with the token cached until shortly before it expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Credentials never appear in `Debug` output, logs or API answers.
#[derive(Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Authentication {
    #[default]
    None,
    ApiKey {
        credentials: ApiKeyCredentials,
    },
    Jwt {
        credentials: BearerCredentials,
    },
    Oauth2 {
        credentials: OAuth2Credentials,
    },
}

impl std::fmt::Debug for Authentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}(***)", self.kind())
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyCredentials {
    #[serde(default = "default_api_key_header")]
    pub header: String,
    pub key: String,
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BearerCredentials {
    pub token: String,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Credentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Authentication {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ApiKey { .. } => "api_key",
            Self::Jwt { .. } => "jwt",
            Self::Oauth2 { .. } => "oauth2",
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::ApiKey { credentials } if credentials.key.is_empty() => {
                Err("authentication.credentials.key must not be empty".into())
            }
            Self::ApiKey { credentials }
                if reqwest::header::HeaderName::from_bytes(credentials.header.as_bytes())
                    .is_err() =>
            {
                Err(format!(
                    "authentication.credentials.header {:?} is not a valid header name",
                    credentials.header
                ))
            }
            Self::Jwt { credentials } if credentials.token.is_empty() => {
                Err("authentication.credentials.token must not be empty".into())
            }
            Self::Oauth2 { credentials }
                if !credentials.token_url.starts_with("http://")
                    && !credentials.token_url.starts_with("https://") =>
            {
                Err("authentication.credentials.tokenUrl must be an http(s) URL".into())
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("getting an OAuth 2.0 token from {url}: {reason}")]
pub struct TokenError {
    url: String,
    reason: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A token and when it expires, per (token URL, client id).
type Tokens = HashMap<(String, String), (String, Instant)>;

/// OAuth 2.0 tokens, shared by every task of a process.
#[derive(Clone, Default)]
pub struct TokenCache {
    tokens: Arc<Mutex<Tokens>>,
}

/// Renew a token this long before it expires, so no request goes out with a dying one.
const EARLY_RENEWAL: Duration = Duration::from_secs(30);

impl TokenCache {
    /// Adds the service's credentials to a request, fetching an OAuth token when needed.
    pub async fn authorize(
        &self,
        http: &reqwest::Client,
        auth: &Authentication,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, TokenError> {
        Ok(match auth {
            Authentication::None => req,
            Authentication::ApiKey { credentials } => {
                req.header(&credentials.header, &credentials.key)
            }
            Authentication::Jwt { credentials } => req.bearer_auth(&credentials.token),
            Authentication::Oauth2 { credentials } => {
                req.bearer_auth(self.token(http, credentials).await?)
            }
        })
    }

    /// Forgets a token the service refused, so the next request fetches a new one.
    pub fn invalidate(&self, auth: &Authentication) {
        if let Authentication::Oauth2 { credentials } = auth {
            self.tokens
                .lock()
                .expect("token cache poisoned")
                .remove(&(credentials.token_url.clone(), credentials.client_id.clone()));
        }
    }

    async fn token(
        &self,
        http: &reqwest::Client,
        c: &OAuth2Credentials,
    ) -> Result<String, TokenError> {
        let key = (c.token_url.clone(), c.client_id.clone());
        if let Some((token, expires)) = self.tokens.lock().expect("token cache poisoned").get(&key)
            && Instant::now() + EARLY_RENEWAL < *expires
        {
            return Ok(token.clone());
        }
        let err = |reason: String| TokenError {
            url: c.token_url.clone(),
            reason,
        };
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
        ];
        if let Some(scope) = &c.scope {
            form.push(("scope", scope));
        }
        let response = http
            .post(&c.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| err(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(err(format!("HTTP {}", response.status().as_u16())));
        }
        let t: TokenResponse = response
            .json()
            .await
            .map_err(|e| err(format!("unreadable token response: {e}")))?;
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(300));
        self.tokens
            .lock()
            .expect("token cache poisoned")
            .insert(key, (t.access_token.clone(), Instant::now() + lifetime));
        Ok(t.access_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_type_and_hides_credentials() {
        let cases = [
            (r#"{"type":"none"}"#, "none"),
            (r#"{"type":"api_key","credentials":{"key":"k"}}"#, "api_key"),
            (r#"{"type":"jwt","credentials":{"token":"t"}}"#, "jwt"),
            (
                r#"{"type":"oauth2","credentials":{"tokenUrl":"http://a/token","clientId":"c","clientSecret":"s"}}"#,
                "oauth2",
            ),
        ];
        for (json, kind) in cases {
            let a: Authentication = serde_json::from_str(json).unwrap();
            assert_eq!(a.kind(), kind);
            assert!(a.validate().is_ok());
            let shown = format!("{a:?}");
            assert!(!shown.contains("\"k\"") && !shown.contains('s') || shown.ends_with("(***)"));
        }
    }

    #[test]
    fn invalid_credentials_name_the_field() {
        let a: Authentication = serde_json::from_str(
            r#"{"type":"api_key","credentials":{"key":"k","header":"bad header"}}"#,
        )
        .unwrap();
        assert!(a.validate().unwrap_err().contains("header"));
    }
}
