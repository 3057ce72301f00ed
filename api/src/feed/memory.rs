//! The process's in-memory view of what its hot routes read: each event as every list shows it
//! with its last hour by minute, and the live keys with their partners. The feed's listener
//! fills it when its session starts and keeps it current from the change log (and from the
//! keys' notifications); routes read it without a PostgreSQL round trip.
//!
//! PostgreSQL stays the source of truth. While the listener has no session (PostgreSQL gone,
//! connection lost) the view is *not fresh*, every read answers `None`, and routes read
//! PostgreSQL as they did before the view existed; `/readyz` says so. A key the view does not
//! hold is looked up in PostgreSQL too (a key created on another process a moment ago), so
//! the view only ever answers yes for a key it holds: one revoked is gone from it as soon as
//! the notification arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};

use crate::auth::Partner;
use crate::read::events::{Event, Filter, Realtime, derived_status};
use crate::read::series::{MinutePoint, last_hour_from};

/// A live key as the view holds it: its partner, and when it stops working if it was rotated
/// with a grace period.
#[derive(Debug, Clone)]
pub struct LiveKey {
    pub partner: Partner,
    pub expires_at: Option<DateTime<Utc>>,
}

/// One event with its last hour by minute (oldest first).
#[derive(Debug, Clone)]
struct Cached {
    event: Event,
    minutes: Arc<[MinutePoint]>,
}

/// The live keys as one read found them. Reads may finish out of order (the listener's reload
/// and a route's refresh after its own write), so each takes a ticket before it starts, and
/// the view only takes keys read after the ones it holds: a slow older read never brings a
/// revoked key back.
#[derive(Debug, Default)]
pub struct KeysRead {
    pub ticket: u64,
    pub keys: Vec<(Vec<u8>, LiveKey)>,
}

/// The keys the view holds, and the ticket of the read that found them.
#[derive(Debug, Default)]
struct Keys {
    ticket: u64,
    by_hash: HashMap<Vec<u8>, LiveKey>,
}

/// Everything the view holds at once, read from PostgreSQL when the listener's session starts.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub keys: KeysRead,
    pub events: Vec<Event>,
    pub minutes: HashMap<String, Vec<MinutePoint>>,
}

/// See the module's doc. Cheap to share (the feed holds it in an `Arc`).
#[derive(Debug)]
pub struct Memory {
    fresh: AtomicBool,
    stale_after: Duration,
    tickets: AtomicU64,
    keys: RwLock<Keys>,
    events: RwLock<HashMap<String, Cached>>,
}

