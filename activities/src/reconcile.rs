//! The reconciler's activities (`FindInconsistencies`, `ActOnFinding`,
//! `ClearResolvedFindings`), run by `ReconcileOrdersWorkflow` on the orders
//! task queue.
//!
//! They look at the shop database, Temporal (is the order's workflow still
//! running?), the checkout gateway and the outbox, and act only where that
//! is safe without a human: a checkout payment of a failed order that the
//! gateway still holds open is voided (an approved order could otherwise be
//! captured by nobody, or approved by a buyer who was told the order
//! failed). Everything else is flagged: a log line naming the order, a
//! metric, and an open finding in the needs-attention list.

use std::sync::Arc;
use std::time::Duration;

use ordersaga_domain::contracts::reconcile::{self as contract, SeenFindings};
use ordersaga_domain::contracts::{CheckoutStatus, GatewayOrderId};
use ordersaga_domain::{Finding, FindingAction, FindingKind, OrderId, ReconcileInput};
use ordersaga_store::Store;
use temporalio_client::errors::WorkflowInteractionError;
use temporalio_client::{
    Client, UntypedWorkflow, WorkflowDescribeOptions, WorkflowExecutionStatus,
};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::gateway::checkout::{CheckoutError, CheckoutGateway};
use crate::metrics::BusinessMetrics;

/// Where an order's workflow is, as Temporal answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkflowState {
    Running,
    Closed(WorkflowExecutionStatus),
    Missing,
}

/// The reconciler's activities and what they look at.
pub struct ReconcileActivities {
    store: Store,
    client: Client,
    checkout: Option<Arc<dyn CheckoutGateway>>,
    metrics: BusinessMetrics,
}

impl ReconcileActivities {
    /// Activities over this store and Temporal namespace, recording no
    /// metrics and asking no gateway.
    pub fn new(store: Store, client: Client) -> Self {
        Self {
            store,
            client,
            checkout: None,
            metrics: BusinessMetrics::noop(),
        }
    }

    /// Asks `checkout` about checkout payments (and voids them).
    pub fn with_checkout(mut self, checkout: Arc<dyn CheckoutGateway>) -> Self {
        self.checkout = Some(checkout);
        self
    }

