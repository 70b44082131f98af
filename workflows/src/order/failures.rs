//! Reading business outcomes out of activity failures: the typed
//! [`FailureReason`] a step raised (`PaymentDeclined`, `OutOfStock`, ...),
//! and the refusal of a step that found its order already failed.

use ordersaga_domain::FailureReason;
use ordersaga_domain::names::failure;
use temporalio_workflow::ActivityExecutionError;
use temporalio_workflow::common::error::IncomingError;
use temporalio_workflow::common::protos::temporal::api::failure::v1::failure::FailureInfo;

/// The stored reason a step gave when it refused an order the database says
/// already failed, if `err` is that refusal.
pub(super) fn already_failed(err: &ActivityExecutionError) -> Option<FailureReason> {
    let found = err.failure()?;
    let refused = match &found.failure_info {
        Some(FailureInfo::ApplicationFailureInfo(info)) => {
            info.r#type == failure::ORDER_ALREADY_FAILED
        }
        _ => false,
    };
    if refused { business_reason(err) } else { None }
}

/// The [`FailureReason`] of a non-retryable business failure, if `err` is one.
///
/// Regular activities report an application failure wrapped in an activity
/// failure (`err.reason()`); local activities report it top-level, so its
/// details are decoded from the failure itself.
pub(super) fn business_reason(err: &ActivityExecutionError) -> Option<FailureReason> {
    if let Some(IncomingError::Application(app)) = err.reason() {
        return if app.is_non_retryable() {
            app.details::<FailureReason>().ok().flatten()
        } else {
            None
        };
    }
    match &err.failure()?.failure_info {
        Some(FailureInfo::ApplicationFailureInfo(info)) if info.non_retryable => {
            let payload = info.details.as_ref()?.payloads.first()?;
            serde_json::from_slice(&payload.data).ok()
        }
        _ => None,
    }
}
