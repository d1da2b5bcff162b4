//! Crypto-shredding: personal data in append-only events that can still be
//! forgotten.
//!
//! An application declares, per event type, which payload fields are
//! personal and which field names the subject (a person or a customer id)
//! they belong to ([`PersonalDataPolicy`]). Before an append, [`PersonalData`]
//! replaces each such field by a sealed object,
//!
//! ```json
//! {"forgeerp:sealed": 1, "subject": "customer-42", "data": "<base64>"}
//! ```
//!
//! where `data` is the field's JSON encrypted with AES-256-GCM under the
//! subject's data key, with a fresh random nonce, and bound (as associated
//! data) to its tenant, subject, event id and place in the payload. Data
//! keys live in a [`KeyStore`] (in Postgres: `forgeerp_keys.subject_keys`,
//! migration 7), each wrapped by the application's [`MasterKey`], which is
//! never stored.
//!
//! [`PersonalData::forget_subject`] deletes the subject's data key. The
//! events stay as they are (append-only holds), and from then on every
//! sealed field of that subject reads back as [`FORGOTTEN`], wherever events
//! are opened: the command dispatcher, the projection workers, `forgeerp
//! load` and `forgeerp tail`. Opening does not depend on the declarations:
//! any sealed object in a payload is opened, so declarations may change and
//! upcasters may move fields afterwards (events are opened before they are
//! upcast).
//!
//! What forgetting does not reach by itself: copies of the clear fields made
//! before it. Read models are rebuilt (`forgeerp rebuild`) to drop them; the
//! dispatcher neither caches nor snapshots an aggregate whose events carry
//! sealed fields, so it has no copies.

mod key_store;
mod keys;

pub use key_store::{InMemoryKeyStore, KeyStore, KeyStoreFuture, PgKeyStore};
pub use keys::{MasterKey, WrappedKey, MASTER_KEY_ENV, SEALED_KEY};

use crate::db_error::DbFailure;
use crate::event::{StoredEvent, UncommittedEvent};
use crate::ids::TenantId;
use keys::{DataKey, FieldPlace};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// What a sealed field of a forgotten subject reads back as.
pub const FORGOTTEN: &str = "[forgotten]";

/// Why personal data could not be sealed, opened, forgotten or re-wrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersonalDataError {
    /// The master key's text is not 32 bytes in base64 or hex.
    #[error("invalid master key: {0}")]
    InvalidMasterKey(String),
    /// An event declared personal has no subject: refused before the append.
    #[error("event type {event_type} declares personal data of the subject in {field}, but its payload has no {field}")]
    MissingSubject {
        /// The event type.
        event_type: String,
        /// The subject's field (a JSON pointer).
        field: String,
    },
    /// A data key was wrapped by another master key than the configured one.
    #[error("the data keys are wrapped by master key {stored}, but the configured master key is {configured}: wrong master key")]
    WrongMasterKey {
        /// The id of the master key that wrapped the data key.
        stored: String,
        /// The id of the configured master key.
        configured: String,
    },
    /// A data key or sealed field does not authenticate: altered, or moved
    /// from where it was sealed.
    #[error("damaged personal data: {0}")]
    Damaged(String),
    /// The key store failed.
    #[error("key store: {0}")]
    KeyStore(String),
    /// The key store's database refused or lost the statement.
    #[error("key store database: {0:?}")]
    Database(DbFailure),
}

impl From<tokio_postgres::Error> for PersonalDataError {
    fn from(error: tokio_postgres::Error) -> Self {
        PersonalDataError::Database(DbFailure::of(&error))
    }
}

impl From<deadpool_postgres::PoolError> for PersonalDataError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        PersonalDataError::Database(DbFailure::of_pool(&error))
    }
}

/// Which fields of which event types are personal, and whose.
#[derive(Clone, Debug, Default)]
pub struct PersonalDataPolicy {
    declared: HashMap<String, Declaration>,
}

#[derive(Clone, Debug)]
struct Declaration {
    subject: String,
    fields: Vec<String>,
}