impl Memory {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            fresh: AtomicBool::new(false),
            stale_after,
            tickets: AtomicU64::new(0),
            keys: RwLock::default(),
            events: RwLock::default(),
        }
    }

    /// Whether reads answer from the view (the listener has a session and has loaded it).
    pub fn is_fresh(&self) -> bool {
        self.fresh.load(Ordering::Acquire)
    }

    /// Replaces everything with `snapshot` and serves from it.
    pub fn load(&self, snapshot: Snapshot) {
        let Snapshot {
            keys,
            events,
            mut minutes,
        } = snapshot;
        self.replace_keys(keys);
        let events = events
            .into_iter()
            .map(|event| {
                let minutes = minutes.remove(&event.event_id).unwrap_or_default().into();
                (event.event_id.clone(), Cached { event, minutes })
            })
            .collect();
        *self.events.write().expect("memory lock poisoned") = events;
        self.fresh.store(true, Ordering::Release);
    }

    /// Stops serving from the view until the next [`Self::load`] (the listener lost its
    /// session, so changes may be passing it by).
    pub fn lost(&self) {
        self.fresh.store(false, Ordering::Release);
    }

    /// Taken just before the keys are read (see [`KeysRead`]).
    pub fn key_ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Takes `read` unless the view holds keys read after it.
    pub fn replace_keys(&self, read: KeysRead) {
        let mut keys = self.keys.write().expect("memory lock poisoned");
        if read.ticket > keys.ticket {
            *keys = Keys {
                ticket: read.ticket,
                by_hash: read.keys.into_iter().collect(),
            };
        }
    }

    /// Takes in events as a change re-read them: `Some` replaces the event's list entry (its
    /// minutes stay), `None` removes an event the catalogue no longer lists.
    pub fn events_changed<'a>(
        &self,
        changed: impl IntoIterator<Item = (&'a str, Option<&'a Event>)>,
    ) {
        let mut events = self.events.write().expect("memory lock poisoned");
        for (event_id, event) in changed {
            match event {
                Some(e) => match events.get_mut(event_id) {
                    Some(cached) => cached.event = e.clone(),
                    None => {
                        let cached = Cached {
                            event: e.clone(),
                            minutes: Arc::from([]),
                        };
                        events.insert(event_id.to_owned(), cached);
                    }
                },
                None => {
                    events.remove(event_id);
                }
            }
        }
    }

    /// Replaces the last hour of each of `ids` with what `minutes` holds for it (none when it
    /// holds nothing: the event's minutes all aged out).
    pub fn minutes_changed(&self, ids: &[String], mut minutes: HashMap<String, Vec<MinutePoint>>) {
        let mut events = self.events.write().expect("memory lock poisoned");
        for id in ids {
            if let Some(cached) = events.get_mut(id) {
                cached.minutes = minutes.remove(id).unwrap_or_default().into();
            }
        }
    }

    /// The partner of the live key hashed `key_hash` if the view holds it; `None` when the
    /// view is not fresh or does not hold it (ask PostgreSQL: it may be a new key).
    pub fn partner(&self, key_hash: &[u8], now: DateTime<Utc>) -> Option<Partner> {
        if !self.is_fresh() {
            return None;
        }
        let keys = self.keys.read().expect("memory lock poisoned");
        let key = keys.by_hash.get(key_hash)?;
        key.expires_at
            .is_none_or(|at| at > now)
            .then(|| key.partner.clone())
    }

    /// An event's latest numbers and last hour by minute, as of `now`; `None` when the view is
    /// not fresh or does not list the event (ask PostgreSQL).
    pub fn attendance(
        &self,
        event_id: &str,
        now: DateTime<Utc>,
    ) -> Option<(Option<Realtime>, Vec<MinutePoint>)> {
        if !self.is_fresh() {
            return None;
        }
        let events = self.events.read().expect("memory lock poisoned");
        let cached = events.get(event_id)?;
        let since = last_hour_from(now);
        let minutes = cached
            .minutes
            .iter()
            .filter(|m| m.minute >= since)
            .cloned()
            .collect();
        Some((cached.event.realtime.clone(), minutes))
    }

    /// The events `filter` asks for, by id, with their status as of `now`, as
    /// [`crate::read::events::list`] answers; `None` when the view is not fresh or the filter
    /// searches (the search ranks in PostgreSQL).
    pub fn events(&self, filter: Filter<'_>, now: DateTime<Utc>) -> Option<Vec<Event>> {
        if !self.is_fresh() || filter.search.is_some() {
            return None;
        }
        let events = self.events.read().expect("memory lock poisoned");
        let wanted = |e: &Event| filter.event_type.is_none_or(|t| e.event_type == t);
        let mut out: Vec<Event> = match filter.ids {
            Some(ids) => ids
                .iter()
                .filter_map(|id| events.get(id))
                .map(|c| &c.event)
                .filter(|e| wanted(e))
                .cloned()
                .collect(),
            None => events
                .values()
                .map(|c| &c.event)
                .filter(|e| wanted(e))
                .cloned()
                .collect(),
        };
        drop(events);
        out.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        out.dedup_by(|a, b| a.event_id == b.event_id);
        for e in &mut out {
            let latest = e.realtime.as_ref().map(|r| (r.status, r.fetched_at));
            e.status = derived_status(now, e.starts_at, e.ends_at, latest, self.stale_after);
        }
        Some(out)
    }

    /// How many events and keys the view holds (metrics).
    pub fn sizes(&self) -> (usize, usize) {
        (
            self.events.read().expect("memory lock poisoned").len(),
            self.keys
                .read()
                .expect("memory lock poisoned")
                .by_hash
                .len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Tier;
    use crate::read::events::Status;

    fn event(id: &str, kind: &str, current: i64, fetched: DateTime<Utc>) -> Event {
        Event {
            event_id: id.into(),
            name: format!("Fair {id}"),
            event_type: kind.into(),
            venue: None,
            capacity: Some(100),
            starts_at: None,
            ends_at: None,
            utc_offset_minutes: None,
            status: Status::Live,
            realtime: Some(Realtime {
                status: Status::Live,
                total_registered: 100,
                current_attendees: current,
                attendance_rate: current as f64 / 100.0,
                observed_at: fetched,
                fetched_at: fetched,
            }),
            matched: None,
        }
    }

    fn minute(at: DateTime<Utc>, last: i64) -> MinutePoint {
        MinutePoint {
            minute: at,
            samples: 1,
            attendees_max: last,
            attendees_min: last,
            attendees_last: last,
            attendance_rate_avg: 0.5,
        }
    }

    fn key(expires_at: Option<DateTime<Utc>>) -> LiveKey {
        LiveKey {
            partner: Partner {
                id: uuid::Uuid::nil(),
                name: "p".into(),
                tier: Tier::Partner,
                event_ids: vec!["a".into()],
                key_prefix: "mk_0123".into(),
                rate: None,
            },
            expires_at,
        }
    }

    fn loaded(now: DateTime<Utc>) -> Memory {
        let m = Memory::new(Duration::minutes(5));
        let minutes = HashMap::from([(
            "a".to_owned(),
            vec![
                minute(now - Duration::minutes(90), 1),
                minute(now - Duration::minutes(2), 7),
            ],
        )]);
        m.load(Snapshot {
            keys: KeysRead {
                ticket: m.key_ticket(),
                keys: vec![
                    (vec![1], key(None)),
                    (vec![2], key(Some(now + Duration::seconds(30)))),
                    (vec![3], key(Some(now - Duration::seconds(1)))),
                ],
            },
            events: vec![
                event("b", "concert", 3, now),
                event("a", "exhibition", 7, now - Duration::hours(1)),
            ],
            minutes,
        });
        m
    }

    #[test]
    fn nothing_is_answered_until_loaded_or_after_the_feed_is_lost() {
        let now = Utc::now();
        let m = Memory::new(Duration::minutes(5));
        assert!(m.partner(&[1], now).is_none());
        assert!(m.attendance("a", now).is_none());
        assert!(m.events(Filter::default(), now).is_none());
        let m = loaded(now);
        assert!(m.partner(&[1], now).is_some());
        m.lost();
        assert!(m.partner(&[1], now).is_none(), "PostgreSQL decides again");
        assert!(m.attendance("a", now).is_none());
    }

    #[test]
    fn keys_answer_until_they_expire_and_unknown_ones_go_to_postgres() {
        let now = Utc::now();
        let m = loaded(now);
        assert!(m.partner(&[1], now).is_some());
        assert!(m.partner(&[2], now).is_some(), "within its grace period");
        assert!(m.partner(&[2], now + Duration::minutes(1)).is_none());
        assert!(m.partner(&[3], now).is_none(), "expired");
        assert!(m.partner(&[9], now).is_none(), "unknown: not a refusal");
        let (older, newer) = (m.key_ticket(), m.key_ticket());
        m.replace_keys(KeysRead {
            ticket: newer,
            keys: vec![(vec![2], key(None))],
        });
        assert!(m.partner(&[1], now).is_none(), "revoked");
        // A read that started before the one the view holds finished after it: ignored.
        m.replace_keys(KeysRead {
            ticket: older,
            keys: vec![(vec![1], key(None))],
        });
        assert!(
            m.partner(&[1], now).is_none(),
            "a slow older read brings nothing back"
        );
    }

    #[test]
    fn attendance_shows_the_last_hour_and_follows_changes() {
        let now = Utc::now();
        let m = loaded(now);
        let (realtime, minutes) = m.attendance("a", now).unwrap();
        assert_eq!(realtime.unwrap().current_attendees, 7);
        assert_eq!(
            minutes.len(),
            1,
            "the minute 90 minutes ago is out of the hour"
        );
        assert!(
            m.attendance("zz", now).is_none(),
            "not listed: ask PostgreSQL"
        );

        let newer = event("a", "exhibition", 9, now);
        m.events_changed([("a", Some(&newer))]);
        m.minutes_changed(&["a".into()], HashMap::new());
        let (realtime, minutes) = m.attendance("a", now).unwrap();
        assert_eq!(realtime.unwrap().current_attendees, 9);
        assert!(minutes.is_empty());
        m.events_changed([("a", None)]);
        assert!(
            m.attendance("a", now).is_none(),
            "removed from the catalogue"
        );
    }

    #[test]
    fn lists_filter_sort_and_derive_the_status_now() {
        let now = Utc::now();
        let m = loaded(now);
        let all = m.events(Filter::default(), now).unwrap();
        let ids: Vec<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(all[0].status, Status::Stale, "fetched an hour ago");
        assert_eq!(all[1].status, Status::Live);
        let granted = ["b".to_owned(), "zz".to_owned(), "b".to_owned()];
        let filter = Filter {
            ids: Some(&granted),
            ..Filter::default()
        };
        assert_eq!(m.events(filter, now).unwrap().len(), 1);
        let filter = Filter {
            event_type: Some("exhibition"),
            ..Filter::default()
        };
        assert_eq!(m.events(filter, now).unwrap()[0].event_id, "a");
    }
}
