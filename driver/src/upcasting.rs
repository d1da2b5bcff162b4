//! Upcasters: old shapes of an event read as its current one.
//!
//! An event's payload has a schema version (`event_version`). When the shape
//! of an event type changes, the application registers, for each old version
//! `v`, a function that turns the payload at `v` into the payload at `v + 1`.
//! Reading applies the chain (v1 → v2 → v3 …), so aggregates and projections
//! only ever see the current version; the stored event is never changed.
//!
//! The registry knows the event types it has steps for, and those declared
//! with [`UpcastersBuilder::declare`] (types still at version 1): an event of
//! such a type stored at a version newer than the registry's is refused
//! ([`UpcastError::UnknownVersion`]), never misread. Events of types it does
//! not know pass through as stored.
//!
//! The registry is pure domain code: no I/O, nothing of the stores.
//!
//! ```
//! use forgeerp_infra::upcasting::Upcasters;
//! let upcasters = Upcasters::builder()
//!     .step("PriceSet", 1, |mut payload| {
//!         payload["currency"] = "EUR".into(); // v1 had no currency
//!         Ok(payload)
//!     })
//!     .build()
//!     .unwrap();
//! assert_eq!(upcasters.current_version("PriceSet"), 2);
//! assert_eq!(upcasters.current_version("Other"), 1);
//! ```

use crate::event::StoredEvent;
use crate::ids::EventId;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// One step: the payload at version `v` to the payload at `v + 1`, or why not.
pub type Step = dyn Fn(Value) -> Result<Value, String> + Send + Sync;

/// Why a registry could not be built, or an event not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    /// The steps of a type do not form one chain from version 1.
    #[error("the upcasters of {event_type} have no step from version {missing} (a chain starts at 1 and has no gap)")]
    MissingStep {
        /// The event type.
        event_type: String,
        /// The version no step starts from.
        missing: u32,
    },
    /// Two steps from the same version of a type.
    #[error("the upcasters of {event_type} have two steps from version {version}")]
    DuplicateStep {
        /// The event type.
        event_type: String,
        /// The version both start from.
        version: u32,
    },
    /// The stored event is newer than any version the application knows.
    #[error("event {event_id} is {event_type} version {version}, but this application knows it only up to version {known}")]
    UnknownVersion {
        /// The event.
        event_id: EventId,
        /// Its type.
        event_type: String,
        /// Its stored version.
        version: u32,
        /// The newest version the application knows.
        known: u32,
    },
    /// A step returned an error or panicked.
    #[error("upcasting event {event_id} ({event_type} version {version}) failed: {reason}")]
    Failed {
        /// The event.
        event_id: EventId,
        /// Its type.
        event_type: String,
        /// The version the failing step started from.
        version: u32,
        /// What the step said (or that it panicked).
        reason: String,
    },
}

/// The registered upcasters of an application: per event type, one step
/// from each old version. Cheap to clone.
#[derive(Clone, Default)]
pub struct Upcasters {
    /// Per event type, its steps by the version they start from (1, 2, … n-1).
    chains: Arc<HashMap<String, Vec<Arc<Step>>>>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut versions: Vec<(&String, u32)> = self
            .chains
            .keys()
            .map(|t| (t, self.current_version(t)))
            .collect();
        versions.sort();
        f.debug_struct("Upcasters")
            .field("current_versions", &versions)
            .finish()
    }
}

/// Collects steps; [`UpcastersBuilder::build`] checks them.
#[derive(Default)]
pub struct UpcastersBuilder {
    steps: Vec<(String, u32, Arc<Step>)>,
    declared: Vec<String>,
}

impl UpcastersBuilder {
    /// Declares `event_type` known (at version 1 unless it has steps), so
    /// that a newer stored version of it is an error.
    pub fn declare(mut self, event_type: impl Into<String>) -> Self {
        self.declared.push(event_type.into());
        self
    }

    /// Registers the step of `event_type` from `from_version` to `from_version + 1`.
    pub fn step(
        mut self,
        event_type: impl Into<String>,
        from_version: u32,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.steps
            .push((event_type.into(), from_version, Arc::new(step)));
        self
    }

