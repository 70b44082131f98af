//! The records of parked compensations ([`AttentionActivities`]): the saga
//! parks a compensation the other side refused for good, and records how an
//! operator settled it. Each write is idempotent
//! ([`ordersaga_store::Attention`]); each keeps the needs-attention gauge
//! current, and [`watch_needs_attention`] refreshes it on a timer so every
//! worker's copy converges on the database's count.

use std::sync::Arc;
use std::time::Duration;

use ordersaga_domain::contracts::attention::{
    self as contract, ParkInput, Resolution, ResolveInput,
};
use ordersaga_store::Store;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::activities::store_failure;
use crate::metrics::BusinessMetrics;

/// How often a worker recounts the orders that need attention.
pub const NEEDS_ATTENTION_REFRESH: Duration = Duration::from_secs(15);

/// The attention activities: the store and the metrics they keep current.
pub struct AttentionActivities {
    store: Store,
    metrics: BusinessMetrics,
}

impl AttentionActivities {
    /// Activities over `store`, recording on `metrics`.
    pub fn new(store: Store, metrics: BusinessMetrics) -> Self {
        Self { store, metrics }
    }
}

/// Sets the needs-attention gauge from the database's count. A failed count
/// keeps the last value: the next refresh tries again.
pub async fn refresh_needs_attention(store: &Store, metrics: &BusinessMetrics) {
    match store.attention().orders_open().await {
        Ok(n) => metrics.needs_attention(n),
        Err(e) => tracing::warn!(error = %e, "counting orders that need attention failed"),
    }
}

/// Refreshes the needs-attention gauge every [`NEEDS_ATTENTION_REFRESH`],
/// forever (the worker aborts it when it stops).
pub async fn watch_needs_attention(store: Store, metrics: BusinessMetrics) {
    let mut tick = tokio::time::interval(NEEDS_ATTENTION_REFRESH);
    loop {
        tick.tick().await;
        refresh_needs_attention(&store, &metrics).await;
    }
}

#[activities]
impl AttentionActivities {
    /// `ParkCompensation`: the compensation needs an operator.
    #[activity(definition = contract::ParkCompensation)]
    pub async fn park_compensation(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ParkInput,
    ) -> Result<(), ActivityError> {
        let opened = self
            .store
            .attention()
            .park(&input.order_id, input.compensation, &input.reason)
            .await
            .map_err(store_failure)?;
        if opened {
            self.metrics.compensation_parked();
        }
        refresh_needs_attention(&self.store, &self.metrics).await;
        tracing::warn!(
            order_id = %input.order_id,
            compensation = %input.compensation,
            reason = %input.reason,
            "compensation parked: the order needs an operator"
        );
        Ok(())
    }

    /// `ResolveAttention`: the operator's retry succeeded, or the operator
    /// closed the order's parked compensations.
    #[activity(definition = contract::ResolveAttention)]
    pub async fn resolve_attention(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ResolveInput,
    ) -> Result<(), ActivityError> {
        let attention = self.store.attention();
        match &input.resolution {
            Resolution::Completed { compensation } => {
                attention
                    .resolve(&input.order_id, *compensation)
                    .await
                    .map_err(store_failure)?;
                tracing::info!(order_id = %input.order_id, %compensation, "parked compensation completed");
            }
            Resolution::Closed { note } => {
                attention
                    .close(&input.order_id, note)
                    .await
                    .map_err(store_failure)?;
                tracing::info!(order_id = %input.order_id, operator = %note.operator, reason = %note.reason, "parked compensations closed");
            }
        }
        refresh_needs_attention(&self.store, &self.metrics).await;
        Ok(())
    }
}