/// `field` as a JSON pointer: `name` is `/name`, `/a/b` stays.
fn pointer(field: &str) -> String {
    if field.starts_with('/') {
        field.to_string()
    } else {
        format!("/{}", field.replace('~', "~0").replace('/', "~1"))
    }
}

impl PersonalDataPolicy {
    /// A policy that declares nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares that the payload of every `event_type` names its subject in
    /// `subject_field` (a top-level name or a JSON pointer such as
    /// `/customer/id`; its value a string or a number, required) and holds
    /// that subject's personal data in `fields` (names or pointers; a field
    /// that is absent or null is left as it is). Personal fields read back
    /// as the string [`FORGOTTEN`] once forgotten, so declare text fields.
    pub fn declare(mut self, event_type: &str, subject_field: &str, fields: &[&str]) -> Self {
        self.declared.insert(
            event_type.to_string(),
            Declaration {
                subject: pointer(subject_field),
                fields: fields.iter().map(|f| pointer(f)).collect(),
            },
        );
        self
    }

    /// Whether `event_type` is declared personal.
    pub fn declares(&self, event_type: &str) -> bool {
        self.declared.contains_key(event_type)
    }
}

/// Whether [`PersonalData::forget_subject`] found a key to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgotten {
    /// The subject's key is deleted: its fields read back as [`FORGOTTEN`].
    Key,
    /// The subject had no key (never sealed, or forgotten already): nothing
    /// was done.
    UnknownSubject,
}

/// What [`PersonalData::rotate_master_key`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Data keys wrapped again by the new master key.
    pub rewrapped: u64,
    /// Keys (by master key id) wrapped by a master key this `PersonalData`
    /// does not hold, left as they were.
    pub left: Vec<(String, u64)>,
}

/// Seals, opens and forgets personal data: a policy, a key store and the
/// master key (plus, during a rotation, the previous ones it still opens with).
#[derive(Clone)]
pub struct PersonalData {
    inner: Arc<Inner>,
}

struct Inner {
    policy: PersonalDataPolicy,
    keys: Arc<dyn KeyStore>,
    master: MasterKey,
    previous: Vec<MasterKey>,
}

impl std::fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalData")
            .field("policy", &self.inner.policy)
            .field("master_key", &self.inner.master)
            .finish_non_exhaustive()
    }
}

/// A sealed field found in a payload.
struct Sealed {
    event: usize,
    pointer: String,
    subject: String,
    data: String,
}

impl PersonalData {
    /// Personal data as `policy` declares it, its keys in `keys`, wrapped by `master`.
    pub fn new(
        policy: PersonalDataPolicy,
        keys: impl KeyStore + 'static,
        master: MasterKey,
    ) -> Self {
        PersonalData {
            inner: Arc::new(Inner {
                policy,
                keys: Arc::new(keys),
                master,
                previous: Vec::new(),
            }),
        }
    }

    /// The same, also opening data keys wrapped by `previous` (while a
    /// rotation to the configured key is under way elsewhere).
    pub fn also_opening_with(self, previous: MasterKey) -> Self {
        let inner = &self.inner;
        let mut all = inner.previous.clone();
        all.push(previous);
        PersonalData {
            inner: Arc::new(Inner {
                policy: inner.policy.clone(),
                keys: inner.keys.clone(),
                master: inner.master.clone(),
                previous: all,
            }),
        }
    }

    /// The declarations.
    pub fn policy(&self) -> &PersonalDataPolicy {
        &self.inner.policy
    }

    /// The key store.
    pub fn key_store(&self) -> &dyn KeyStore {
        &*self.inner.keys
    }

    /// The master key new data keys are wrapped by.
    pub fn master_key(&self) -> &MasterKey {
        &self.inner.master
    }

