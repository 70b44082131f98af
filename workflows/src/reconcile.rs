//! [`ReconcileOrdersWorkflow`]: one run of the reconciler, started every few
//! minutes by the `ordersaga-reconciler` Temporal Schedule (the worker
//! creates it; it shows on the Web UI's Schedules page).
//!
//! A run finds inconsistencies (`FindInconsistencies`), acts on each one
//! (`ActOnFinding`: repair what is safe, list the rest as needing attention)
//! and resolves earlier findings it no longer sees. Its result, the
//! [`ReconcileReport`], is what the run found and did.

use std::time::Duration;

use ordersaga_domain::contracts::{ReconcileContract, SeenFindings};
use ordersaga_domain::names::RECONCILE_WORKFLOW_TYPE;
use ordersaga_domain::{FindingAction, ReconcileInput, ReconcileReport};
use temporalio_workflow::{
    ActivityCloseTimeouts, ActivityOptions, RetryPolicy, WorkflowContext, WorkflowContextView,
    WorkflowResult, workflow, workflow_methods,
};

/// Every step is retried with backoff for the run's lifetime: the next run
/// starts from scratch anyway, and the schedule skips overlapping runs.
fn step(summary: &str) -> ActivityOptions {
    ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: Duration::from_secs(600),
        start_to_close: Duration::from_secs(120),
    })
    .retry_policy(
        RetryPolicy::builder()
            .initial_interval(Duration::from_secs(1))
            .backoff_coefficient(2.0)
            .maximum_interval(Duration::from_secs(30))
            .build(),
    )
    .summary(summary)
    .build()
}

#[workflow]
pub struct ReconcileOrdersWorkflow {
    input: ReconcileInput,
}

#[workflow_methods]
impl ReconcileOrdersWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: ReconcileInput) -> Self {
        Self { input }
    }

    /// One reconciliation pass.
    #[run(name = RECONCILE_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<ReconcileReport> {
        let input = ctx.state(|s| s.input);
        let findings = ctx
            .execute_activity(
                ReconcileContract::find_inconsistencies,
                input,
                step("FindInconsistencies"),
            )
            .await?;
        let mut report = ReconcileReport::default();
        // One at a time: findings are rare, and a repair asks the gateway.
        for finding in &findings {
            let action = ctx
                .execute_activity(
                    ReconcileContract::act_on_finding,
                    finding.clone(),
                    step(&format!(
                        "ActOnFinding {} {}",
                        finding.kind, finding.subject
                    )),
                )
                .await?;
            match action {
                FindingAction::Repaired => report.repaired += 1,
                FindingAction::Flagged => report.flagged += 1,
            }
        }
        let seen = findings
            .iter()
            .map(|f| (f.kind, f.subject.clone()))
            .collect();
        report.cleared = ctx
            .execute_activity(
                ReconcileContract::clear_resolved_findings,
                SeenFindings { seen },
                step("ClearResolvedFindings"),
            )
            .await?;
        report.findings = findings;
        Ok(report)
    }
}
