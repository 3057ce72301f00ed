//! Routes declared from their OpenAPI description. A handler's `#[utoipa::path]` names its
//! method and path once; [`endpoint`] turns that into the warp filter that matches it, so the
//! document and the router cannot drift, and [`route!`] joins the filter, its inputs and the
//! handler. Each resource module lists its handlers once, in its `Doc`, and serves them in its
//! `routes`.

use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;

use utoipa::openapi::path::HttpMethod;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::problem::Problem;

/// One route, or several joined, answering a response (a handler's error answers its problem).
pub type Route = BoxedFilter<(Response,)>;

/// Serves `handler` (a function annotated with `#[utoipa::path]`) at its documented method and
/// path, with what each input filter extracts as its arguments, in order. `handler(param)`
/// names a route with one path parameter, which comes first (its type is the handler's);
/// `handler(a, b)` one with two, both text.
macro_rules! route {
    ($handler:ident($a:ident, $b:ident) $(, $input:expr)* $(,)?) => {
        paste::paste! {
            $crate::route::endpoint2::<[<__path_ $handler>]>()
                $(.and($input))*
                .then($handler)
                .map($crate::route::respond)
                .boxed()
        }
    };
    ($handler:ident($param:ident) $(, $input:expr)* $(,)?) => {
        paste::paste! {
            $crate::route::endpoint1::<[<__path_ $handler>], _>()
                $(.and($input))*
                .then($handler)
                .map($crate::route::respond)
                .boxed()
        }
    };
    ($handler:ident $(, $input:expr)* $(,)?) => {
        paste::paste! {
            $crate::route::endpoint0::<[<__path_ $handler>]>()
                $(.and($input))*
                .then($handler)
                .map($crate::route::respond)
                .boxed()
        }
    };
}
pub(crate) use route;

/// The path of `handler`'s route with its parameter filled in, for `Location` headers.
macro_rules! location {
    ($handler:ident, $param:expr) => {
        paste::paste! { $crate::route::Template::link::<[<__path_ $handler>]>(&$param.to_string()) }
    };
}
pub(crate) use location;

/// A handler's answer as a response: its reply, or its problem.
pub fn respond<R: Reply>(answer: Result<R, Problem>) -> Response {
    match answer {
        Ok(r) => r.into_response(),
        Err(p) => p.into_response(),
    }
}

/// Joins routes (tried in order).
pub fn any(routes: impl IntoIterator<Item = Route>) -> Route {
    routes
        .into_iter()
        .reduce(|a, b| a.or(b).unify().boxed())
        .expect("at least one route")
}

/// A value every request of a route gets a clone of (a pool, a store, a setting).
pub fn with<T: Clone + Send + Sync + 'static>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}

/// A path template split into its segments: `Some` literal, `None` a `{parameter}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Option<String>>);

impl Template {
    pub fn new(template: &str) -> Self {
        Self(
            template
                .trim_start_matches('/')
                .split('/')
                .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                .collect(),
        )
    }

    /// The parameter segments of `path` if it matches. As warp's `path!`, one trailing slash
    /// is allowed.
    pub fn matches<'p>(&self, path: &'p str) -> Option<Vec<&'p str>> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != self.0.len() {
            return None;
        }
        let mut params = Vec::new();
        for (want, got) in self.0.iter().zip(parts) {
            match want {
                Some(literal) if literal != got => return None,
                Some(_) => {}
                None => params.push(got),
            }
        }
        Some(params)
    }

    /// The documented path of `P` with `param` in place of its one parameter.
    pub fn link<P: utoipa::Path>(param: &str) -> String {
        P::path()
            .split('/')
            .map(|s| if s.starts_with('{') { param } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// How many parameters it has: fewer wins when two templates match a path.
    pub fn parameters(&self) -> usize {
        self.0.iter().filter(|s| s.is_none()).count()
    }
}

/// The filter of the documented operation `P` without path parameters.
pub fn endpoint0<P: utoipa::Path + 'static>() -> BoxedFilter<()> {
    matching::<P>(0)
        .and_then(|_: Vec<String>| async { Ok::<_, Rejection>(()) })
        .untuple_one()
        .and(method::<P>())
        .boxed()
}

