//! Validated identifiers. Parsing is the only way to build one, so a value of
//! these types is always well-formed wherever it travels.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The value is not a UUID (order and transaction ids are UUIDs).
    #[error("{field} must be a UUID, got {value:?}")]
    NotUuid {
        /// Which field was malformed.
        field: &'static str,
        /// The rejected value (truncated).
        value: String,
    },
    /// The value is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error("{field} must be 1 to {max} characters of A-Z a-z 0-9 . _ -, got {value:?}")]
    BadToken {
        /// Which field was malformed.
        field: &'static str,
        /// The longest accepted length.
        max: usize,
        /// The rejected value (truncated).
        value: String,
    },
}

fn shown(value: &str) -> String {
    value.chars().take(80).collect()
}

fn parse_uuid(field: &'static str, value: &str) -> Result<Uuid, IdError> {
    Uuid::parse_str(value).map_err(|_| IdError::NotUuid {
        field,
        value: shown(value),
    })
}

fn check_token(field: &'static str, max: usize, value: &str) -> Result<(), IdError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdError::BadToken {
            field,
            max,
            value: shown(value),
        })
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses the canonical UUID text form.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                parse_uuid($field, value).map(Self)
            }

            /// Wraps an existing UUID.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }
    };
}

uuid_id!(
    /// An order's id: a UUID chosen by the API when the order is placed.
    OrderId,
    "order_id"
);
uuid_id!(
    /// The payment's `transactionId`, shared by the order and its payment and
    /// used as the idempotency key of every gateway call.
    TransactionId,
    "transaction_id"
);

/// Namespace of the transaction ids derived from order ids (UUIDv5).
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7273_6167_612d_6964_656d_706f);

impl OrderId {
    /// The Temporal workflow id of this order's saga: `order-{order_id}`.
    pub fn workflow_id(&self) -> String {
        format!("{}{}", crate::names::ORDER_WORKFLOW_ID_PREFIX, self)
    }
}

impl TransactionId {
    /// The transaction id of an order: derived from the order id so that a
    /// retried `PlaceOrder` with the same idempotency key carries the same one.
    pub fn for_order(order: &OrderId) -> Self {
        Self(Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, order.0.as_bytes()))
    }
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Accepts 1 to the maximum number of characters from `[A-Za-z0-9._-]`.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                check_token($field, $max, value).map(|()| Self(value.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                check_token($field, $max, &value).map(|()| Self(value))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }
    };
}

token_id!(
    /// A customer's id, as the shop's identity system issues it.
    CustomerId,
    "customer_id",
    64
);
token_id!(
    /// A product's stock keeping unit.
    Sku,
    "sku",
    64
);
token_id!(
    /// A warehouse that holds stock, as stock receipts name it.
    WarehouseId,
    "warehouse",
    64
);

impl WarehouseId {
    /// The warehouse of stock recorded before there were several, and of
    /// receipts that name none: `main`.
    pub fn main() -> Self {
        Self(crate::allocation::DEFAULT_WAREHOUSE.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_reject_garbage() {
        assert!(OrderId::parse("not-a-uuid").is_err());
        let id = OrderId::parse("6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60").unwrap();
        assert_eq!(id.to_string(), "6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60");
        assert_eq!(
            id.workflow_id(),
            "order-6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60"
        );
    }

    #[test]
    fn token_ids_accept_only_safe_characters() {
        assert!(CustomerId::parse("alice-01").is_ok());
        assert!(CustomerId::parse("").is_err());
        assert!(CustomerId::parse("a b").is_err());
        assert!(CustomerId::parse(&"x".repeat(65)).is_err());
        assert!(serde_json::from_str::<Sku>("\"bad sku\"").is_err());
        assert_eq!(
            serde_json::from_str::<Sku>("\"MUG-1\"").unwrap().as_str(),
            "MUG-1"
        );
    }

    #[test]
    fn an_order_has_one_transaction_id() {
        let a1 = OrderId::from_uuid(Uuid::new_v4());
        assert_eq!(TransactionId::for_order(&a1), TransactionId::for_order(&a1));
        assert_ne!(TransactionId::for_order(&a1).as_uuid(), a1.as_uuid());
    }
}
