//! The API's resources, one module each: its response types, its handlers with their OpenAPI
//! description (`Doc`), and its `routes`. A handler's `tag` names its audience: the document
//! adds that audience's security and auth answers (401, 403, 429) to it (`openapi::audience`),
//! so a handler lists only the answers of its own.

pub mod admin;
pub mod checkins;
pub mod dashboard;
pub mod insights;
pub mod partner;
pub mod partners;
pub mod premium;
pub mod public;
pub mod services;
pub mod sql;
pub mod stream;
pub mod webhooks;

use utoipa::OpenApi;

use crate::route::{Ctx, Route, any};

/// Every resource's routes.
pub fn routes(ctx: &Ctx) -> Route {
    any([
        public::routes(ctx),
        services::routes(ctx),
        checkins::routes(ctx),
        partners::routes(ctx),
        admin::routes(ctx),
        partner::routes(ctx),
        dashboard::routes(ctx),
        premium::routes(ctx),
        sql::routes(ctx),
        insights::routes(ctx),
        webhooks::routes(ctx),
        stream::routes(ctx),
    ])
}

/// Every resource's OpenAPI description.
pub fn docs() -> [utoipa::openapi::OpenApi; 12] {
    [
        public::Doc::openapi(),
        services::Doc::openapi(),
        checkins::Doc::openapi(),
        partners::Doc::openapi(),
        admin::Doc::openapi(),
        partner::Doc::openapi(),
        dashboard::Doc::openapi(),
        premium::Doc::openapi(),
        sql::Doc::openapi(),
        insights::Doc::openapi(),
        webhooks::Doc::openapi(),
        stream::Doc::openapi(),
    ]
}
