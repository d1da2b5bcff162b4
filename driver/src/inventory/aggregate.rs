//! The `InventoryItem` aggregate (pure domain): one per stock-keeping unit,
//! its commands, events and errors.
//!
//! Invariants: on-hand stock never goes negative; nothing is reserved or
//! shipped beyond what is available (on hand minus reserved); nothing happens
//! to an item after it is discontinued, and nothing before it is created.

use crate::aggregate::Aggregate;
use crate::event::DomainEvent;
use crate::upcasting::Upcasters;
use serde::{Deserialize, Serialize};

/// What an inventory item can be asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InventoryCommand {
    /// Start tracking an item.
    CreateItem {
        /// Stock-keeping unit, e.g. `BOLT-M8`.
        sku: String,
        /// Human-readable name.
        name: String,
    },
    /// Start tracking an item made to order for one customer, whose name
    /// the item's name may carry: personal data of that customer (see
    /// [`crate::inventory::personal_data_policy`]).
    CreateCustomItem {
        /// Stock-keeping unit.
        sku: String,
        /// Human-readable name, e.g. `Engraved ring for Jane Doe`.
        name: String,
        /// The customer it is made for.
        customer_id: String,
    },
    /// Goods arrived.
    ReceiveStock {
        /// Units received (positive).
        quantity: i64,
    },
    /// Goods of one lot (batch, charge) arrived.
    ReceiveLot {
        /// Units received (positive).
        quantity: i64,
        /// The lot's number, as printed on the goods.
        lot: String,
    },
    /// A correction after a count.
    AdjustStock {
        /// Units added (positive) or removed (negative).
        delta: i64,
        /// Why, for the audit trail.
        reason: String,
    },
    /// Set stock aside for an order.
    ReserveStock {
        /// Units to reserve (positive).
        quantity: i64,
    },
    /// Give reserved stock back.
    ReleaseReservation {
        /// Units to release (positive).
        quantity: i64,
    },
    /// Goods left: consumes reservations first, then available stock.
    ShipStock {
        /// Units shipped (positive).
        quantity: i64,
    },
    /// Stop all movement of the item for good.
    Discontinue,
}

/// What happened to an inventory item (`event_type` is the variant name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type")]
pub enum InventoryEvent {
    /// The item exists.
    ItemCreated {
        /// Stock-keeping unit.
        sku: String,
        /// Human-readable name.
        name: String,
    },
    /// An item made to order for one customer exists. Its `name` is that
    /// customer's personal data.
    CustomItemCreated {
        /// Stock-keeping unit.
        sku: String,
        /// Human-readable name.
        name: String,
        /// The customer it is made for: the subject of `name`.
        customer_id: String,
    },
    /// Stock arrived. Version 2 (version 1 had no `lot`; it reads back with
    /// `"lot": null`, see [`upcasters`]).
    StockReceived {
        /// Units received.
        quantity: i64,
        /// The lot they came in, when it was recorded (None for every
        /// version-1 event). Left out of the payload when None.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lot: Option<String>,
    },
    /// Stock was corrected.
    StockAdjusted {
        /// Units added or removed.
        delta: i64,
        /// Why.
        reason: String,
    },
    /// Stock was set aside.
    StockReserved {
        /// Units reserved.
        quantity: i64,
    },
    /// Reserved stock was given back.
    ReservationReleased {
        /// Units released.
        quantity: i64,
    },
    /// Stock left the warehouse.
    StockShipped {
        /// Units shipped.
        quantity: i64,
    },
    /// The item takes no more movements.
    ItemDiscontinued,
}

impl DomainEvent for InventoryEvent {
    fn event_type(&self) -> &'static str {
        match self {
            InventoryEvent::ItemCreated { .. } => "ItemCreated",
            InventoryEvent::CustomItemCreated { .. } => "CustomItemCreated",
            InventoryEvent::StockReceived { .. } => "StockReceived",
            InventoryEvent::StockAdjusted { .. } => "StockAdjusted",
            InventoryEvent::StockReserved { .. } => "StockReserved",
            InventoryEvent::ReservationReleased { .. } => "ReservationReleased",
            InventoryEvent::StockShipped { .. } => "StockShipped",
            InventoryEvent::ItemDiscontinued => "ItemDiscontinued",
        }
    }
}

