//! The emails an order caused, for the console's order page (staff only:
//! they name the customer's address).

use ordersaga_domain::OrderId;
use ordersaga_runtime::auth::Principal;
use ordersaga_store::NotificationRecord;

use super::OrderService;
use crate::access::{STAFF, require};
use crate::error::{ApiError, invalid};

impl OrderService {
    /// Every email recorded about an order, oldest first.
    pub async fn order_emails(
        &self,
        caller: &Principal,
        order_id: &str,
    ) -> Result<Vec<NotificationRecord>, ApiError> {
        require(caller, STAFF, "read an order's emails")?;
        let id = OrderId::parse(order_id).map_err(|e| invalid(e.to_string()))?;
        self.store
            .notifications()
            .of_subject(&id.to_string())
            .await
            .map_err(ApiError::internal)
    }
}
