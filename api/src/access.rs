//! Who may do what: the one access policy of both transports. The
//! transports only authenticate (an `Authorization` header, `authorization`
//! metadata) into a [`Principal`]; the use cases call these checks with it.
//!
//! - **customer** (the token's subject is its customer id): places orders
//!   for itself, reads and cancels its own orders and accepts their
//!   amendments (another customer's is `NOT_FOUND`, so existence does not
//!   leak), rates for itself, reads the catalog;
//! - **merchant**: the catalog, stock receipts, low-stock alerts,
//!   shipments, reading and cancelling every order;
//! - **operator**: everything, including the needs-attention list and
//!   actions and placing or rating on a customer's behalf;
//! - **courier**: dispatches and delivers shipments (and reads them),
//!   nothing else.
//!
//! A wrong role is `PERMISSION_DENIED`; nothing is written before these
//! checks pass.

use ordersaga_domain::CustomerId;
use ordersaga_runtime::auth::{AuthError, Principal, Role};

use crate::error::{ApiError, invalid};

/// Refuses `action` unless the caller has one of `roles`.
pub(crate) fn require(caller: &Principal, roles: &[Role], action: &str) -> Result<(), ApiError> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        Err(AuthError::forbidden(caller.role, action).into())
    }
}

/// Merchant or operator.
pub(crate) const STAFF: &[Role] = &[Role::Merchant, Role::Operator];
/// The shop's own users: customers and staff (not couriers).
pub(crate) const ANYONE: &[Role] = &[Role::Customer, Role::Merchant, Role::Operator];
/// Who accepts an amended order: its customer, or an operator on the
/// customer's behalf.
pub(crate) const AMENDMENT_DECIDERS: &[Role] = &[Role::Customer, Role::Operator];
/// Who reads the shipments: staff and couriers.
pub(crate) const SHIPMENT_READERS: &[Role] = &[Role::Merchant, Role::Operator, Role::Courier];
/// Who moves shipments along: the courier, or an operator standing in.
pub(crate) const CARRIERS: &[Role] = &[Role::Courier, Role::Operator];

/// The customer a request acts for: a customer acts for itself (the
/// `customer_id` it sent must be its own or empty); `on_behalf` roles name
/// the customer in the request; the others may not `action`.
pub(crate) fn acting_customer(
    caller: &Principal,
    given: &str,
    on_behalf: &[Role],
    action: &str,
) -> Result<CustomerId, ApiError> {
    let given = given.trim();
    let id = match caller.role {
        Role::Customer => {
            if !given.is_empty() && given != caller.subject {
                return Err(ApiError::PermissionDenied(format!(
                    "a customer may {action} for itself only: customer_id must be \
                     the token's subject or left out"
                )));
            }
            caller.subject.as_str()
        }
        role if on_behalf.contains(&role) => given,
        role => return Err(AuthError::forbidden(role, action).into()),
    };
    if id.is_empty() {
        return Err(invalid("customer_id is required"));
    }
    CustomerId::parse(id).map_err(|e| invalid(e.to_string()))
}

/// Whether the caller may see an order of `owner`: staff see every order,
/// a customer its own, a courier none (it sees shipments).
pub(crate) fn may_see(caller: &Principal, owner: &CustomerId) -> bool {
    match caller.role {
        Role::Merchant | Role::Operator => true,
        Role::Customer => caller.subject == owner.as_str(),
        Role::Courier => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, subject: &str) -> Principal {
        Principal {
            subject: subject.into(),
            role,
        }
    }

    #[test]
    fn a_customer_acts_for_itself_only() {
        let alice = caller(Role::Customer, "alice");
        let all = ANYONE;
        assert_eq!(
            acting_customer(&alice, "", all, "order").unwrap().as_str(),
            "alice"
        );
        assert_eq!(
            acting_customer(&alice, "alice", all, "order")
                .unwrap()
                .as_str(),
            "alice"
        );
        assert!(matches!(
            acting_customer(&alice, "bob", all, "order"),
            Err(ApiError::PermissionDenied(_))
        ));
        let op = caller(Role::Operator, "ops");
        let ops = &[Role::Operator];
        assert_eq!(
            acting_customer(&op, "bob", ops, "order").unwrap().as_str(),
            "bob"
        );
        assert!(matches!(
            acting_customer(&op, "", ops, "order"),
            Err(ApiError::InvalidArgument(_))
        ));
        assert!(matches!(
            acting_customer(&caller(Role::Merchant, "m"), "bob", ops, "order"),
            Err(ApiError::PermissionDenied(_))
        ));
    }

    #[test]
    fn customers_see_their_own_orders_and_staff_every_order() {
        let bob = CustomerId::parse("bob").unwrap();
        assert!(!may_see(&caller(Role::Customer, "alice"), &bob));
        assert!(may_see(&caller(Role::Customer, "bob"), &bob));
        assert!(may_see(&caller(Role::Merchant, "m"), &bob));
        assert!(may_see(&caller(Role::Operator, "o"), &bob));
        assert!(!may_see(&caller(Role::Courier, "bob"), &bob));
        assert!(require(&caller(Role::Courier, "c"), STAFF, "x").is_err());
        assert!(require(&caller(Role::Courier, "c"), CARRIERS, "x").is_ok());
        assert!(require(&caller(Role::Customer, "a"), STAFF, "x").is_err());
        assert!(require(&caller(Role::Merchant, "m"), STAFF, "x").is_ok());
    }
}