/// The inventory's event versions: every event type declared, and
/// `StockReceived` version 1 → 2, which adds `"lot": null` (version 1 did not
/// record lots). Give it to the dispatcher, the projection workers and the
/// CLI, which read inventory events.
pub fn upcasters() -> Upcasters {
    Upcasters::builder()
        .declare("ItemCreated")
        .declare("CustomItemCreated")
        .step("StockReceived", 1, |mut payload| {
            let fields = payload
                .as_object_mut()
                .ok_or("the payload is not a JSON object")?;
            fields.entry("lot").or_insert(serde_json::Value::Null);
            Ok(payload)
        })
        .declare("StockAdjusted")
        .declare("StockReserved")
        .declare("ReservationReleased")
        .declare("StockShipped")
        .declare("ItemDiscontinued")
        .build()
        .expect("the inventory's chains start at 1 and have no gap")
}

/// Why an inventory command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// Anything but `CreateItem` before the item exists.
    #[error("the item does not exist yet")]
    NotCreated,
    /// `CreateItem` twice.
    #[error("the item exists already (SKU {sku})")]
    AlreadyCreated {
        /// The SKU it was created with.
        sku: String,
    },
    /// Anything after `Discontinue`.
    #[error("the item is discontinued")]
    Discontinued,
    /// `CreateItem` without SKU or name.
    #[error("SKU and name must not be empty")]
    MissingSkuOrName,
    /// A zero or negative quantity.
    #[error("quantity must be positive, got {quantity}")]
    NonPositiveQuantity {
        /// The quantity given.
        quantity: i64,
    },
    /// An adjustment of 0, or without a reason.
    #[error("an adjustment must change the stock and give a reason")]
    EmptyAdjustment,
    /// An adjustment below zero or below what is reserved.
    #[error("on-hand stock would become negative: {on_hand} on hand, change {delta}")]
    NegativeStock {
        /// Units on hand.
        on_hand: i64,
        /// The change asked for.
        delta: i64,
    },
    /// Reserving or shipping more than there is.
    #[error("only {available} available, {requested} requested")]
    InsufficientStock {
        /// Units asked for.
        requested: i64,
        /// Units there are.
        available: i64,
    },
    /// Releasing more than is reserved.
    #[error("only {reserved} reserved, {requested} to release")]
    ReleaseExceedsReservation {
        /// Units asked for.
        requested: i64,
        /// Units reserved.
        reserved: i64,
    },
}

/// The state of one inventory item (its snapshots are this struct as JSON,
/// state version 1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryItem {
    /// Its SKU, once created.
    pub sku: Option<String>,
    /// Its name.
    pub name: String,
    /// Units in the warehouse.
    pub on_hand: i64,
    /// Units of `on_hand` set aside.
    pub reserved: i64,
    /// No more movements.
    pub discontinued: bool,
}

impl InventoryItem {
    /// Stock that can still be reserved or shipped.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }

    fn live(&self) -> Result<(), InventoryError> {
        match (&self.sku, self.discontinued) {
            (None, _) => Err(InventoryError::NotCreated),
            (_, true) => Err(InventoryError::Discontinued),
            _ => Ok(()),
        }
    }
}

fn positive(quantity: i64) -> Result<i64, InventoryError> {
    if quantity > 0 {
        Ok(quantity)
    } else {
        Err(InventoryError::NonPositiveQuantity { quantity })
    }
}

impl Aggregate for InventoryItem {
    const AGGREGATE_TYPE: &'static str = "inventory.item";
    const STATE_VERSION: u32 = 1;
    type Command = InventoryCommand;
    type Event = InventoryEvent;
    type Error = InventoryError;

    fn to_snapshot(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }

    fn from_snapshot(snapshot: &serde_json::Value) -> Result<Self, String> {
        serde_json::from_value(snapshot.clone()).map_err(|e| e.to_string())
    }

