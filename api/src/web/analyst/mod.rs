//! The analyst pages, for the admin and premium partners (a partner of the plain tier gets a
//! 403 page): [`sql`], the query box over the engine and limits of `POST /api/premium/sql`,
//! its answer as a table and as CSV or Parquet files; [`patterns`], attendance by weekday ×
//! hour as a heatmap; [`forecasts`], forecasts with their backtest error, and ROI. Each reads
//! through the function its JSON route calls.

mod forecasts;
mod patterns;
mod sql;
mod texts;

use warp::Filter;
use warp::http::StatusCode;

use super::{Site, paths};
use crate::auth::{Tier, Viewer};
use crate::problem::Problem;
use crate::route::{Route, any};

/// 403 unless the viewer is the admin or a premium partner.
fn analyst(viewer: &Viewer) -> Result<(), Problem> {
    match viewer {
        Viewer::Partner(p) if p.tier != Tier::Premium => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "premium-required",
            "The analyst pages need a premium API key",
        )),
        _ => Ok(()),
    }
}

pub fn routes(site: &Site) -> Route {
    let page = || site.page_request();
    let post = || site.form_request();
    any([
        (paths::at(paths::SQL).and(page())).then(sql::page).boxed(),
        (paths::at(paths::SQL).and(post())).then(sql::run).boxed(),
        (paths::sub_at(paths::SQL, paths::DOWNLOAD).and(post()))
            .then(sql::download)
            .boxed(),
        (paths::at(paths::PATTERNS).and(warp::query()).and(page()))
            .then(patterns::page)
            .boxed(),
        (paths::at(paths::FORECASTS).and(page()))
            .then(forecasts::page)
            .boxed(),
    ])
}
