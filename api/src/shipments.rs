//! The courier's side of a shipment: `Dispatch` and `Deliver`
//! ([`OrderService::dispatch_shipment`], [`OrderService::deliver_shipment`]),
//! each an update on the shipment's `ShippingWorkflow`, whose validator
//! refuses a move that does not fit (dispatching a delivered shipment,
//! delivering one not dispatched: `FAILED_PRECONDITION`, nothing written).
//! Couriers and operators only. A repeated move answers the status again.
//!
//! The dispatch of a shipment still waiting for the courier starts its
//! workflow (update-with-start, from the shipment's row): until then a
//! shipment is a row in the shop database and costs Temporal nothing. A
//! shipment whose workflow was started at confirmation (before this) gets
//! the update on that workflow.

use ordersaga_domain::names::SHIPPING_TASK_QUEUE;
use ordersaga_domain::{OrderId, ShipmentStatus, shipment_workflow_id};
use ordersaga_runtime::auth::Principal;
use ordersaga_workflows::ShippingWorkflow;
use temporalio_client::errors::{
    WorkflowStartError, WorkflowUpdateError, WorkflowUpdateWithStartError,
};
use temporalio_client::{
    WorkflowExecuteUpdateOptions, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
    WorkflowUpdateWithStartOptions,
};

use crate::access::{CARRIERS, require};
use crate::error::{ApiError, invalid};
use crate::service::OrderService;

/// Longest warehouse name accepted.
const MAX_WAREHOUSE: usize = 64;

/// Which courier move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    Dispatch,
    Deliver,
}

/// A shipment as a courier call names it: the order and the warehouse
/// (empty: the default one).
fn shipment(order_id: &str, warehouse: &str) -> Result<(OrderId, String), ApiError> {
    let id = OrderId::parse(order_id).map_err(|e| invalid(e.to_string()))?;
    let warehouse = warehouse.trim();
    let warehouse = if warehouse.is_empty() {
        ordersaga_domain::DEFAULT_WAREHOUSE
    } else {
        warehouse
    };
    let fine = warehouse.len() <= MAX_WAREHOUSE
        && warehouse
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !fine {
        // As stock receipts name warehouses (`WarehouseId`).
        return Err(invalid(format!(
            "warehouse must be 1 to {MAX_WAREHOUSE} letters, digits, '.', '-' or '_'"
        )));
    }
    Ok((id, warehouse.to_string()))
}

impl OrderService {
    /// `Dispatch`: the courier picked the shipment up. Answers its status
    /// (`DISPATCHED`) once the shipment's workflow accepted it; the
    /// dispatch and its email are recorded right after.
    pub async fn dispatch_shipment(
        &self,
        caller: &Principal,
        order_id: &str,
        warehouse: &str,
    ) -> Result<ShipmentStatus, ApiError> {
        require(caller, CARRIERS, "dispatch shipments")?;
        self.move_shipment(order_id, warehouse, Move::Dispatch)
            .await
    }

    /// `Deliver`: the courier delivered the shipment. Answers `DELIVERED`
    /// once the shipment's workflow accepted it.
    pub async fn deliver_shipment(
        &self,
        caller: &Principal,
        order_id: &str,
        warehouse: &str,
    ) -> Result<ShipmentStatus, ApiError> {
        require(caller, CARRIERS, "deliver shipments")?;
        self.move_shipment(order_id, warehouse, Move::Deliver).await
    }