    fn handle(&self, command: &InventoryCommand) -> Result<Vec<InventoryEvent>, InventoryError> {
        use InventoryCommand as C;
        use InventoryEvent as E;
        if let C::CreateItem { sku, name } | C::CreateCustomItem { sku, name, .. } = command {
            if let Some(existing) = &self.sku {
                return Err(InventoryError::AlreadyCreated {
                    sku: existing.clone(),
                });
            }
            if sku.trim().is_empty() || name.trim().is_empty() {
                return Err(InventoryError::MissingSkuOrName);
            }
            return Ok(vec![match command {
                C::CreateCustomItem { customer_id, .. } => E::CustomItemCreated {
                    sku: sku.clone(),
                    name: name.clone(),
                    customer_id: customer_id.clone(),
                },
                _ => E::ItemCreated {
                    sku: sku.clone(),
                    name: name.clone(),
                },
            }]);
        }
        self.live()?;
        Ok(vec![match command {
            C::CreateItem { .. } | C::CreateCustomItem { .. } => unreachable!("handled above"),
            C::ReceiveStock { quantity } => E::StockReceived {
                quantity: positive(*quantity)?,
                lot: None,
            },
            C::ReceiveLot { quantity, lot } => E::StockReceived {
                quantity: positive(*quantity)?,
                lot: Some(lot.clone()),
            },
            C::AdjustStock { delta, reason } => {
                if *delta == 0 || reason.trim().is_empty() {
                    return Err(InventoryError::EmptyAdjustment);
                }
                if self.on_hand + delta < self.reserved.max(0) {
                    return Err(InventoryError::NegativeStock {
                        on_hand: self.on_hand,
                        delta: *delta,
                    });
                }
                E::StockAdjusted {
                    delta: *delta,
                    reason: reason.clone(),
                }
            }
            C::ReserveStock { quantity } => {
                let quantity = positive(*quantity)?;
                if quantity > self.available() {
                    return Err(InventoryError::InsufficientStock {
                        requested: quantity,
                        available: self.available(),
                    });
                }
                E::StockReserved { quantity }
            }
            C::ReleaseReservation { quantity } => {
                let quantity = positive(*quantity)?;
                if quantity > self.reserved {
                    return Err(InventoryError::ReleaseExceedsReservation {
                        requested: quantity,
                        reserved: self.reserved,
                    });
                }
                E::ReservationReleased { quantity }
            }
            C::ShipStock { quantity } => {
                let quantity = positive(*quantity)?;
                if quantity > self.on_hand {
                    return Err(InventoryError::InsufficientStock {
                        requested: quantity,
                        available: self.on_hand,
                    });
                }
                E::StockShipped { quantity }
            }
            C::Discontinue => E::ItemDiscontinued,
        }])
    }