    /// The registry; an error when a type's steps do not chain from version 1
    /// without a gap, or two start from one version.
    pub fn build(self) -> Result<Upcasters, UpcastError> {
        let mut by_type: HashMap<String, BTreeMap<u32, Arc<Step>>> = HashMap::new();
        for event_type in self.declared {
            by_type.entry(event_type).or_default();
        }
        for (event_type, from, step) in self.steps {
            let steps = by_type.entry(event_type.clone()).or_default();
            if steps.insert(from, step).is_some() {
                return Err(UpcastError::DuplicateStep {
                    event_type,
                    version: from,
                });
            }
        }
        let mut chains = HashMap::new();
        for (event_type, steps) in by_type {
            let mut chain = Vec::with_capacity(steps.len());
            for (expected, (from, step)) in (1u32..).zip(steps) {
                if from != expected {
                    return Err(UpcastError::MissingStep {
                        event_type,
                        missing: expected,
                    });
                }
                chain.push(step);
            }
            chains.insert(event_type, chain);
        }
        Ok(Upcasters {
            chains: Arc::new(chains),
        })
    }
}

impl Upcasters {
    /// No upcasters: every event type is at version 1.
    pub fn none() -> Self {
        Upcasters::default()
    }

    /// A builder to register steps with.
    pub fn builder() -> UpcastersBuilder {
        UpcastersBuilder::default()
    }

    /// The version new events of `event_type` are written at: one past its
    /// last step, 1 when it has none (or the registry does not know it).
    pub fn current_version(&self, event_type: &str) -> u32 {
        self.chains
            .get(event_type)
            .map_or(1, |chain| chain.len() as u32 + 1)
    }

    /// `event` at its type's current version: the steps from its stored
    /// version applied in order (none when it is current). A version newer
    /// than the current one is [`UpcastError::UnknownVersion`]; a step that
    /// fails or panics is [`UpcastError::Failed`].
    pub fn upcast(&self, mut event: StoredEvent) -> Result<StoredEvent, UpcastError> {
        let Some(chain) = self.chains.get(&event.event_type) else {
            return Ok(event); // a type this registry does not know
        };
        let known = chain.len() as u32 + 1;
        if event.event_version > known {
            return Err(UpcastError::UnknownVersion {
                event_id: event.event_id,
                event_type: event.event_type,
                version: event.event_version,
                known,
            });
        }
        if event.event_version == known {
            return Ok(event);
        }
        // A stored version 0 is read as 1 (the store refuses versions < 1).
        for version in event.event_version.max(1)..known {
            let step = &chain[(version - 1) as usize];
            let payload = std::mem::take(&mut event.payload);
            let failed = |reason: String| UpcastError::Failed {
                event_id: event.event_id,
                event_type: event.event_type.clone(),
                version,
                reason,
            };
            event.payload = match catch_unwind(AssertUnwindSafe(|| step(payload))) {
                Ok(Ok(payload)) => payload,
                Ok(Err(reason)) => return Err(failed(reason)),
                Err(_) => return Err(failed("the upcaster panicked".into())),
            };
            event.event_version = version + 1;
        }
        Ok(event)
    }