/// The filter of the documented operation `P` with one path parameter, parsed as `A` (as
/// warp's `param`: no percent-decoding; an empty or unparsable segment does not match).
pub fn endpoint1<P: utoipa::Path + 'static, A: FromStr + Send + Sync + 'static>()
-> BoxedFilter<(A,)> {
    matching::<P>(1)
        .and_then(|params: Vec<String>| async move {
            params[0]
                .parse::<A>()
                .map_err(|_| warp::reject::not_found())
        })
        .and(method::<P>())
        .boxed()
}

/// The filter of the documented operation `P` with two path parameters, as text.
pub fn endpoint2<P: utoipa::Path + 'static>() -> BoxedFilter<(String, String)> {
    matching::<P>(2)
        .map(|params: Vec<String>| (params[0].clone(), params[1].clone()))
        .untuple_one()
        .and(method::<P>())
        .boxed()
}

/// The path of `P` (its parameter segments), checked first: a known path with another method
/// is a 405, not a 404.
fn matching<P: utoipa::Path + 'static>(
    parameters: usize,
) -> impl Filter<Extract = (Vec<String>,), Error = Rejection> + Clone {
    let template = Arc::new(Template::new(&P::path()));
    assert_eq!(
        template.parameters(),
        parameters,
        "{}: route! names each path parameter",
        P::path()
    );
    warp::path::full().and_then(move |full: warp::path::FullPath| {
        let template = template.clone();
        async move {
            match template.matches(full.as_str()) {
                Some(params) if params.iter().all(|p| !p.is_empty()) => {
                    Ok(params.into_iter().map(str::to_owned).collect())
                }
                _ => Err(warp::reject::not_found()),
            }
        }
    })
}

fn method<P: utoipa::Path + 'static>() -> BoxedFilter<()> {
    match P::methods().as_slice() {
        [m] => method_filter(m),
        _ => panic!("{} must document one method", P::path()),
    }
}

fn method_filter(method: &HttpMethod) -> BoxedFilter<()> {
    match method {
        HttpMethod::Get => warp::get().boxed(),
        HttpMethod::Post => warp::post().boxed(),
        HttpMethod::Put => warp::put().boxed(),
        HttpMethod::Patch => warp::patch().boxed(),
        HttpMethod::Delete => warp::delete().boxed(),
        _ => panic!("a route method is GET, POST, PUT, PATCH or DELETE"),
    }
}

/// The `{eventId}` of a route's path, for its `params(…)`.
#[derive(utoipa::IntoParams)]
#[into_params(names("eventId"), parameter_in = Path)]
#[allow(dead_code)]
pub struct EventId(
    /// The event's id
    String,
);

/// What the resources build their routes from: the state, the settings, the auth filters.
#[derive(Clone)]
pub struct Ctx {
    pub state: crate::AppState,
    pub cfg: crate::ApiConfig,
    pub auth: crate::auth::Auth,
    pub guards: crate::server::Guards,
}

impl Ctx {
    /// A connection from the pool; none available is a 503.
    pub fn db(
        &self,
    ) -> impl Filter<Extract = (crate::read::Client,), Error = Rejection> + Clone + use<> {
        let pool = self.state.pool.clone();
        warp::any().and_then(move || {
            let pool = pool.clone();
            async move { pool.get().await.map_err(|e| reject(e.into())) }
        })
    }

    /// The hot reads, from the in-memory view or PostgreSQL.
    pub fn reader(&self) -> crate::read::Reader {
        crate::read::Reader::new(
            self.state.feed.clone(),
            self.state.pool.clone(),
            self.stale_after(),
        )
    }

    /// How old an event's latest numbers may be before it shows as stale.
    pub fn stale_after(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.cfg.stale_after_secs as i64)
    }
}

/// Rejects with `problem`; for filters, whose errors are rejections.
pub fn reject(problem: Problem) -> Rejection {
    warp::reject::custom(problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_as_warp_paths_do() {
        let t = Template::new("/api/partner/events/{eventId}/attendance");
        assert_eq!(
            t.matches("/api/partner/events/e1/attendance"),
            Some(vec!["e1"])
        );
        assert_eq!(
            t.matches("/api/partner/events/e1/attendance/"),
            Some(vec!["e1"])
        );
        assert_eq!(t.matches("/api/partner/events/e1/attendance//"), None);
        assert_eq!(t.matches("/api/partner/events/e1"), None);
        assert_eq!(t.matches("/api/partner/events/e1/other"), None);
        assert_eq!(t.parameters(), 1);
    }
}
