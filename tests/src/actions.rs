//! What a workflow run costs on Temporal Cloud, read from its history:
//! the billable Actions its events stand for, as
//! <https://docs.temporal.io/cloud/actions> counts them, and the history's
//! size (events, protobuf bytes). `ordersaga-actions` prints them for the
//! recorded histories (docs/benchmarks.md, "Billable actions per order").
//!
//! The rules, per event of the history:
//! - `WorkflowExecutionStarted`: 1 (workflow started);
//! - `ActivityTaskScheduled`: 1 per attempt (activity started or retried;
//!   the attempt is on the activity's `ActivityTaskStarted`);
//! - `MarkerRecorded` (local activities, patches): 1 per workflow task
//!   that recorded any (all the markers of one workflow task are one
//!   Action);
//! - `TimerStarted`: 1;
//! - `WorkflowExecutionSignaled`: 1 (the signal sent);
//! - `WorkflowExecutionUpdateAccepted`: 1 (the update received; an
//!   update-with-start is this plus the start);
//! - `UpsertWorkflowSearchAttributes`: 1, unless it sets only
//!   `TemporalChangeVersion`;
//! - `StartChildWorkflowExecutionInitiated`: 2;
//! - `WorkflowExecutionOptionsUpdated`: 1.
//!
//! Not in a history, so not counted: queries, activity heartbeats that
//! reach the server, rejected updates, signals this run sent to others
//! (they count in the receiver's history).

use std::collections::{BTreeSet, HashMap};

use prost::Message as _;
use temporalio_common::protos::temporal::api::history::v1::History;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

/// The search attribute of the old versioning API, exempt from Actions.
const CHANGE_VERSION: &str = "TemporalChangeVersion";

/// One history's billable Actions by kind, and its size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actions {
    /// Workflow starts.
    pub starts: u64,
    /// Activity attempts (starts and retries).
    pub activities: u64,
    /// Workflow tasks that recorded markers (local activities, patches).
    pub marker_tasks: u64,
    /// Local activities run (markers named `core_local_activity`); not
    /// Actions themselves, they are counted in [`Self::marker_tasks`].
    pub local_activities: u64,
    /// Timers started.
    pub timers: u64,
    /// Signals received.
    pub signals: u64,
    /// Updates accepted.
    pub updates: u64,
    /// Search-attribute upserts.
    pub upserts: u64,
    /// Child workflows started (2 Actions each).
    pub children: u64,
    /// Workflow execution options updates.
    pub options_updates: u64,
    /// Workflow tasks completed (not Actions: the server's work per order).
    pub workflow_tasks: u64,
    /// Events in the history.
    pub events: u64,
    /// The history's protobuf size, as the server stores it, in bytes.
    pub bytes: u64,
}

impl Actions {
    /// The billable Actions in all.
    pub fn total(&self) -> u64 {
        self.starts
            + self.activities
            + self.marker_tasks
            + self.timers
            + self.signals
            + self.updates
            + self.upserts
            + 2 * self.children
            + self.options_updates
    }
}

/// Counts `history`'s billable Actions.
pub fn count(history: &History) -> Actions {
    let mut actions = Actions {
        events: history.events.len() as u64,
        bytes: history.encoded_len() as u64,
        ..Actions::default()
    };
    let mut attempts: HashMap<i64, u64> = HashMap::new();
    let mut marker_tasks = BTreeSet::new();
    for event in &history.events {
        let Some(attributes) = &event.attributes else {
            continue;
        };
        match attributes {
            Attributes::WorkflowExecutionStartedEventAttributes(_) => actions.starts += 1,
            Attributes::ActivityTaskScheduledEventAttributes(_) => {
                attempts.insert(event.event_id, 1);
            }
            Attributes::ActivityTaskStartedEventAttributes(started) => {
                let attempt = u64::try_from(started.attempt).unwrap_or(1).max(1);
                attempts.insert(started.scheduled_event_id, attempt);
            }
            Attributes::MarkerRecordedEventAttributes(marker) => {
                marker_tasks.insert(marker.workflow_task_completed_event_id);
                if marker.marker_name == "core_local_activity" {
                    actions.local_activities += 1;
                }
            }
            Attributes::TimerStartedEventAttributes(_) => actions.timers += 1,
            Attributes::WorkflowExecutionSignaledEventAttributes(_) => actions.signals += 1,
            Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(_) => actions.updates += 1,
            Attributes::UpsertWorkflowSearchAttributesEventAttributes(upsert) => {
                let only_version = upsert.search_attributes.as_ref().is_some_and(|sa| {
                    !sa.indexed_fields.is_empty()
                        && sa.indexed_fields.keys().all(|k| k == CHANGE_VERSION)
                });
                if !only_version {
                    actions.upserts += 1;
                }
            }
            Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(_) => {
                actions.children += 1;
            }
            Attributes::WorkflowExecutionOptionsUpdatedEventAttributes(_) => {
                actions.options_updates += 1;
            }
            Attributes::WorkflowTaskCompletedEventAttributes(_) => actions.workflow_tasks += 1,
            _ => {}
        }
    }
    actions.activities = attempts.values().sum();
    actions.marker_tasks = marker_tasks.len() as u64;
    actions
}

