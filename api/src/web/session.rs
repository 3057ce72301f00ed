//! Sign-in sessions and what every page request knows about its visitor. A session is a random
//! id in an HttpOnly, SameSite=Strict cookie; PostgreSQL keeps only the id's hash, the hash of
//! the credential it was opened with and its CSRF token. Every request gets its viewer again
//! from that credential through [`Auth::viewer_of`], the JSON API's own checks. Before sign-in,
//! forms carry a token also kept in a cookie of its own (double submit).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warp::Filter;
use warp::http::StatusCode;

use super::i18n::Lang;
use crate::auth::{Auth, Credential, Use, Viewer};
use crate::problem::Problem;
use crate::route::with;

pub const SESSION_COOKIE: &str = "muster_session";
pub const CSRF_COOKIE: &str = "muster_csrf";
pub const LANG_COOKIE: &str = "muster_lang";

/// What the session routes need: the database, the API's auth, `[api.web]`.
#[derive(Clone)]
pub struct Sessions {
    pub pool: deadpool_postgres::Pool,
    pub auth: Auth,
    pub cfg: crate::config::WebConfig,
}

/// A live session, as one request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    id_hash: Vec<u8>,
    pub csrf: String,
    pub viewer: Viewer,
}

/// Whether the visitor is signed in.
#[derive(Debug)]
pub enum Signed {
    In(Session),
    Out,
    /// The session could not be checked (rate limit, database): its error page.
    Failed(Problem),
}

/// What every page request knows about its visitor.
#[derive(Debug)]
pub struct Visit {
    pub lang: Lang,
    /// Whether cookies get `Secure` (TLS seen or configured).
    pub secure: bool,
    pub signed: Signed,
    /// The token forms carry before sign-in, and whether it is new (then set as a cookie).
    pre_csrf: String,
    new_pre_csrf: bool,
    /// An htmx request: it gets the fragment it swaps, and redirects as `HX-Redirect`.
    pub htmx: bool,
    /// The path and query of the request, for the language switch to return to.
    pub here: String,
}

impl Visit {
    /// The token this visitor's forms carry.
    pub fn csrf(&self) -> &str {
        match &self.signed {
            Signed::In(s) => &s.csrf,
            _ => &self.pre_csrf,
        }
    }

    /// Whether `given` is this visitor's form token.
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        let expected = self.csrf();
        given.is_some_and(|g| !g.is_empty() && bool::from(g.as_bytes().ct_eq(expected.as_bytes())))
    }

    pub fn session(&self) -> Option<&Session> {
        match &self.signed {
            Signed::In(s) => Some(s),
            _ => None,
        }
    }

    /// The cookies this answer must set: the pre-sign-in token when it is new.
    pub fn cookies(&self) -> Vec<String> {
        if self.new_pre_csrf {
            vec![cookie(CSRF_COOKIE, &self.pre_csrf, None, self.secure)]
        } else {
            Vec::new()
        }
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, `Max-Age` seconds when given
/// (0 deletes it), `Secure` behind TLS.
pub fn cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// 32 random bytes as hex: session ids and CSRF tokens.
pub fn token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// A path on this site to go back to after a form: a local absolute path only, never another
/// origin (`//host`, `/\host`) nor the sign-in itself.
pub fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && !p.starts_with(&super::paths::to(super::paths::SIGN_IN))
                && !p.starts_with(&super::paths::to(super::paths::SIGN_OUT)) =>
        {
            p
        }
        _ => super::paths::HOME,
    }
}

#[derive(Debug, Default)]
struct Cookies {
    session: Option<String>,
    csrf: Option<String>,
    lang: Option<String>,
}

fn parse_cookies(header: Option<&str>) -> Cookies {
    let mut c = Cookies::default();
    for pair in header.unwrap_or_default().split(';') {
        let Some((k, v)) = pair.trim().split_once('=') else {
            continue;
        };
        let v = Some(v.trim().to_owned());
        match k.trim() {
            SESSION_COOKIE => c.session = v,
            CSRF_COOKIE => c.csrf = v,
            LANG_COOKIE => c.lang = v,
            _ => {}
        }
    }
    c
}

/// The headers a visit is read from.
struct Seen {
    cookie: Option<String>,
    accept_language: Option<String>,
    forwarded_https: bool,
    htmx: bool,
}

impl Sessions {
    /// The visit of a page request (its session's partner counts it against its rate limit).
    pub fn visit(
        &self,
    ) -> impl Filter<Extract = (Visit,), Error = warp::Rejection> + Clone + use<> {
        self.visit_as(Use::Request)
    }

    /// The visit of a request whose session is checked as `usage`.
    pub fn visit_as(
        &self,
        usage: Use,
    ) -> impl Filter<Extract = (Visit,), Error = warp::Rejection> + Clone + use<> {
        let seen = warp::header::optional::<String>("cookie")
            .and(warp::header::optional::<String>("accept-language"))
            .and(warp::header::optional::<String>("x-forwarded-proto"))
            .and(warp::header::optional::<String>("hx-request"))
            .and(warp::header::optional::<String>(
                "hx-history-restore-request",
            ))
            .map(
                |cookie,
                 accept_language,
                 proto: Option<String>,
                 hx: Option<String>,
                 restore: Option<String>| Seen {
                    cookie,
                    accept_language,
                    forwarded_https: proto.is_some_and(|p| p.eq_ignore_ascii_case("https")),
                    // Restoring history, htmx swaps the whole page.
                    htmx: hx.is_some_and(|h| h == "true") && restore.is_none(),
                },
            );
        let here = warp::path::full()
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .map(|path: warp::path::FullPath, query: String| {
                if query.is_empty() {
                    path.as_str().to_owned()
                } else {
                    format!("{}?{query}", path.as_str())
                }
            });
        with(self.clone()).and(seen).and(here).then(
            move |sessions: Sessions, seen: Seen, here: String| async move {
                sessions.read(seen, here, usage).await
            },
        )
    }

