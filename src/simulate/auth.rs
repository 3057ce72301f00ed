//! The authentication a simulated service demands, so tests see each auth type reach it.

use std::collections::HashMap;

use muster_ingest::auth::{
    ApiKeyCredentials, Authentication, BearerCredentials, OAuth2Credentials,
};
use serde_json::json;
use warp::http::{HeaderMap, StatusCode};

use super::{State, reply};

#[derive(Debug, Clone, PartialEq)]
pub enum Required {
    None,
    ApiKey(String),
    Jwt(String),
    OAuth2 { client_id: String, secret: String },
}

impl Required {
    pub fn for_event(kind: &str, i: usize, id: &str) -> Self {
        let kind = match kind {
            "mixed" => ["none", "api_key", "jwt", "oauth2"][i % 4],
            other => other,
        };
        match kind {
            "api_key" => Self::ApiKey(format!("sim-key-{id}")),
            "jwt" => Self::Jwt(format!("sim-jwt-{id}")),
            "oauth2" => Self::OAuth2 {
                client_id: format!("sim-client-{id}"),
                secret: format!("sim-secret-{id}"),
            },
            _ => Self::None,
        }
    }

    /// What muster must be registered with to pass.
    pub fn credentials(&self, base: &str) -> Authentication {
        match self {
            Self::None => Authentication::None,
            Self::ApiKey(key) => Authentication::ApiKey {
                credentials: ApiKeyCredentials {
                    header: "x-api-key".into(),
                    key: key.clone(),
                },
            },
            Self::Jwt(token) => Authentication::Jwt {
                credentials: BearerCredentials {
                    token: token.clone(),
                },
            },
            Self::OAuth2 { client_id, secret } => Authentication::Oauth2 {
                credentials: OAuth2Credentials {
                    token_url: format!("{base}/oauth/token"),
                    client_id: client_id.clone(),
                    client_secret: secret.clone(),
                    scope: Some("analytics:read".into()),
                },
            },
        }
    }

    pub fn accepts(&self, headers: &HeaderMap) -> bool {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        match self {
            Self::None => true,
            Self::ApiKey(key) => header("x-api-key") == Some(key.as_str()),
            Self::Jwt(token) => header("authorization") == Some(format!("Bearer {token}").as_str()),
            Self::OAuth2 { client_id, .. } => header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .is_some_and(|t| t.starts_with(&format!("tok-{client_id}-"))),
        }
    }
}

/// `POST /oauth/token`, client credentials grant.
pub fn issue_token(form: HashMap<String, String>, state: State) -> warp::reply::Response {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "client_credentials" {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        );
    }
    let known = state.values().any(|sim| {
        matches!(&sim.lock().expect("poisoned").auth,
            Required::OAuth2 { client_id, secret } if client_id == get("client_id") && secret == get("client_secret"))
    });
    if !known {
        return reply(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    let token = format!("tok-{}-{}", get("client_id"), rand::random::<u32>());
    reply(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 300}),
    )
}