/// The markdown table of `rows` (a name and its count each).
pub fn table(rows: &[(String, Actions)]) -> String {
    let mut out = String::from(
        "| history | Actions | start | activity attempts | marker tasks (local activities) \
         | timers | signals | updates | SA upserts | children | workflow tasks | events | bytes |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, a) in rows {
        out.push_str(&format!(
            "| {name} | **{}** | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            a.total(),
            a.starts,
            a.activities,
            a.marker_tasks,
            a.local_activities,
            a.timers,
            a.signals,
            a.updates,
            a.upserts,
            a.children,
            a.workflow_tasks,
            a.events,
            a.bytes,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::common::v1::{Payload, SearchAttributes};
    use temporalio_common::protos::temporal::api::history::v1::{
        ActivityTaskScheduledEventAttributes, ActivityTaskStartedEventAttributes, HistoryEvent,
        MarkerRecordedEventAttributes, TimerStartedEventAttributes,
        UpsertWorkflowSearchAttributesEventAttributes, WorkflowExecutionSignaledEventAttributes,
        WorkflowExecutionStartedEventAttributes, WorkflowExecutionUpdateAcceptedEventAttributes,
        WorkflowTaskCompletedEventAttributes,
    };

    fn event(event_id: i64, attributes: Attributes) -> HistoryEvent {
        HistoryEvent {
            event_id,
            attributes: Some(attributes),
            ..HistoryEvent::default()
        }
    }

    fn marker(name: &str, task: i64) -> Attributes {
        Attributes::MarkerRecordedEventAttributes(MarkerRecordedEventAttributes {
            marker_name: name.to_string(),
            workflow_task_completed_event_id: task,
            ..Default::default()
        })
    }

    fn upsert(names: &[&str]) -> Attributes {
        Attributes::UpsertWorkflowSearchAttributesEventAttributes(
            UpsertWorkflowSearchAttributesEventAttributes {
                search_attributes: Some(SearchAttributes {
                    indexed_fields: names
                        .iter()
                        .map(|n| (n.to_string(), Payload::default()))
                        .collect(),
                }),
                ..Default::default()
            },
        )
    }

    /// A start; two local activities and a patch in the first workflow
    /// task, one in the third; an activity retried twice and one that
    /// never started; a timer, a signal, an accepted update; an upsert of
    /// two attributes and one of the change version alone.
    #[test]
    fn a_small_history_is_counted_by_the_rules() {
        let wft = |id| {
            event(
                id,
                Attributes::WorkflowTaskCompletedEventAttributes(
                    WorkflowTaskCompletedEventAttributes::default(),
                ),
            )
        };
        let history = History {
            events: vec![
                event(
                    1,
                    Attributes::WorkflowExecutionStartedEventAttributes(
                        WorkflowExecutionStartedEventAttributes::default(),
                    ),
                ),
                wft(4),
                event(5, marker("core_patch", 4)),
                event(6, marker("core_local_activity", 4)),
                event(7, marker("core_local_activity", 4)),
                event(8, upsert(&["OrderStatus", "PaymentStatus"])),
                event(9, upsert(&[CHANGE_VERSION])),
                event(
                    10,
                    Attributes::ActivityTaskScheduledEventAttributes(
                        ActivityTaskScheduledEventAttributes::default(),
                    ),
                ),
                event(
                    11,
                    Attributes::ActivityTaskScheduledEventAttributes(
                        ActivityTaskScheduledEventAttributes::default(),
                    ),
                ),
                event(
                    12,
                    Attributes::ActivityTaskStartedEventAttributes(
                        ActivityTaskStartedEventAttributes {
                            scheduled_event_id: 10,
                            attempt: 3,
                            ..Default::default()
                        },
                    ),
                ),
                event(
                    13,
                    Attributes::TimerStartedEventAttributes(TimerStartedEventAttributes::default()),
                ),
                event(
                    14,
                    Attributes::WorkflowExecutionSignaledEventAttributes(
                        WorkflowExecutionSignaledEventAttributes::default(),
                    ),
                ),
                event(
                    15,
                    Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(
                        WorkflowExecutionUpdateAcceptedEventAttributes::default(),
                    ),
                ),
                wft(18),
                wft(21),
                event(22, marker("core_local_activity", 21)),
            ],
        };
        let actions = count(&history);
        assert_eq!(
            actions,
            Actions {
                starts: 1,
                activities: 4,
                marker_tasks: 2,
                local_activities: 3,
                timers: 1,
                signals: 1,
                updates: 1,
                upserts: 1,
                children: 0,
                options_updates: 0,
                workflow_tasks: 3,
                events: 16,
                bytes: history.encoded_len() as u64,
            }
        );
        assert_eq!(actions.total(), 1 + 4 + 2 + 1 + 1 + 1 + 1);
    }
}
