//! The API's domain values as enums, so that the OpenAPI document lists what each field may
//! hold and a query parameter outside them is a 400. The alert vocabulary is
//! `muster_schemas`'; its enums are described here from their own lists of values.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// An enum that is text on the wire and in PostgreSQL: serde, `FromStr` (`text_values!`) and
/// the OpenAPI schema all come from the one list. The texts are the lowercase variant names
/// (utoipa reads serde's `rename_all`, not a `rename` built by a macro;
/// `texts_are_what_serde_writes` checks them).
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
            utoipa::ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        muster_schemas::text_values!($name { $($variant => $text),+ });
    };
}
pub(crate) use text_enum;

text_enum!(
    /// Which way attendance moved over a range (within ±5 % is steady).
    pub enum Direction {
        Rising => "rising",
        Falling => "falling",
        Steady => "steady",
    }
);

text_enum!(
    /// The width of the buckets a gate's peak is counted in.
    pub enum GateWindow {
        Minute => "minute",
        Hour => "hour",
    }
);

fn text_enum_schema(values: impl Iterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .into()
}

/// `muster_schemas::AlertKind` in the OpenAPI document.
pub fn alert_kind() -> RefOr<Schema> {
    text_enum_schema(muster_schemas::AlertKind::ALL.iter().map(|k| k.as_str()))
}

/// `muster_schemas::read_models::ChangeKind` in the OpenAPI document.
pub fn change_kind() -> RefOr<Schema> {
    text_enum_schema(
        muster_schemas::read_models::ChangeKind::ALL
            .iter()
            .map(|k| k.as_str()),
    )
}

/// `muster_schemas::Severity` in the OpenAPI document.
pub fn severity() -> RefOr<Schema> {
    text_enum_schema(muster_schemas::Severity::ALL.iter().map(|s| s.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts_match<T: serde::Serialize + std::str::FromStr + PartialEq + std::fmt::Debug>(
        all: &[T],
        text: impl Fn(&T) -> &'static str,
    ) where
        T::Err: std::fmt::Debug,
    {
        for v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), text(v), "{v:?}");
            assert_eq!(&text(v).parse::<T>().unwrap(), v);
        }
    }

    #[test]
    fn texts_are_what_serde_writes() {
        texts_match(Direction::ALL, |v| v.as_str());
        texts_match(GateWindow::ALL, |v| v.as_str());
        texts_match(crate::range::Resolution::ALL, |v| v.as_str());
        texts_match(crate::range::Stored::ALL, |v| v.as_str());
        texts_match(crate::auth::Tier::ALL, |v| v.as_str());
        texts_match(crate::read::events::Status::ALL, |v| v.as_str());
        texts_match(crate::read::alerts::AlertState::ALL, |v| v.as_str());
        texts_match(muster_webhooks::log::DeliveryState::ALL, |v| v.as_str());
    }
}
