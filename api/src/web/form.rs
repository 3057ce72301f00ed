//! A posted form (`application/x-www-form-urlencoded`), as every page's forms read it: its
//! fields, the route filter that parses it, and the CSRF check each form's handler starts with.

use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::layout;
use super::session::Visit;

/// A form's fields as posted (`application/x-www-form-urlencoded`), repeated names kept (the
/// grants' checkboxes).
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let decode = |s: &str| layout::percent_decode(&s.replace('+', " "));
        Self(
            text.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `name`, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// The first value of `name`, trimmed, unless absent or empty.
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }

    /// Every non-empty value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

/// A posted form: its fields, and the visit (whose CSRF token it must carry).
pub fn form() -> impl Filter<Extract = (Fields,), Error = warp::Rejection> + Clone {
    warp::post()
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .map(|b: bytes::Bytes| Fields::parse(&b))
}

/// The 403 page, unless the form carries the visitor's CSRF token.
pub fn csrf_refused(visit: &Visit, fields: &Fields) -> Option<Response> {
    (!visit.csrf_ok(Some(fields.get("csrf"))))
        .then(|| layout::error_page(visit, StatusCode::FORBIDDEN, super::i18n::Msg::ErrorCsrf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_keep_repeated_names_and_decode() {
        let f = Fields::parse(b"csrf=abc&event=e1&event=e%202&name=A+B&event=&x");
        assert_eq!(f.get("csrf"), "abc");
        assert_eq!(f.get("name"), "A B");
        assert_eq!(f.all("event"), ["e1", "e 2"]);
        assert_eq!(f.get("missing"), "");
        assert_eq!(f.get("x"), "");
        assert_eq!(f.opt("x"), None);
        assert_eq!(f.opt("csrf"), Some("abc"));
    }
}
