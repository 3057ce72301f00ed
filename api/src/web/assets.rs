//! The pages' CSS and JavaScript, embedded in the binary: our own small files and the vendored
//! npm packages (`api/assets/vendor/`, with their licences). Each is served at a URL holding a
//! hash of its bytes, so it can be cached for a year and a new build is fetched anew; gzipped
//! once, on first use, for clients that take it.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use warp::Filter;
use warp::Reply;
use warp::http::{HeaderValue, header};

use crate::route::Route;

/// An asset a page may link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Css,
    Js,
    /// The event page's charts.
    EventJs,
    Htmx,
    HtmxSse,
    Uplot,
    UplotCss,
    Icon,
}

impl Asset {
    const ALL: [Asset; 8] = [
        Self::Css,
        Self::Js,
        Self::EventJs,
        Self::Htmx,
        Self::HtmxSse,
        Self::Uplot,
        Self::UplotCss,
        Self::Icon,
    ];

    /// (name, extension, bytes).
    fn file(self) -> (&'static str, &'static str, &'static [u8]) {
        macro_rules! file {
            ($name:literal, $ext:literal, $path:literal) => {
                (
                    $name,
                    $ext,
                    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)),
                )
            };
        }
        match self {
            Self::Css => file!("app", "css", "app.css"),
            Self::Js => file!("app", "js", "app.js"),
            Self::EventJs => file!("event", "js", "event.js"),
            Self::Htmx => file!("htmx", "js", "vendor/htmx.org/htmx.min.js"),
            Self::HtmxSse => file!("htmx-sse", "js", "vendor/htmx-ext-sse/sse.min.js"),
            Self::Uplot => file!("uplot", "js", "vendor/uplot/uPlot.iife.min.js"),
            Self::UplotCss => file!("uplot", "css", "vendor/uplot/uPlot.min.css"),
            Self::Icon => file!("icon", "svg", "icon.svg"),
        }
    }

    fn content_type(self) -> &'static str {
        match self.file().1 {
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            _ => "text/javascript; charset=utf-8",
        }
    }

    /// Its URL, `/assets/<name>.<hash>.<ext>`.
    pub fn url(self) -> &'static str {
        &built()[self as usize].url
    }
}

struct Built {
    url: String,
    gzip: OnceLock<Vec<u8>>,
}

fn built() -> &'static [Built] {
    static BUILT: OnceLock<Vec<Built>> = OnceLock::new();
    BUILT.get_or_init(|| {
        Asset::ALL
            .iter()
            .map(|a| {
                let (name, ext, bytes) = a.file();
                let hash: String = Sha256::digest(bytes)[..8]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                Built {
                    url: format!(
                        "{}/{name}.{hash}.{ext}",
                        super::paths::to(super::paths::ASSETS)
                    ),
                    gzip: OnceLock::new(),
                }
            })
            .collect()
    })
}

fn gzipped(asset: Asset) -> &'static [u8] {
    built()[asset as usize].gzip.get_or_init(|| {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(asset.file().2)
            .and_then(|()| enc.finish())
            .expect("gzip into memory")
    })
}

/// `GET /assets/{file}`: only the current hashed names answer.
pub fn routes() -> Route {
    warp::path(super::paths::ASSETS)
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::header::optional::<String>("accept-encoding"))
        .and_then(|file: String, encodings: Option<String>| async move {
            let asset = Asset::ALL
                .into_iter()
                .find(|a| a.url().rsplit('/').next() == Some(file.as_str()))
                .ok_or_else(warp::reject::not_found)?;
            Ok::<_, warp::Rejection>(serve(asset, encodings.as_deref()))
        })
        .boxed()
}

fn serve(asset: Asset, encodings: Option<&str>) -> warp::reply::Response {
    let gzip = encodings.is_some_and(|e| {
        e.split(',')
            .any(|x| x.split(';').next().is_some_and(|n| n.trim() == "gzip"))
    });
    let body = if gzip { gzipped(asset) } else { asset.file().2 };
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type()),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_distinct_hashed_and_typed() {
        let urls: Vec<&str> = Asset::ALL.iter().map(|a| a.url()).collect();
        for (i, u) in urls.iter().enumerate() {
            assert!(
                u.starts_with("/assets/") && u.matches('.').count() == 2,
                "{u}"
            );
            assert!(!urls[i + 1..].contains(u), "{u} twice");
        }
        assert!(Asset::Htmx.url().ends_with(".js"));
        assert_eq!(Asset::Css.content_type(), "text/css; charset=utf-8");
        let gz = gzipped(Asset::Htmx);
        assert!(gz.len() < Asset::Htmx.file().2.len() / 2);
    }
}
