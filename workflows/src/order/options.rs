//! How the saga runs its activities: the retry policy and the two kinds of
//! step (local database writes, heartbeating gateway calls). Part of every
//! recorded history: changing a value here changes the commands a saga
//! sends.

use std::time::Duration;

use ordersaga_domain::names::failure;
use temporalio_workflow::{
    ActivityCancellationType, ActivityCloseTimeouts, ActivityOptions, LocalActivityOptions,
    RetryPolicy, WorkflowCancellationToken,
};

/// A gateway call's attempt: it heartbeats, so a dead worker is noticed
/// long before this.
const GATEWAY_ATTEMPT: Duration = Duration::from_secs(30);

/// Retries infrastructure errors with backoff for as long as the step's
/// timeout allows (an outage is waited out, not turned into failed orders);
/// business outcomes are final.
fn retry_policy() -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(Duration::from_millis(100))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(30))
        .non_retryable_error_types([
            failure::PAYMENT_DECLINED,
            failure::OUT_OF_STOCK,
            failure::ORDER_NOT_FOUND,
        ])
        .build()
}

/// Our own database writes: milliseconds each; retried for up to a day.
pub(super) fn db_step(
    summary: &str,
    token: Option<WorkflowCancellationToken>,
) -> LocalActivityOptions {
    let mut opts = LocalActivityOptions::builder()
        .start_to_close_timeout(Duration::from_secs(10))
        .schedule_to_close_timeout(Duration::from_secs(24 * 3600))
        .retry_policy(retry_policy())
        .summary(summary.to_string())
        .build();
    opts.cancellation_token = token;
    opts
}

/// A compensation's database write, and `FailOrder`: detached (a cancelled
/// order is still unwound and recorded). Under `compensation-parking-v1`
/// (`lasting`) with no schedule-to-close: an outage is waited out however
/// long it lasts, never turned into an order left half undone. (Gateway
/// steps have no schedule-to-close in any generation.)
pub(super) fn undo_db_step(summary: &str, lasting: bool) -> LocalActivityOptions {
    let mut opts = db_step(summary, detached());
    if lasting {
        opts.schedule_to_close_timeout = None;
    }
    opts
}

/// Gateway calls: heartbeating, so a dead worker's attempt is retried
/// elsewhere within seconds.
pub(super) fn gateway_step(
    summary: &str,
    token: Option<WorkflowCancellationToken>,
) -> ActivityOptions {
    let mut opts = ActivityOptions::with_start_to_close_timeout(GATEWAY_ATTEMPT)
        .heartbeat_timeout(Duration::from_secs(5))
        .retry_policy(retry_policy())
        // On cancellation wait for the charge attempt to end, so a refund
        // never runs before the capture it must undo.
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .summary(summary)
        .build();
    opts.cancellation_token = token;
    opts
}

/// The simulated charge as a local activity (`local-charge-v1`): an
/// attempt as long as a gateway call's, retried like one without end (an
/// outage is waited out; the charge's idempotency key, the
/// `transactionId`, captures once however often it is sent). Detached: a
/// cancelled workflow lets it end, so the refund never runs before the
/// capture it must undo (a local activity cannot wait for its
/// cancellation the way [`gateway_step`]'s does).
pub(super) fn charge_step(summary: &str) -> LocalActivityOptions {
    let mut opts = LocalActivityOptions::builder()
        .start_to_close_timeout(GATEWAY_ATTEMPT)
        .retry_policy(retry_policy())
        .summary(summary.to_string())
        .build();
    opts.cancellation_token = detached();
    opts
}

/// A gateway read worth retrying only until `window` has passed, all
/// attempts together (the checkout wait's reconciliation poll: the deadline
/// decides, not the gateway's outage).
pub(super) fn within(summary: &str, window: Duration) -> ActivityOptions {
    let mut opts = gateway_step(summary, None);
    opts.close_timeouts = ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: window,
        start_to_close: GATEWAY_ATTEMPT.min(window),
    };
    opts
}

/// A compensation or closing step: a detached token, so it runs even when
/// the workflow is being cancelled (a cancelled order is still refunded and
/// recorded).
pub(super) fn detached() -> Option<WorkflowCancellationToken> {
    Some(WorkflowCancellationToken::new())
}
