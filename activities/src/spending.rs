//! The spending limit's saga steps ([`SpendingActivities`]):
//! `ReserveSpending` before the payment, and `ReleaseSpending`, its
//! compensation. Each is one idempotent transaction of
//! [`ordersaga_store::Spending`]; a refusal is the non-retryable business
//! failure `SpendingLimitExceeded`, carrying the [`FailureReason`].

use std::sync::Arc;

use ordersaga_domain::contracts::spending as contract;
use ordersaga_domain::names::failure;
use ordersaga_domain::{FailureReason, OrderId};
use ordersaga_store::{Store, StoreError};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::activities::{already_failed, business_failure, store_failure, stored_failure};

/// The spending limit's activities over the shop database.
pub struct SpendingActivities {
    store: Store,
}

impl SpendingActivities {
    /// Activities over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[activities]
impl SpendingActivities {
    /// `ReserveSpending`: the order's total counts against its customer's
    /// limit, or a `SpendingLimitExceeded` failure (nothing counts). An
    /// order that already failed is refused with its stored reason.
    #[activity(definition = contract::ReserveSpending)]
    pub async fn reserve_spending(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: OrderId,
    ) -> Result<(), ActivityError> {
        match self.store.spending().reserve(&order_id).await {
            Ok(Ok(())) => {
                tracing::info!(%order_id, "SpendingReserved");
                Ok(())
            }
            Ok(Err(reason)) => {
                tracing::info!(%order_id, %reason, "SpendingLimitExceeded");
                Err(business_failure(failure::SPENDING_LIMIT_EXCEEDED, reason))
            }
            Err(StoreError::OrderEnded { .. }) => {
                let reason: FailureReason = stored_failure(&self.store, &order_id).await?;
                tracing::warn!(%order_id, %reason, "ReserveSpending refused: the order already failed");
                Err(already_failed(reason))
            }
            Err(e) => Err(store_failure(e)),
        }
    }

    /// Compensation of `ReserveSpending`: the reservation stops counting.
    /// Succeeds when nothing was reserved.
    #[activity(definition = contract::ReleaseSpending)]
    pub async fn release_spending(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: OrderId,
    ) -> Result<bool, ActivityError> {
        let released = self
            .store
            .spending()
            .release(&order_id)
            .await
            .map_err(store_failure)?;
        tracing::info!(%order_id, released, "ReleaseSpending");
        Ok(released)
    }
}