    /// Seals the declared fields of `events`, creating their subjects' data
    /// keys as needed; returns how many fields it sealed. An event declared
    /// personal without its subject is [`PersonalDataError::MissingSubject`],
    /// checked for every event before any key is made.
    pub async fn seal(&self, events: &mut [UncommittedEvent]) -> Result<usize, PersonalDataError> {
        let policy = &self.inner.policy;
        let mut subjects: Vec<Option<String>> = Vec::with_capacity(events.len());
        for event in events.iter() {
            subjects.push(match policy.declared.get(&event.event_type) {
                None => None,
                Some(declaration) => Some(subject_of(event, declaration)?),
            });
        }
        let mut wanted: HashMap<TenantId, BTreeSet<&str>> = HashMap::new();
        for (event, subject) in events.iter().zip(&subjects) {
            if let Some(subject) = subject {
                wanted.entry(event.tenant_id).or_default().insert(subject);
            }
        }
        if wanted.is_empty() {
            return Ok(0);
        }
        let mut keys: HashMap<(TenantId, String), DataKey> = HashMap::new();
        for (tenant_id, names) in wanted {
            // Most subjects have a key already: a read, which commits
            // nothing (making a key is a write, flushed at commit).
            let listed: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let mut stored = self.inner.keys.fetch(tenant_id, &listed).await?;
            let mut fresh = HashMap::new();
            let candidates: Vec<(String, WrappedKey)> = names
                .iter()
                .filter(|subject| !stored.contains_key(**subject))
                .map(|subject| {
                    let (key, wrapped) = self.inner.master.new_data_key(tenant_id, subject);
                    fresh.insert(subject.to_string(), (key, wrapped.clone()));
                    (subject.to_string(), wrapped)
                })
                .collect();
            if !candidates.is_empty() {
                stored.extend(self.inner.keys.keys_for(tenant_id, candidates).await?);
            }
            for subject in names {
                let wrapped = stored.get(subject).ok_or_else(|| {
                    PersonalDataError::KeyStore(format!(
                        "no data key came back for subject {subject:?}"
                    ))
                })?;
                let key = match fresh.remove(subject) {
                    // Ours went in: use it without unwrapping.
                    Some((key, ours)) if ours == *wrapped => key,
                    _ => self.unwrap(tenant_id, subject, wrapped)?,
                };
                keys.insert((tenant_id, subject.to_string()), key);
            }
        }
        let mut sealed = 0;
        for (event, subject) in events.iter_mut().zip(subjects) {
            let Some(subject) = subject else { continue };
            let declaration = &policy.declared[&event.event_type];
            let key = &keys[&(event.tenant_id, subject.clone())];
            for field in &declaration.fields {
                let place = FieldPlace {
                    tenant_id: event.tenant_id,
                    subject: &subject,
                    event_id: event.event_id,
                    pointer: field,
                };
                if let Some(value) = event.payload.pointer_mut(field) {
                    if !value.is_null() && !is_sealed(value) {
                        *value = key.seal(value, &place);
                        sealed += 1;
                    }
                }
            }
        }
        Ok(sealed)
    }

    /// `events` with every sealed field opened: its clear value, or
    /// [`FORGOTTEN`] when its subject's key is gone. One key-store read per
    /// tenant that has sealed fields; none when no event has any.
    pub async fn open(
        &self,
        events: Vec<StoredEvent>,
    ) -> Result<Vec<StoredEvent>, PersonalDataError> {
        Ok(self.open_counting(events).await?.0)
    }

