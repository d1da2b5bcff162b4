//! Identifiers: uuid newtypes. Tenants and aggregates are never the nil uuid.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Why a string or uuid is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be a non-nil uuid, got {value:?}")]
pub struct InvalidId {
    /// Which identifier ("tenant id", "aggregate id").
    pub what: &'static str,
    /// The value that was refused.
    pub value: String,
}

macro_rules! non_nil_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "Uuid", into = "Uuid")]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps `id`; the nil uuid is refused.
            pub fn new(id: Uuid) -> Result<Self, InvalidId> {
                if id.is_nil() {
                    Err(InvalidId { what: $what, value: id.to_string() })
                } else {
                    Ok(Self(id))
                }
            }

            /// A fresh random (v4) id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// The uuid inside.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl TryFrom<Uuid> for $name {
            type Error = InvalidId;
            fn try_from(id: Uuid) -> Result<Self, InvalidId> {
                Self::new(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                let id = Uuid::parse_str(s).map_err(|_| InvalidId { what: $what, value: s.to_string() })?;
                Self::new(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

non_nil_id!(
    /// A tenant of the ERP: every stream and every event belongs to exactly one.
    TenantId,
    "tenant id"
);
non_nil_id!(
    /// An aggregate (one stream per tenant and aggregate id).
    AggregateId,
    "aggregate id"
);

/// An event's own id; the key of idempotent appends (unique per tenant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl EventId {
    /// A fresh random (v4) id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id of the `index`-th event (from 0) that command `command_id` of
    /// `tenant_id` produces: a name-based (v5) uuid in forgeerp's namespace,
    /// the same in every process, so a retried command appends the same ids.
    pub fn of_command(tenant_id: TenantId, command_id: Uuid, index: u32) -> Self {
        let mut name = Vec::with_capacity(36);
        name.extend_from_slice(tenant_id.as_uuid().as_bytes());
        name.extend_from_slice(command_id.as_bytes());
        name.extend_from_slice(&index.to_be_bytes());
        Self(Uuid::new_v5(&COMMAND_EVENTS, &name))
    }
}

/// The namespace of the event ids derived from command ids: a uuid chosen
/// once, fixed for good (changing it would make every retry of a command
/// issued before the change a new command).
pub const COMMAND_EVENTS: Uuid = Uuid::from_u128(0x3c1c_47c4_5d1b_5f57_9a0e_0d6b_4f8e_2a71);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_event_ids_are_name_based_and_stable() {
        let tenant = TenantId::new(Uuid::from_u128(1)).unwrap();
        let command = Uuid::from_u128(2);
        let first = EventId::of_command(tenant, command, 0);
        assert_eq!(first, EventId::of_command(tenant, command, 0));
        assert_eq!(first.0.get_version_num(), 5);
        assert_ne!(first, EventId::of_command(tenant, command, 1));
        assert_ne!(
            first,
            EventId::of_command(TenantId::new(Uuid::from_u128(3)).unwrap(), command, 0)
        );
        // Pinned (computed independently, with Python's hashlib): a change
        // would turn every retry into a new command.
        assert_eq!(first.0.to_string(), "efcf5625-9cb5-5f1f-b6a2-060b3b7d996c");
    }

    #[test]
    fn nil_ids_are_refused_everywhere() {
        assert!(TenantId::new(Uuid::nil()).is_err());
        assert!(AggregateId::try_from(Uuid::nil()).is_err());
        let error = "00000000-0000-0000-0000-000000000000"
            .parse::<TenantId>()
            .unwrap_err();
        assert_eq!(error.what, "tenant id");
        assert!(
            serde_json::from_str::<AggregateId>("\"00000000-0000-0000-0000-000000000000\"")
                .is_err()
        );
        assert!("not-a-uuid".parse::<AggregateId>().is_err());
    }

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let tenant = TenantId::random();
        assert_eq!(tenant.to_string().parse::<TenantId>().unwrap(), tenant);
        let json = serde_json::to_string(&tenant).unwrap();
        assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), tenant);
    }
}