    fn apply(mut self, event: &InventoryEvent) -> Self {
        match event {
            InventoryEvent::ItemCreated { sku, name }
            | InventoryEvent::CustomItemCreated { sku, name, .. } => {
                self.sku = Some(sku.clone());
                self.name = name.clone();
            }
            InventoryEvent::StockReceived { quantity, .. } => self.on_hand += quantity,
            InventoryEvent::StockAdjusted { delta, .. } => self.on_hand += delta,
            InventoryEvent::StockReserved { quantity } => self.reserved += quantity,
            InventoryEvent::ReservationReleased { quantity } => self.reserved -= quantity,
            InventoryEvent::StockShipped { quantity } => {
                // Shipping consumes reservations first.
                self.reserved -= (*quantity).min(self.reserved);
                self.on_hand -= quantity;
            }
            InventoryEvent::ItemDiscontinued => self.discontinued = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::InventoryCommand as C;
    use super::InventoryEvent as E;
    use super::*;

    /// given `history`, when `command`, then the result.
    fn given_when(history: &[E], command: C) -> Result<Vec<E>, InventoryError> {
        InventoryItem::rehydrate(history).handle(&command)
    }

    fn created() -> E {
        E::ItemCreated {
            sku: "BOLT-M8".into(),
            name: "M8 bolt".into(),
        }
    }

    #[test]
    fn an_item_is_created_once() {
        assert_eq!(
            given_when(
                &[],
                C::CreateItem {
                    sku: "BOLT-M8".into(),
                    name: "M8 bolt".into()
                }
            ),
            Ok(vec![created()])
        );
        assert_eq!(
            given_when(
                &[created()],
                C::CreateItem {
                    sku: "X".into(),
                    name: "Y".into()
                }
            ),
            Err(InventoryError::AlreadyCreated {
                sku: "BOLT-M8".into()
            })
        );
        assert_eq!(
            given_when(
                &[],
                C::CreateItem {
                    sku: " ".into(),
                    name: "Y".into()
                }
            ),
            Err(InventoryError::MissingSkuOrName)
        );
    }

    #[test]
    fn nothing_happens_before_creation_or_after_discontinuation() {
        assert_eq!(
            given_when(&[], C::ReceiveStock { quantity: 1 }),
            Err(InventoryError::NotCreated)
        );
        let gone = [created(), E::ItemDiscontinued];
        for command in [
            C::ReceiveStock { quantity: 1 },
            C::ShipStock { quantity: 1 },
            C::Discontinue,
        ] {
            assert_eq!(
                given_when(&gone, command),
                Err(InventoryError::Discontinued)
            );
        }
    }

    #[test]
    fn quantities_must_be_positive() {
        for command in [
            C::ReceiveStock { quantity: 0 },
            C::ReserveStock { quantity: -2 },
            C::ShipStock { quantity: 0 },
        ] {
            assert!(matches!(
                given_when(&[created()], command),
                Err(InventoryError::NonPositiveQuantity { .. })
            ));
        }
    }

    #[test]
    fn no_shipping_or_reserving_more_than_there_is() {
        let stocked = [
            created(),
            E::StockReceived {
                quantity: 10,
                lot: None,
            },
            E::StockReserved { quantity: 4 },
        ];
        assert_eq!(
            given_when(&stocked, C::ReserveStock { quantity: 7 }),
            Err(InventoryError::InsufficientStock {
                requested: 7,
                available: 6
            })
        );
        assert_eq!(
            given_when(&stocked, C::ShipStock { quantity: 11 }),
            Err(InventoryError::InsufficientStock {
                requested: 11,
                available: 10
            })
        );
        assert_eq!(
            given_when(&stocked, C::ShipStock { quantity: 10 }),
            Ok(vec![E::StockShipped { quantity: 10 }])
        );
        assert_eq!(
            given_when(&stocked, C::ReleaseReservation { quantity: 5 }),
            Err(InventoryError::ReleaseExceedsReservation {
                requested: 5,
                reserved: 4
            })
        );
    }

    #[test]
    fn adjustments_never_take_stock_below_zero_or_below_reservations() {
        let stocked = [
            created(),
            E::StockReceived {
                quantity: 5,
                lot: None,
            },
            E::StockReserved { quantity: 2 },
        ];
        assert_eq!(
            given_when(
                &stocked,
                C::AdjustStock {
                    delta: -4,
                    reason: "count".into()
                }
            ),
            Err(InventoryError::NegativeStock {
                on_hand: 5,
                delta: -4
            })
        );
        assert_eq!(
            given_when(
                &stocked,
                C::AdjustStock {
                    delta: -3,
                    reason: "count".into()
                }
            ),
            Ok(vec![E::StockAdjusted {
                delta: -3,
                reason: "count".into()
            }])
        );
        assert_eq!(
            given_when(
                &stocked,
                C::AdjustStock {
                    delta: 0,
                    reason: "x".into()
                }
            ),
            Err(InventoryError::EmptyAdjustment)
        );
    }

    #[test]
    fn state_follows_the_events() {
        let item = InventoryItem::rehydrate(&[
            created(),
            E::StockReceived {
                quantity: 100,
                lot: None,
            },
            E::StockReserved { quantity: 30 },
            E::StockShipped { quantity: 20 },
            E::ReservationReleased { quantity: 5 },
            E::StockAdjusted {
                delta: -1,
                reason: "broken".into(),
            },
        ]);
        assert_eq!((item.on_hand, item.reserved, item.available()), (79, 5, 74));
    }

    #[test]
    fn events_travel_as_type_and_payload() {
        let event = E::StockAdjusted {
            delta: -3,
            reason: "count".into(),
        };
        let payload = event.to_payload().unwrap();
        assert_eq!(payload, serde_json::json!({"delta": -3, "reason": "count"}));
        assert_eq!(
            E::from_payload(event.event_type(), &payload).unwrap(),
            event
        );
        assert_eq!(
            E::from_payload("ItemDiscontinued", &serde_json::json!({})).unwrap(),
            E::ItemDiscontinued
        );
        assert!(E::from_payload("NoSuchEvent", &serde_json::json!({})).is_err());
    }
}
