//! Business counters of the saga, exported beside the SDK's own metrics.
//!
//! The SDK's metrics say how the *machinery* is doing (slots, latencies);
//! these say what happened to *orders*. They are recorded by the activities
//! through the same [`CoreMeter`] the worker gives the SDK, so one
//! Prometheus endpoint serves both. Names are in [`name`]; `docs/tuning.md`
//! explains how to read them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ordersaga_domain::{FindingKind, Topic};
use temporalio_common::telemetry::metrics::{
    CoreMeter, Counter, Gauge, HistogramDuration, MetricAttributes, MetricKeyValue,
    MetricParameters, NewAttributes, NoOpCoreMeter,
};

/// Metric names as Prometheus shows them.
pub mod name {
    /// Counter: orders stored `PENDING` by `PlaceOrder` (first time only).
    pub const ORDERS_PLACED: &str = "ordersaga_orders_placed";
    /// Counter: orders `ConfirmOrder` moved to `CONFIRMED` (a retried step
    /// that finds the order confirmed counts nothing).
    pub const ORDERS_CONFIRMED: &str = "ordersaga_orders_confirmed";
    /// Counter: orders `FailOrder` moved to `FAILED` (the same).
    pub const ORDERS_FAILED: &str = "ordersaga_orders_failed";
    /// Counter: captured payments given back by the refund compensation,
    /// once each.
    pub const REFUNDS: &str = "ordersaga_refunds";
    /// Counter: compensations parked for an operator (refused for good).
    pub const COMPENSATIONS_PARKED: &str = "ordersaga_compensations_parked";
    /// Gauge: orders with a compensation parked for an operator, as this
    /// worker last counted them in the database (at each park or
    /// resolution, and every 15 s).
    pub const ORDERS_NEEDS_ATTENTION: &str = "ordersaga_orders_needs_attention";
    /// Histogram (ms): how long one charge waited for the payment gateway.
    pub const PAYMENT_WAIT: &str = "ordersaga_payment_wait";
    /// Counter, by `topic`: outbox messages delivered by a relay.
    pub const OUTBOX_DELIVERED: &str = "ordersaga_outbox_delivered";
    /// Counter, by `topic`: delivery attempts that failed and will be retried.
    pub const OUTBOX_RETRIED: &str = "ordersaga_outbox_retried";
    /// Counter, by `topic`: messages given up (refused, or past the horizon).
    pub const OUTBOX_FAILED: &str = "ordersaga_outbox_failed";
    /// Counter, by `topic`: messages set aside because their stored payload
    /// cannot be read (marked `FAILED` with the reason; see the outbox).
    pub const OUTBOX_QUARANTINED: &str = "ordersaga_outbox_quarantined";
    /// Gauge, by `topic`: messages waiting in the outbox, as a relay last
    /// counted them (a busy relay counts once a second; an idle one sets 0).
    pub const OUTBOX_BACKLOG: &str = "ordersaga_outbox_backlog";
    /// Counter, by `kind`: inconsistencies the reconciler listed for an
    /// operator (each counted once, when first seen).
    pub const RECONCILER_FINDINGS: &str = "ordersaga_reconciler_findings";
    /// Counter, by `kind`: inconsistencies the reconciler repaired itself.
    pub const RECONCILER_REPAIRS: &str = "ordersaga_reconciler_repairs";
    /// Counter: shipments flagged for waiting longer than
    /// `ORDERSAGA_DISPATCH_ALERT_SECS` for the courier (once each).
    pub const SHIPMENTS_OVERDUE: &str = "ordersaga_shipments_overdue";
    /// Gauge: the reconciler's open findings after its last run.
    pub const RECONCILER_OPEN: &str = "ordersaga_reconciler_open_findings";
}

/// The business instruments. Cheap to clone; a no-op set when the worker
/// exports no metrics.
#[derive(Clone)]
pub struct BusinessMetrics {
    placed: Counter,
    confirmed: Counter,
    failed: Counter,
    refunds: Counter,
    parked: Counter,
    shipments_overdue: Counter,
    needs_attention: Gauge,
    payment_wait: HistogramDuration,
    attributes: MetricAttributes,
    outbox_delivered: Counter,
    outbox_retried: Counter,
    outbox_failed: Counter,
    outbox_quarantined: Counter,
    outbox_backlog: Gauge,
    /// Per-topic attribute sets, in `Topic::ALL` order.
    topics: Vec<(Topic, MetricAttributes)>,
    reconciler_findings: Counter,
    reconciler_repairs: Counter,
    reconciler_open: Gauge,
    /// Per-kind attribute sets, in `FindingKind::ALL` order.
    finding_kinds: Vec<(FindingKind, MetricAttributes)>,
}

impl fmt::Debug for BusinessMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusinessMetrics").finish_non_exhaustive()
    }
}

fn params(name: &'static str, description: &'static str) -> MetricParameters {
    MetricParameters::builder()
        .name(name)
        .description(description)
        .build()
}