    /// [`Upcasters::upcast`] without a copy when `event` is current already
    /// (the common case: the type is unknown to the registry or at its
    /// current version).
    pub fn current<'a>(
        &self,
        event: &'a StoredEvent,
    ) -> Result<std::borrow::Cow<'a, StoredEvent>, UpcastError> {
        match self.chains.get(&event.event_type) {
            None => Ok(std::borrow::Cow::Borrowed(event)),
            Some(chain) if event.event_version == chain.len() as u32 + 1 => {
                Ok(std::borrow::Cow::Borrowed(event))
            }
            Some(_) => self.upcast(event.clone()).map(std::borrow::Cow::Owned),
        }
    }

    /// [`Upcasters::upcast`] of every event, stopping at the first error.
    pub fn upcast_all(&self, events: Vec<StoredEvent>) -> Result<Vec<StoredEvent>, UpcastError> {
        events.into_iter().map(|e| self.upcast(e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::UncommittedEvent;
    use crate::ids::{AggregateId, TenantId};
    use serde_json::json;

    fn stored(event_type: &str, version: u32, payload: Value) -> StoredEvent {
        UncommittedEvent::new(
            TenantId::random(),
            "t",
            AggregateId::random(),
            event_type,
            payload,
        )
        .with_event_version(version)
        .into_stored(1, 1, 1, chrono::Utc::now())
    }

    fn chain() -> Upcasters {
        Upcasters::builder()
            .step("Renamed", 2, |mut p| {
                p["units"] = p["qty"].take();
                p.as_object_mut().unwrap().remove("qty");
                Ok(p)
            })
            .step("Renamed", 1, |mut p| {
                p["qty"] = p["n"].take();
                p.as_object_mut().unwrap().remove("n");
                Ok(p)
            })
            .build()
            .unwrap()
    }

    #[test]
    fn a_chain_applies_in_order_whatever_the_registration_order() {
        let upcasters = chain();
        assert_eq!(upcasters.current_version("Renamed"), 3);
        let v1 = upcasters
            .upcast(stored("Renamed", 1, json!({"n": 4})))
            .unwrap();
        assert_eq!((v1.event_version, v1.payload), (3, json!({"units": 4})));
        let v2 = upcasters
            .upcast(stored("Renamed", 2, json!({"qty": 5})))
            .unwrap();
        assert_eq!((v2.event_version, v2.payload), (3, json!({"units": 5})));
        let v3 = upcasters
            .upcast(stored("Renamed", 3, json!({"units": 6})))
            .unwrap();
        assert_eq!((v3.event_version, v3.payload), (3, json!({"units": 6})));
        let other = upcasters
            .upcast(stored("Other", 1, json!({"a": 1})))
            .unwrap();
        assert_eq!(other.payload, json!({"a": 1}));
    }

    #[test]
    fn a_gap_or_a_late_start_is_refused_at_registration() {
        let gap = Upcasters::builder()
            .step("E", 1, Ok)
            .step("E", 3, Ok)
            .build()
            .unwrap_err();
        assert_eq!(
            gap,
            UpcastError::MissingStep {
                event_type: "E".into(),
                missing: 2
            }
        );
        let late = Upcasters::builder().step("E", 2, Ok).build().unwrap_err();
        assert_eq!(
            late,
            UpcastError::MissingStep {
                event_type: "E".into(),
                missing: 1
            }
        );
        let twice = Upcasters::builder()
            .step("E", 1, Ok)
            .step("E", 1, Ok)
            .build()
            .unwrap_err();
        assert_eq!(
            twice,
            UpcastError::DuplicateStep {
                event_type: "E".into(),
                version: 1
            }
        );
    }

    #[test]
    fn a_newer_version_is_an_error_naming_type_and_version() {
        let event = stored("Renamed", 4, json!({}));
        let id = event.event_id;
        let error = chain().upcast(event).unwrap_err();
        assert_eq!(
            error,
            UpcastError::UnknownVersion {
                event_id: id,
                event_type: "Renamed".into(),
                version: 4,
                known: 3
            }
        );
        assert!(error.to_string().contains("Renamed version 4"), "{error}");
        let declared = Upcasters::builder().declare("New").build().unwrap();
        let newer = declared.upcast(stored("New", 2, json!({}))).unwrap_err();
        assert!(
            matches!(newer, UpcastError::UnknownVersion { known: 1, .. }),
            "{newer}"
        );
        // A type the registry does not know passes through as stored.
        let passed = Upcasters::none()
            .upcast(stored("New", 2, json!({"a": 1})))
            .unwrap();
        assert_eq!((passed.event_version, passed.payload), (2, json!({"a": 1})));
    }

    #[test]
    fn a_failing_or_panicking_step_is_an_error_for_that_event() {
        let upcasters = Upcasters::builder()
            .step("Fails", 1, |_| Err("no quantity".into()))
            .step("Panics", 1, |_| panic!("boom"))
            .build()
            .unwrap();
        let event = stored("Fails", 1, json!({}));
        let id = event.event_id;
        assert_eq!(
            upcasters.upcast(event).unwrap_err(),
            UpcastError::Failed {
                event_id: id,
                event_type: "Fails".into(),
                version: 1,
                reason: "no quantity".into()
            }
        );
        let panics = upcasters
            .upcast(stored("Panics", 1, json!({})))
            .unwrap_err();
        assert!(
            matches!(&panics, UpcastError::Failed { reason, .. } if reason.contains("panicked")),
            "{panics}"
        );
    }
}