    async fn read(&self, seen: Seen, here: String, usage: Use) -> Visit {
        let cookies = parse_cookies(seen.cookie.as_deref());
        let signed = match &cookies.session {
            Some(id) => self.check(id, usage).await,
            None => Signed::Out,
        };
        let (pre_csrf, new_pre_csrf) = match cookies.csrf.filter(|t| t.len() == 64) {
            Some(t) => (t, false),
            None => (token(), !matches!(signed, Signed::In(_))),
        };
        Visit {
            lang: Lang::negotiate(cookies.lang.as_deref(), seen.accept_language.as_deref()),
            secure: self.cfg.secure_cookies || seen.forwarded_https,
            signed,
            pre_csrf,
            new_pre_csrf,
            htmx: seen.htmx,
            here,
        }
    }

    /// The session of cookie `id`, with its viewer now; an expired session or one whose
    /// credential no longer holds is deleted and reads as signed out.
    pub async fn check(&self, id: &str, usage: Use) -> Signed {
        match self.lookup(hash(id), usage).await {
            Ok(Some(s)) => Signed::In(s),
            Ok(None) => Signed::Out,
            Err(p) if p.status() == StatusCode::UNAUTHORIZED => {
                if let Err(e) = self.delete(&hash(id)).await {
                    tracing::warn!(error = %e.title, "deleting an ended session");
                }
                Signed::Out
            }
            Err(p) => Signed::Failed(p),
        }
    }

    /// `session` again, as a live stream checks it before each update (not rate limited).
    pub async fn recheck(&self, session: &Session) -> Signed {
        match self.lookup(session.id_hash.clone(), Use::Push).await {
            Ok(Some(s)) => Signed::In(s),
            Ok(None) => Signed::Out,
            Err(p) if p.status() == StatusCode::UNAUTHORIZED => Signed::Out,
            Err(p) => Signed::Failed(p),
        }
    }

    async fn lookup(&self, id_hash: Vec<u8>, usage: Use) -> Result<Option<Session>, Problem> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT credential_kind, credential_hash, csrf_token FROM web_sessions
                 WHERE session_hash = $1 AND expires_at > now()",
            )
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&id_hash]).await? else {
            return Ok(None);
        };
        drop(client);
        let kind: String = crate::read::column(&row, "credential_kind")?;
        let credential =
            Credential::from_parts(&kind, crate::read::column(&row, "credential_hash")?)
                .ok_or_else(|| Problem::internal(format!("session of unknown kind {kind:?}")))?;
        let viewer = self.auth.viewer_of(&credential, usage).await?;
        Ok(Some(Session {
            id_hash,
            csrf: crate::read::column(&row, "csrf_token")?,
            viewer,
        }))
    }

    /// Opens a session for `credential`: its cookie value and when it expires. Expired
    /// sessions are pruned on the way.
    pub async fn open(&self, credential: &Credential) -> Result<(String, DateTime<Utc>), Problem> {
        let id = token();
        let ttl = chrono::Duration::from_std(self.cfg.session_ttl)
            .map_err(|e| Problem::internal(format!("api.web.session_ttl: {e}")))?;
        let expires = Utc::now() + ttl;
        let (kind, credential_hash) = credential.parts();
        let client = self.pool.get().await?;
        client
            .execute("DELETE FROM web_sessions WHERE expires_at <= now()", &[])
            .await?;
        client
            .execute(
                "INSERT INTO web_sessions (session_hash, credential_kind, credential_hash,
                    csrf_token, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&hash(&id), &kind, &credential_hash, &token(), &expires],
            )
            .await?;
        Ok((id, expires))
    }

    /// Moves `session` to `credential` (a partner rotating the key it signed in with): the
    /// cookie stays, the grace of the old key no longer bounds the session.
    pub async fn rebind(&self, session: &Session, credential: &Credential) -> Result<(), Problem> {
        let (kind, credential_hash) = credential.parts();
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE web_sessions SET credential_kind = $2, credential_hash = $3
                 WHERE session_hash = $1",
                &[&session.id_hash, &kind, &credential_hash],
            )
            .await?;
        Ok(())
    }

    /// Ends `session`: its cookie no longer opens anything.
    pub async fn close(&self, session: &Session) -> Result<(), Problem> {
        self.delete(&session.id_hash).await
    }

    async fn delete(&self, id_hash: &[u8]) -> Result<(), Problem> {
        let client = self.pool.get().await?;
        client
            .execute(
                "DELETE FROM web_sessions WHERE session_hash = $1",
                &[&id_hash],
            )
            .await?;
        Ok(())
    }

    /// The session cookie for `id`, living as long as the session.
    pub fn session_cookie(&self, id: &str, secure: bool) -> String {
        let age = self.cfg.session_ttl.as_secs() as i64;
        cookie(SESSION_COOKIE, id, Some(age), secure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(
            local_path(Some("/alerts?severity=critical")),
            "/alerts?severity=critical"
        );
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
            "/sign-in",
            "/a\nb",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_tls() {
        let c = cookie(SESSION_COOKIE, "abc", Some(60), true);
        assert_eq!(
            c,
            "muster_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(!cookie(LANG_COOKIE, "ko", None, false).contains("Secure"));
        let parsed = parse_cookies(Some("a=1; muster_session=s1; muster_lang=ko;muster_csrf=t"));
        assert_eq!(parsed.session.as_deref(), Some("s1"));
        assert_eq!(parsed.lang.as_deref(), Some("ko"));
        assert_eq!(parsed.csrf.as_deref(), Some("t"));
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
