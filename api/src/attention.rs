//! Operators and the orders that need them: a compensation the saga parked
//! (a refund the gateway refused for good) is retried
//! ([`OrderService::retry_compensation`]) or closed with a recorded reason
//! ([`OrderService::close_attention`]), each an update on the order's saga,
//! which refuses it when nothing is parked. `ListOrders` with
//! `needs_attention` lists the orders waiting for one.

use ordersaga_domain::{OperatorNote, OrderId};
use ordersaga_runtime::auth::{Principal, Role};
use ordersaga_workflows::OrderWorkflow;
use temporalio_client::WorkflowExecuteUpdateOptions;
use temporalio_client::errors::WorkflowUpdateError;

use crate::access::require;
use crate::error::{ApiError, invalid};
use crate::service::OrderService;

/// Which operator action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    Close,
}

impl OrderService {
    /// `RetryCompensation`: the order's saga runs its parked compensations
    /// again (after the cause was fixed, e.g. at the gateway). Answers once
    /// the saga accepted; `GetOrder` shows the outcome. FAILED_PRECONDITION
    /// when nothing is parked or the saga has ended.
    pub async fn retry_compensation(
        &self,
        caller: &Principal,
        order_id: &str,
        operator: &str,
        reason: &str,
    ) -> Result<OrderId, ApiError> {
        require(caller, &[Role::Operator], "retry compensations")?;
        let note = OperatorNote::new(operator_name(caller, operator), reason, false)
            .map_err(|e| invalid(e.to_string()))?;
        self.operator_action(order_id, Action::Retry, note).await
    }

    /// `CloseAttention`: the order's parked compensations are closed with
    /// the operator's reason (e.g. refunded by hand); the saga ends. Once
    /// the saga is gone (terminated, or past its execution timeout) the
    /// close is recorded in the database directly: it moves no money.
    pub async fn close_attention(
        &self,
        caller: &Principal,
        order_id: &str,
        operator: &str,
        reason: &str,
    ) -> Result<OrderId, ApiError> {
        require(caller, &[Role::Operator], "close attention")?;
        let note = OperatorNote::new(operator_name(caller, operator), reason, true)
            .map_err(|e| invalid(e.to_string()))?;
        self.operator_action(order_id, Action::Close, note).await
    }

    async fn operator_action(
        &self,
        order_id: &str,
        action: Action,
        note: OperatorNote,
    ) -> Result<OrderId, ApiError> {
        let id = OrderId::parse(order_id).map_err(|e| invalid(e.to_string()))?;
        crate::spans::record_order(&id);
        let handle = self
            .client
            .get_workflow_handle::<OrderWorkflow>(id.workflow_id());
        let options = WorkflowExecuteUpdateOptions::builder().build();
        let sent = match action {
            Action::Retry => {
                handle
                    .execute_update(OrderWorkflow::retry_compensation, note.clone(), options)
                    .await
            }
            Action::Close => {
                handle
                    .execute_update(OrderWorkflow::close_attention, note.clone(), options)
                    .await
            }
        };
        match sent {
            Ok(()) => {
                tracing::info!(order_id = %id, operator = %note.operator, ?action, "operator action accepted");
                Ok(id)
            }
            Err(WorkflowUpdateError::Failed(failure)) => {
                Err(ApiError::FailedPrecondition(failure.message))
            }
            Err(WorkflowUpdateError::NotFound(_)) => self.without_saga(id, action, &note).await,
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// The saga is gone: the database answers, and a close is recorded there.
    async fn without_saga(
        &self,
        id: OrderId,
        action: Action,
        note: &OperatorNote,
    ) -> Result<OrderId, ApiError> {
        let Some(record) = self
            .store
            .orders()
            .get(&id)
            .await
            .map_err(ApiError::internal)?
        else {
            return Err(ApiError::NotFound(format!("order {id} not found")));
        };
        let open = record.summary.attention.is_some();
        match action {
            Action::Close if open => {
                self.store
                    .attention()
                    .close(&id, note)
                    .await
                    .map_err(ApiError::internal)?;
                tracing::info!(order_id = %id, operator = %note.operator, "parked compensations closed without a saga");
                Ok(id)
            }
            Action::Retry if open => Err(ApiError::FailedPrecondition(format!(
                "the saga of order {id} has ended: settle it at the gateway by hand, then close it"
            ))),
            _ => Err(ApiError::FailedPrecondition(format!(
                "order {id} has no compensation waiting for an operator"
            ))),
        }
    }
}

/// Who acts: the name given, or else the token's subject.
fn operator_name<'a>(caller: &'a Principal, given: &'a str) -> &'a str {
    if given.trim().is_empty() {
        &caller.subject
    } else {
        given
    }
}