    /// Records findings on these instruments.
    pub fn with_metrics(mut self, metrics: BusinessMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    async fn workflow_state(&self, order_id: &OrderId) -> Result<WorkflowState, ActivityError> {
        let handle = self
            .client
            .get_workflow_handle::<UntypedWorkflow>(order_id.workflow_id());
        match handle.describe(WorkflowDescribeOptions::default()).await {
            Ok(d) if d.status() == WorkflowExecutionStatus::Running => Ok(WorkflowState::Running),
            Ok(d) => Ok(WorkflowState::Closed(d.status())),
            Err(WorkflowInteractionError::NotFound(_)) => Ok(WorkflowState::Missing),
            // Retried: Temporal itself is unreachable for now.
            Err(e) => Err(e.into()),
        }
    }

    /// Voids the checkout payment of a failed order if the gateway still
    /// holds it open. `Ok(Err(why))` when the reconciler cannot put it right
    /// on its own (no gateway here, money captured there, or the gateway
    /// refused for good): the finding is then flagged with `why`, so one
    /// refusal never stops a run. Transient gateway errors are retried.
    async fn void_open_checkout(
        &self,
        order_id: &OrderId,
    ) -> Result<Result<String, String>, ActivityError> {
        let Some(gateway) = self.checkout.as_deref() else {
            return Ok(Err("no checkout gateway on this worker".to_string()));
        };
        let store = || self.store.payments();
        let (Some(link), Some(payment)) = (
            store().link(order_id).await?,
            self.store
                .orders()
                .get(order_id)
                .await?
                .and_then(|o| o.payment),
        ) else {
            return Ok(Err("no checkout payment in the shop's books".to_string()));
        };
        let id = GatewayOrderId::new(link.gateway_order_id);
        let refused = |e: CheckoutError| -> Result<Result<String, String>, ActivityError> {
            if e.is_retryable() {
                Err(e.into())
            } else {
                Ok(Err(format!("the gateway refused: {e}")))
            }
        };
        let snapshot = match gateway.get_order(&id).await {
            Ok(s) => s,
            Err(e) => return refused(e),
        };
        let why = match snapshot.status {
            // Captured at the gateway but not in the books: money to give
            // back, which is an operator's call.
            CheckoutStatus::Completed => {
                return Ok(Err(format!("gateway order {id} is captured")));
            }
            CheckoutStatus::Voided => "voided at the gateway; found by the reconciler",
            CheckoutStatus::Created
            | CheckoutStatus::Saved
            | CheckoutStatus::Approved
            | CheckoutStatus::PayerActionRequired => {
                if let Err(e) = gateway.void(&id, &payment.transaction_id).await {
                    return refused(e);
                }
                "voided by the reconciler: the order had failed"
            }
        };
        store().record_voided(order_id, why).await?;
        Ok(Ok(format!("gateway order {id} was {:?}", snapshot.status)))
    }
}

fn order_finding(kind: FindingKind, order_id: OrderId, detail: String) -> Finding {
    Finding {
        kind,
        subject: order_id.to_string(),
        order_id: Some(order_id),
        detail,
    }
}

#[activities]
impl ReconcileActivities {
    /// Looks for every [`FindingKind`]; changes nothing.
    #[activity(definition = contract::FindInconsistencies)]
    pub async fn find_inconsistencies(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ReconcileInput,
    ) -> Result<Vec<Finding>, ActivityError> {
        let now = ordersaga_store::now_ms();
        let grace =
            i64::try_from(Duration::from_secs(input.grace_secs).as_millis()).unwrap_or(i64::MAX);
        let before = now.saturating_sub(grace);
        let findings = self.store.findings();
        let mut found = Vec::new();

        for order_id in findings.pending_orders(before, input.limit).await? {
            match self.workflow_state(&order_id).await? {
                WorkflowState::Running => {}
                WorkflowState::Closed(status) => found.push(order_finding(
                    FindingKind::PendingWorkflowClosed,
                    order_id,
                    format!("the order is PENDING but its workflow is {status:?}"),
                )),
                WorkflowState::Missing => found.push(order_finding(
                    FindingKind::PendingWorkflowMissing,
                    order_id,
                    "the order is PENDING but Temporal has no workflow for it".to_string(),
                )),
            }
        }

        // A running workflow may still be refunding or voiding: not ours.
        for (kind, orders, detail) in [
            (
                FindingKind::CapturedNotRefunded,
                findings.failed_with_capture(input.limit).await,
                "the order FAILED with its payment CAPTURED and not refunded",
            ),
            (
                FindingKind::CheckoutNotSettled,
                findings.failed_with_open_checkout(input.limit).await,
                "the order FAILED with its checkout payment neither captured nor voided",
            ),
        ] {
            for order_id in orders? {
                if self.workflow_state(&order_id).await? != WorkflowState::Running {
                    found.push(order_finding(kind, order_id, detail.to_string()));
                }
            }
        }

        for stuck in findings.stuck_messages(before, input.limit).await? {
            found.push(Finding {
                kind: FindingKind::OutboxStuck,
                detail: format!(
                    "claimed by {} and not taken back since its lease ran out at {} (Unix ms)",
                    stuck.claimed_by, stuck.lease_until_ms
                ),
                subject: stuck.key,
                order_id: stuck.order_id,
            });
        }
        Ok(found)
    }

    /// Repairs `finding` where that is safe, else lists it for an operator.
    #[activity(definition = contract::ActOnFinding)]
    pub async fn act_on_finding(
        self: Arc<Self>,
        _ctx: ActivityContext,
        finding: Finding,
    ) -> Result<FindingAction, ActivityError> {
        let order_id = finding.order_id.map(|o| o.to_string());
        let order_id = order_id.as_deref().unwrap_or("");
        let mut finding = finding;
        if finding.kind == FindingKind::CheckoutNotSettled
            && let Some(o) = finding.order_id
        {
            match self.void_open_checkout(&o).await? {
                Ok(what) => {
                    tracing::warn!(
                        order_id,
                        kind = %finding.kind,
                        subject = %finding.subject,
                        %what,
                        "reconciler repaired a finding"
                    );
                    self.metrics.reconciler_repaired(finding.kind);
                    return Ok(FindingAction::Repaired);
                }
                Err(why) => finding.detail = format!("{}; {why}", finding.detail),
            }
        }
        let new = self.store.findings().open(&finding).await?;
        if new {
            self.metrics.reconciler_found(finding.kind);
        }
        tracing::warn!(
            order_id,
            kind = %finding.kind,
            subject = %finding.subject,
            detail = %finding.detail,
            new,
            "reconciler finding needs attention"
        );
        Ok(FindingAction::Flagged)
    }

    /// Resolves open findings this run no longer saw.
    #[activity(definition = contract::ClearResolvedFindings)]
    pub async fn clear_resolved_findings(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SeenFindings,
    ) -> Result<u64, ActivityError> {
        let findings = self.store.findings();
        let cleared = findings.resolve_unseen(&input.seen).await?;
        let open = findings.open_findings().await?;
        self.metrics
            .reconciler_open(u64::try_from(open.len()).unwrap_or(u64::MAX));
        Ok(cleared)
    }
}
