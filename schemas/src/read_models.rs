//! The read-model tables the projections own in PostgreSQL, for readers outside the projections
//! crate (`muster sql`, the insights) that must not depend on it. The projections' registry
//! checks in a unit test that this list names exactly its tables.

/// Read models only the admin reads (the dead-letter log: other events' raw bytes), never
/// offered to SQL or partners; not in [`TABLES`].
pub const ADMIN_TABLES: &[&str] = &["dead_letter_log"];

/// The catalogue of the tables SQL processors declare (`-- table:`): those are read models
/// too, known only at run time, so readers list them from here (`name`).
pub const DECLARED_CATALOGUE: &str = "declared_tables";

pub const TABLES: &[&str] = &[
    "alerts",
    "event_catalogue",
    "event_realtime",
    "event_series_hour",
    "event_series_minute",
    "gate_series_hour",
    "gate_series_minute",
    "service_health_history",
];

/// Which read model a committed batch changed for an event, as the change log
/// (`change_log.kind`) records it and the API's live feed announces it: each projection that
/// readers watch announces one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// `event_realtime`: the latest numbers.
    Realtime,
    /// `event_series_minute`, `event_series_hour`: attendance through time.
    Series,
    /// `gate_series_minute`, `gate_series_hour`: entries and exits per gate.
    Gates,
    /// `alerts`: an alert raised or resolved.
    Alerts,
    /// `service_health_history`: the upstream service's health moved.
    ServiceHealth,
    /// `event_catalogue`: the event's metadata (or its removal).
    Catalogue,
}

impl ChangeKind {
    pub const ALL: &'static [Self] = &[
        Self::Realtime,
        Self::Series,
        Self::Gates,
        Self::Alerts,
        Self::ServiceHealth,
        Self::Catalogue,
    ];

    /// The text stored in `change_log.kind` and sent as an SSE event's name (serde's too).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Realtime => "realtime",
            Self::Series => "series",
            Self::Gates => "gates",
            Self::Alerts => "alerts",
            Self::ServiceHealth => "service-health",
            Self::Catalogue => "catalogue",
        }
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ChangeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown change kind {s:?}"))
    }
}

/// The full-text document of an `event_catalogue` row (name, venue, type, id, weighted in that
/// order; configuration `simple`, which splits on spaces and lowercases, so Korean and English
/// alike), with `$alias` before each column (`""` or `"c."`). Its index (the catalogue's
/// migration) and the API's search both spell it with this macro: PostgreSQL uses an
/// expression index only for the same expression. Part of a released migration: never change
/// it; a new document is a new macro and a new migration step.
#[macro_export]
macro_rules! catalogue_search_doc {
    ($alias:literal) => {
        concat!(
            "(setweight(to_tsvector('simple', ",
            $alias,
            "name), 'A') || ",
            "setweight(to_tsvector('simple', coalesce(",
            $alias,
            "venue, '')), 'B') || ",
            "setweight(to_tsvector('simple', ",
            $alias,
            "event_type), 'C') || ",
            "setweight(to_tsvector('simple', ",
            $alias,
            "event_id), 'D'))"
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_kinds_read_back_as_serde_writes_them() {
        for k in ChangeKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(k.as_str().parse::<ChangeKind>().unwrap(), *k);
        }
        assert!("nope".parse::<ChangeKind>().is_err());
    }
}