    /// [`Self::open`], with how many sealed fields there were.
    pub(crate) async fn open_counting(
        &self,
        mut events: Vec<StoredEvent>,
    ) -> Result<(Vec<StoredEvent>, usize), PersonalDataError> {
        let mut found = Vec::new();
        for (index, event) in events.iter().enumerate() {
            find_sealed(&event.payload, &mut String::new(), index, &mut found);
        }
        if found.is_empty() {
            return Ok((events, 0));
        }
        let mut wanted: HashMap<TenantId, BTreeSet<String>> = HashMap::new();
        for sealed in &found {
            wanted
                .entry(events[sealed.event].tenant_id)
                .or_default()
                .insert(sealed.subject.clone());
        }
        let mut keys: HashMap<(TenantId, String), DataKey> = HashMap::new();
        for (tenant_id, subjects) in wanted {
            let subjects: Vec<String> = subjects.into_iter().collect();
            let stored = self.inner.keys.fetch(tenant_id, &subjects).await?;
            for (subject, wrapped) in stored {
                let key = self.unwrap(tenant_id, &subject, &wrapped)?;
                keys.insert((tenant_id, subject), key);
            }
        }
        let count = found.len();
        for sealed in found {
            let event = &mut events[sealed.event];
            let value = match keys.get(&(event.tenant_id, sealed.subject.clone())) {
                None => Value::String(FORGOTTEN.to_string()),
                Some(key) => {
                    let place = FieldPlace {
                        tenant_id: event.tenant_id,
                        subject: &sealed.subject,
                        event_id: event.event_id,
                        pointer: &sealed.pointer,
                    };
                    key.open(&sealed.data, &place).ok_or_else(|| {
                        PersonalDataError::Damaged(format!(
                            "field {} of event {} ({} {} #{}) does not open with its subject's key",
                            sealed.pointer,
                            event.event_id,
                            event.aggregate_type,
                            event.aggregate_id,
                            event.sequence_number
                        ))
                    })?
                }
            };
            if let Some(slot) = event.payload.pointer_mut(&sealed.pointer) {
                *slot = value;
            }
        }
        Ok((events, count))
    }

    /// Deletes the data key of `subject` of `tenant_id`: its sealed fields
    /// read back as [`FORGOTTEN`] from now on. A subject without a key is
    /// [`Forgotten::UnknownSubject`], and nothing changes.
    pub async fn forget_subject(
        &self,
        tenant_id: TenantId,
        subject: &str,
    ) -> Result<Forgotten, PersonalDataError> {
        if self.inner.keys.forget(tenant_id, subject).await? {
            tracing::info!(%tenant_id, subject, "subject forgotten: its data key is deleted");
            Ok(Forgotten::Key)
        } else {
            tracing::info!(%tenant_id, subject, "subject has no data key: nothing to forget");
            Ok(Forgotten::UnknownSubject)
        }
    }

