//! [`NotificationWorkflow`]: delivers one email, on the `notifications`
//! task queue. The order saga starts one per (order, stage) and does not
//! wait for it; its `SendEmail` activity retries for as long as the
//! notifications service's horizon allows, so an SMTP outage delays email,
//! never orders.

use std::time::{Duration, UNIX_EPOCH};

use ordersaga_domain::Notification;
use ordersaga_domain::contracts::{EmailReceipt, NotificationContract, SendEmailInput};
use ordersaga_domain::names::{NOTIFICATION_WORKFLOW_TYPE, failure};
use temporalio_workflow::{
    ActivityOptions, RetryPolicy, WorkflowContext, WorkflowContextView, WorkflowResult, workflow,
    workflow_methods,
};

/// Server-side retry of `SendEmail`. Delivery failures carry the
/// notifications worker's own backoff (`next_retry_delay`), which wins over
/// these intervals; they apply to timeouts (e.g. a worker that died
/// mid-send). No attempt limit: the activity gives up itself once the
/// horizon has passed.
fn send_retry() -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(300))
        .non_retryable_error_types([failure::EMAIL_UNDELIVERABLE])
        .build()
}

#[workflow]
pub struct NotificationWorkflow {
    input: SendEmailInput,
}

#[workflow_methods]
impl NotificationWorkflow {
    #[init]
    pub fn new(ctx: &WorkflowContextView, notification: Notification) -> Self {
        // The start time is the stage's time even when no worker polled
        // for hours: the retry horizon counts from it.
        let requested_at_ms = ctx
            .start_time()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            input: SendEmailInput {
                notification,
                requested_at_ms,
            },
        }
    }

    /// Sends the email once; fails (visibly, in the Temporal UI) only when
    /// the email is undeliverable.
    #[run(name = NOTIFICATION_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<EmailReceipt> {
        let input = ctx.state(|s| s.input.clone());
        let summary = format!("SendEmail {}", input.notification.stage());
        let receipt = ctx
            .execute_activity(
                NotificationContract::send_email,
                input,
                ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
                    // A worker killed mid-send is noticed within seconds.
                    .heartbeat_timeout(Duration::from_secs(5))
                    .retry_policy(send_retry())
                    .summary(summary.as_str())
                    .build(),
            )
            .await?;
        Ok(receipt)
    }
}