impl BusinessMetrics {
    /// Instruments created on `meter` (the worker's Prometheus meter).
    pub fn new(meter: &Arc<dyn CoreMeter>) -> Self {
        Self {
            placed: meter.counter(params(name::ORDERS_PLACED, "Orders stored PENDING")),
            confirmed: meter.counter(params(name::ORDERS_CONFIRMED, "Orders confirmed")),
            failed: meter.counter(params(name::ORDERS_FAILED, "Orders failed")),
            refunds: meter.counter(params(name::REFUNDS, "Captured payments refunded")),
            parked: meter.counter(params(
                name::COMPENSATIONS_PARKED,
                "Compensations parked for an operator",
            )),
            shipments_overdue: meter.counter(params(
                name::SHIPMENTS_OVERDUE,
                "Shipments not dispatched in time",
            )),
            needs_attention: meter.gauge(params(
                name::ORDERS_NEEDS_ATTENTION,
                "Orders with a compensation parked for an operator",
            )),
            payment_wait: meter.histogram_duration(params(
                name::PAYMENT_WAIT,
                "Time one charge waited for the payment gateway",
            )),
            // Attributes must come from the meter that records them.
            attributes: meter.new_attributes(NewAttributes::default()),
            outbox_delivered: meter
                .counter(params(name::OUTBOX_DELIVERED, "Outbox messages delivered")),
            outbox_retried: meter.counter(params(
                name::OUTBOX_RETRIED,
                "Outbox delivery attempts that failed and will be retried",
            )),
            outbox_failed: meter.counter(params(name::OUTBOX_FAILED, "Outbox messages given up")),
            outbox_quarantined: meter.counter(params(
                name::OUTBOX_QUARANTINED,
                "Outbox messages set aside because their payload cannot be read",
            )),
            outbox_backlog: meter.gauge(params(
                name::OUTBOX_BACKLOG,
                "Outbox messages waiting for delivery",
            )),
            topics: Topic::ALL
                .iter()
                .map(|&t| {
                    let kv = MetricKeyValue::new("topic", t.as_str());
                    (t, meter.new_attributes(NewAttributes::from([kv])))
                })
                .collect(),
            reconciler_findings: meter.counter(params(
                name::RECONCILER_FINDINGS,
                "Inconsistencies the reconciler listed for an operator",
            )),
            reconciler_repairs: meter.counter(params(
                name::RECONCILER_REPAIRS,
                "Inconsistencies the reconciler repaired",
            )),
            reconciler_open: meter.gauge(params(
                name::RECONCILER_OPEN,
                "Open reconciler findings after the last run",
            )),
            finding_kinds: FindingKind::ALL
                .iter()
                .map(|&k| {
                    let kv = MetricKeyValue::new("kind", k.as_str());
                    (k, meter.new_attributes(NewAttributes::from([kv])))
                })
                .collect(),
        }
    }

    fn kind(&self, kind: FindingKind) -> &MetricAttributes {
        self.finding_kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(&self.attributes, |(_, a)| a)
    }

    pub(crate) fn reconciler_found(&self, kind: FindingKind) {
        self.reconciler_findings.add(1, self.kind(kind));
    }

    pub(crate) fn reconciler_repaired(&self, kind: FindingKind) {
        self.reconciler_repairs.add(1, self.kind(kind));
    }

    pub(crate) fn reconciler_open(&self, open: u64) {
        self.reconciler_open.record(open, &self.attributes);
    }

    fn topic(&self, topic: Topic) -> &MetricAttributes {
        self.topics
            .iter()
            .find(|(t, _)| *t == topic)
            .map_or(&self.attributes, |(_, a)| a)
    }

    pub(crate) fn outbox_settled(&self, topic: Topic, delivered: u64, retried: u64, failed: u64) {
        let attributes = self.topic(topic);
        self.outbox_delivered.add(delivered, attributes);
        self.outbox_retried.add(retried, attributes);
        self.outbox_failed.add(failed, attributes);
    }

    pub(crate) fn outbox_quarantined(&self, topic: Topic, quarantined: u64) {
        self.outbox_quarantined.add(quarantined, self.topic(topic));
    }

    pub(crate) fn outbox_backlog(&self, topic: Topic, waiting: i64) {
        self.outbox_backlog
            .record(u64::try_from(waiting).unwrap_or(0), self.topic(topic));
    }

    /// Instruments that record nothing.
    pub fn noop() -> Self {
        Self::new(&(Arc::new(NoOpCoreMeter) as Arc<dyn CoreMeter>))
    }

    pub(crate) fn order_placed(&self) {
        self.placed.add(1, &self.attributes);
    }

    pub(crate) fn order_confirmed(&self) {
        self.confirmed.add(1, &self.attributes);
    }

    pub(crate) fn order_failed(&self) {
        self.failed.add(1, &self.attributes);
    }

    pub(crate) fn refunded(&self) {
        self.refunds.add(1, &self.attributes);
    }

    pub(crate) fn compensation_parked(&self) {
        self.parked.add(1, &self.attributes);
    }

    pub(crate) fn shipment_overdue(&self) {
        self.shipments_overdue.add(1, &self.attributes);
    }

    pub(crate) fn needs_attention(&self, orders: i64) {
        self.needs_attention
            .record(u64::try_from(orders).unwrap_or(0), &self.attributes);
    }

    pub(crate) fn payment_waited(&self, waited: Duration) {
        self.payment_wait.record(waited, &self.attributes);
    }
}