    async fn move_shipment(
        &self,
        order_id: &str,
        warehouse: &str,
        step: Move,
    ) -> Result<ShipmentStatus, ApiError> {
        let (id, warehouse) = shipment(order_id, warehouse)?;
        crate::spans::record_order(&id);
        if step == Move::Dispatch
            && let Some(status) = self.start_with_dispatch(id, &warehouse).await?
        {
            return Ok(status);
        }
        let handle = self
            .client
            .get_workflow_handle::<ShippingWorkflow>(shipment_workflow_id(&id, &warehouse));
        let options = WorkflowExecuteUpdateOptions::builder().build();
        let sent = match step {
            Move::Dispatch => {
                handle
                    .execute_update(ShippingWorkflow::dispatch, (), options)
                    .await
            }
            Move::Deliver => {
                handle
                    .execute_update(ShippingWorkflow::deliver, (), options)
                    .await
            }
        };
        match sent {
            Ok(status) => {
                tracing::info!(order_id = %id, %warehouse, ?step, %status, "shipment moved");
                Ok(status)
            }
            Err(WorkflowUpdateError::Failed(failure)) => {
                Err(ApiError::FailedPrecondition(failure.message))
            }
            // No workflow (a request older than shipments' lives, none
            // yet, or one that has ended): the store answers.
            Err(WorkflowUpdateError::NotFound(_)) => {
                self.without_workflow(id, &warehouse, step).await
            }
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// Starts the shipment's workflow with the `Dispatch` update when the
    /// shipment still waits for the courier (or attaches the update to the
    /// workflow an earlier dispatch or an older relay started). `None`: the
    /// shipment has moved on or its workflow has ended; the plain update
    /// answers.
    async fn start_with_dispatch(
        &self,
        id: OrderId,
        warehouse: &str,
    ) -> Result<Option<ShipmentStatus>, ApiError> {
        let record = self
            .store
            .shipments()
            .for_dispatch(&id, warehouse)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| {
                ApiError::NotFound(format!("order {id} has no shipment from {warehouse}"))
            })?;
        if record.status != ShipmentStatus::Requested {
            return Ok(None);
        }
        let request = record.request;
        let options = WorkflowUpdateWithStartOptions::new(
            SHIPPING_TASK_QUEUE,
            request.workflow_id(),
            // A second dispatch, or a shipment whose workflow started at
            // confirmation: the update goes to the running workflow.
            WorkflowIdConflictPolicy::UseExisting,
        )
        .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
        // No personal data: the summary is not encrypted.
        .static_summary(format!("Shipment of order {id} from {warehouse}"))
        .build();
        let sent = self
            .client
            .execute_update_with_start_workflow(
                ShippingWorkflow::run,
                request,
                ShippingWorkflow::dispatch,
                (),
                options,
            )
            .await;
        match sent {
            Ok(status) => {
                tracing::info!(order_id = %id, %warehouse, %status, "shipment dispatched");
                Ok(Some(status))
            }
            Err(WorkflowUpdateWithStartError::Update(WorkflowUpdateError::Failed(failure))) => {
                Err(ApiError::FailedPrecondition(failure.message))
            }
            // Its workflow ended between the read and the start: delivered.
            Err(WorkflowUpdateWithStartError::Start(WorkflowStartError::AlreadyStarted {
                ..
            })) => Ok(None),
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    async fn without_workflow(
        &self,
        id: OrderId,
        warehouse: &str,
        step: Move,
    ) -> Result<ShipmentStatus, ApiError> {
        let found = self
            .store
            .shipments()
            .of(&id, warehouse)
            .await
            .map_err(ApiError::internal)?;
        let Some(record) = found else {
            return Err(ApiError::NotFound(format!(
                "order {id} has no shipment from {warehouse}"
            )));
        };
        let repeated = match step {
            Move::Dispatch => record.status == ShipmentStatus::Dispatched,
            Move::Deliver => record.status == ShipmentStatus::Delivered,
        };
        if repeated {
            return Ok(record.status);
        }
        Err(ApiError::FailedPrecondition(format!(
            "the shipment of order {id} from {warehouse} is {} and has no workflow to move it",
            record.status
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shipment_is_named_by_its_order_and_a_plain_warehouse() {
        let order = "6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60";
        assert_eq!(shipment(order, "").unwrap().1, "main");
        assert_eq!(shipment(order, " east-2 ").unwrap().1, "east-2");
        assert_eq!(shipment(order, "eu.1").unwrap().1, "eu.1");
        assert!(shipment(order, "a/b").is_err());
        assert!(shipment(order, &"w".repeat(65)).is_err());
        assert!(shipment("nope", "").is_err());
    }
}