    /// Wraps every data key again with `to`: those wrapped by the
    /// configured master key and by the previous ones it holds, in batches
    /// of 500, each its own transaction (so a rotation interrupted midway is
    /// finished by running it again). Keys of master keys it does not hold
    /// are left and reported. Afterwards configure `to` as the master key.
    pub async fn rotate_master_key(&self, to: &MasterKey) -> Result<Rotation, PersonalDataError> {
        const BATCH: usize = 500;
        let mut rewrapped = 0;
        let known: Vec<&MasterKey> = std::iter::once(&self.inner.master)
            .chain(&self.inner.previous)
            .collect();
        for from in known.iter().filter(|k| k.id() != to.id()) {
            loop {
                let batch = self.inner.keys.wrapped_by(from.id(), BATCH).await?;
                if batch.is_empty() {
                    break;
                }
                let replaced = batch
                    .iter()
                    .map(|(tenant_id, subject, wrapped)| {
                        Ok((
                            *tenant_id,
                            subject.clone(),
                            from.rewrap(to, *tenant_id, subject, wrapped)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, PersonalDataError>>()?;
                rewrapped += self.inner.keys.replace(from.id(), replaced).await?;
            }
        }
        let left = self
            .inner
            .keys
            .master_key_ids()
            .await?
            .into_iter()
            .filter(|(id, _)| id != to.id())
            .collect();
        tracing::info!(rewrapped, to = to.id(), "master key rotated");
        Ok(Rotation { rewrapped, left })
    }

    /// The data key in `wrapped`, by whichever master key wrapped it.
    fn unwrap(
        &self,
        tenant_id: TenantId,
        subject: &str,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, PersonalDataError> {
        let master = std::iter::once(&self.inner.master)
            .chain(&self.inner.previous)
            .find(|m| m.id() == wrapped.master_key_id)
            .unwrap_or(&self.inner.master);
        DataKey::unwrap(master, tenant_id, subject, wrapped)
    }
}

/// The subject of `event`, by its declaration.
fn subject_of(
    event: &UncommittedEvent,
    declaration: &Declaration,
) -> Result<String, PersonalDataError> {
    match event.payload.pointer(&declaration.subject) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(PersonalDataError::MissingSubject {
            event_type: event.event_type.clone(),
            field: declaration.subject.clone(),
        }),
    }
}

/// Whether `value` is a sealed field's object.
fn is_sealed(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|o| o.contains_key(SEALED_KEY))
}

/// Collects every sealed object under `value` (at `path`) of event `event`.
fn find_sealed(value: &Value, path: &mut String, event: usize, found: &mut Vec<Sealed>) {
    match value {
        Value::Object(object) => {
            if object.contains_key(SEALED_KEY) {
                if let (Some(Value::String(subject)), Some(Value::String(data))) =
                    (object.get("subject"), object.get("data"))
                {
                    found.push(Sealed {
                        event,
                        pointer: path.clone(),
                        subject: subject.clone(),
                        data: data.clone(),
                    });
                    return;
                }
            }
            for (key, child) in object {
                if matches!(child, Value::Object(_) | Value::Array(_)) {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    find_sealed(child, path, event, found);
                    path.truncate(len);
                }
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                if matches!(child, Value::Object(_) | Value::Array(_)) {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&index.to_string());
                    find_sealed(child, path, event, found);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AggregateId;
    use serde_json::json;

    fn customer_policy() -> PersonalDataPolicy {
        PersonalDataPolicy::new().declare(
            "CustomerRegistered",
            "customer_id",
            &["name", "/address/street"],
        )
    }

    fn registered(tenant: TenantId, customer: &str, name: &str) -> UncommittedEvent {
        UncommittedEvent::new(
            tenant,
            "Customer",
            AggregateId::random(),
            "CustomerRegistered",
            json!({"customer_id": customer, "name": name, "address": {"street": "1 High St", "city": "Leeds"}, "tier": "gold"}),
        )
    }

    fn stored(events: Vec<UncommittedEvent>) -> Vec<StoredEvent> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| e.into_stored(1, i as i64 + 1, 1, chrono::Utc::now()))
            .collect()
    }

    #[tokio::test]
    async fn sealed_fields_open_again_until_their_subject_is_forgotten() {
        let (master, _) = MasterKey::generate();
        let personal = PersonalData::new(customer_policy(), InMemoryKeyStore::new(), master);
        let tenant = TenantId::random();
        let clear = vec![
            registered(tenant, "c-1", "Jane Doe"),
            registered(tenant, "c-2", "John Roe"),
        ];
        let mut events = clear.clone();
        assert_eq!(personal.seal(&mut events).await.unwrap(), 4);
        let text = serde_json::to_string(&events[0].payload).unwrap();
        assert!(
            !text.contains("Jane") && !text.contains("High St"),
            "{text}"
        );
        assert_eq!(events[0].payload["tier"], "gold");
        assert_eq!(events[0].payload["address"]["city"], "Leeds");
        assert_eq!(events[0].payload["customer_id"], "c-1");

        let opened = personal.open(stored(events.clone())).await.unwrap();
        assert_eq!(opened[0].payload, clear[0].payload);
        assert_eq!(opened[1].payload, clear[1].payload);

        assert_eq!(
            personal.forget_subject(tenant, "c-1").await.unwrap(),
            Forgotten::Key
        );
        assert_eq!(
            personal.forget_subject(tenant, "c-1").await.unwrap(),
            Forgotten::UnknownSubject
        );
        let opened = personal.open(stored(events)).await.unwrap();
        assert_eq!(opened[0].payload["name"], FORGOTTEN);
        assert_eq!(opened[0].payload["address"]["street"], FORGOTTEN);
        assert_eq!(opened[0].payload["address"]["city"], "Leeds");
        assert_eq!(
            opened[1].payload, clear[1].payload,
            "the other subject is unaffected"
        );
    }

    #[tokio::test]
    async fn a_declared_event_without_its_subject_is_refused_before_any_key_is_made() {
        let keys = InMemoryKeyStore::new();
        let (master, _) = MasterKey::generate();
        let personal = PersonalData::new(customer_policy(), keys.clone(), master);
        let tenant = TenantId::random();
        let mut bad = registered(tenant, "c-1", "Jane Doe");
        bad.payload.as_object_mut().unwrap().remove("customer_id");
        let mut events = vec![registered(tenant, "c-2", "John Roe"), bad];
        let before = events.clone();
        let error = personal.seal(&mut events).await.unwrap_err();
        assert_eq!(
            error,
            PersonalDataError::MissingSubject {
                event_type: "CustomerRegistered".into(),
                field: "/customer_id".into()
            }
        );
        assert!(
            error.to_string().contains("CustomerRegistered")
                && error.to_string().contains("/customer_id")
        );
        assert_eq!(events[0].payload, before[0].payload);
        assert!(keys
            .fetch(tenant, &["c-2".to_string()])
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_wrong_master_key_is_an_error_and_rotation_rewraps_every_key() {
        let keys = InMemoryKeyStore::new();
        let (old, _) = MasterKey::generate();
        let (new, _) = MasterKey::generate();
        let tenant = TenantId::random();
        let writer = PersonalData::new(customer_policy(), keys.clone(), old.clone());
        let mut events = vec![
            registered(tenant, "c-1", "Jane Doe"),
            registered(TenantId::random(), "c-1", "Ann"),
        ];
        let mut second = events.split_off(1);
        writer.seal(&mut events).await.unwrap();
        writer.seal(&mut second).await.unwrap();
        events.extend(second);
        let events = stored(events);

        let wrong = PersonalData::new(customer_policy(), keys.clone(), new.clone());
        let error = wrong.open(events.clone()).await.unwrap_err();
        assert!(
            matches!(error, PersonalDataError::WrongMasterKey { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(old.id()) && error.to_string().contains(new.id()));

        let rotation = writer.rotate_master_key(&new).await.unwrap();
        assert_eq!(
            rotation,
            Rotation {
                rewrapped: 2,
                left: vec![]
            }
        );
        assert_eq!(
            wrong.open(events.clone()).await.unwrap()[0].payload["name"],
            "Jane Doe"
        );
        assert!(matches!(
            writer.open(events.clone()).await,
            Err(PersonalDataError::WrongMasterKey { .. })
        ));
        // Opening with the old one as previous works during the rotation.
        let both =
            PersonalData::new(customer_policy(), keys.clone(), new.clone()).also_opening_with(old);
        assert_eq!(both.open(events).await.unwrap()[1].payload["name"], "Ann");
        assert_eq!(both.rotate_master_key(&new).await.unwrap().rewrapped, 0);
    }

    #[tokio::test]
    async fn a_sealed_field_moved_to_another_event_is_damaged_not_garbage() {
        let (master, _) = MasterKey::generate();
        let personal = PersonalData::new(customer_policy(), InMemoryKeyStore::new(), master);
        let tenant = TenantId::random();
        let mut events = vec![
            registered(tenant, "c-1", "Jane Doe"),
            registered(tenant, "c-1", "Jane D."),
        ];
        personal.seal(&mut events).await.unwrap();
        let moved = events[0].payload["name"].clone();
        events[1].payload["name"] = moved;
        let error = personal.open(stored(events)).await.unwrap_err();
        assert!(
            matches!(error, PersonalDataError::Damaged(ref m) if m.contains("/name")),
            "{error}"
        );
    }

    #[test]
    fn sealed_objects_are_found_at_any_depth_by_their_pointer() {
        let payload = json!({"a": [{"b": {SEALED_KEY: 1, "subject": "s", "data": "x"}}], "c/d": {"e": {SEALED_KEY: 1, "subject": "t", "data": "y"}}, "f": 1});
        let mut found = Vec::new();
        find_sealed(&payload, &mut String::new(), 0, &mut found);
        let mut pointers: Vec<_> = found
            .iter()
            .map(|s| (s.pointer.as_str(), s.subject.as_str()))
            .collect();
        pointers.sort();
        assert_eq!(pointers, [("/a/0/b", "s"), ("/c~1d/e", "t")]);
        for (pointer, _) in pointers {
            assert!(payload.pointer(pointer).is_some());
        }
    }
}
