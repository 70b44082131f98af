//! The verdict over made-up observations: a clean run passes, and each
//! invariant of the issue names the order (or sku) that breaks it.

use std::collections::HashMap;
use std::time::Duration;

use super::faults::{FaultKind, Injected};
use super::observe::{Shop, ShopOrder, WorkflowFacts};
use super::verdict::{Observed, Verdict, judge};
use super::workload::{Accepted, Kind, Placed, PlannedOrder, Product};
use crate::SandboxCounts;

/// One accepted order `o{i}` of `kind` for one unit of `SKU`.
fn placed(i: usize, kind: Kind) -> Placed {
    Placed {
        plan: PlannedOrder {
            index: i,
            kind,
            key: format!("chaos-{i}"),
            customer: format!("c{i}"),
            email: format!("approve-{i}@buyer.test"),
            lines: vec![("SKU".to_string(), 1)],
            at: Duration::ZERO,
            cancel_delay: Duration::ZERO,
        },
        accepted: Some(Accepted {
            order_id: format!("o{i}"),
            transaction_id: format!("t{i}"),
            workflow_id: format!("order-o{i}"),
            approval_url: None,
        }),
        attempts: 1,
        error: None,
        cancelled: None,
    }
}

/// A consistent world: o0 confirmed, o1 paid then failed and refunded,
/// o2 declined; 10 units opening stock, one sold; one fault of each kind.
struct World {
    placed: Vec<Placed>,
    products: Vec<Product>,
    shop: Shop,
    books: HashMap<String, SandboxCounts>,
    mail: HashMap<(String, String), usize>,
    workflows: HashMap<String, WorkflowFacts>,
    injected: Injected,
}

impl World {
    fn clean() -> Self {
        let mut w = World {
            placed: vec![
                placed(0, Kind::Confirmed),
                placed(1, Kind::OutOfStock),
                placed(2, Kind::Declined),
            ],
            products: vec![Product {
                sku: "SKU".to_string(),
                price_cents: 100,
                stock: 10,
            }],
            shop: Shop::default(),
            books: HashMap::new(),
            mail: HashMap::new(),
            workflows: HashMap::new(),
            injected: Injected::default(),
        };
        for (id, status, captures, refunds, last) in [
            ("o0", "CONFIRMED", 1, 0, "order-confirmed"),
            ("o1", "FAILED", 1, 1, "order-failed"),
            ("o2", "FAILED", 0, 0, "order-failed"),
        ] {
            w.shop.orders.insert(
                id.to_string(),
                ShopOrder {
                    status: status.to_string(),
                    failure_code: None,
                    lines: vec![("SKU".to_string(), 1)],
                },
            );
            let counts = SandboxCounts {
                captures,
                refunds,
                ..SandboxCounts::default()
            };
            w.books.insert(id.to_string(), counts);
            w.mail
                .insert((id.to_string(), "order-received".to_string()), 1);
            w.mail.insert((id.to_string(), last.to_string()), 1);
            let closed = WorkflowFacts {
                closed: true,
                ..WorkflowFacts::default()
            };
            w.workflows.insert(id.to_string(), closed);
        }
        w.shop.shipments.insert("o0".to_string());
        w.shop.on_hand.insert("SKU".to_string(), 9);
        w.shop.ledger.insert("SKU".to_string(), 9);
        w.shop.received.insert("SKU".to_string(), 10);
        for kind in FaultKind::ALL {
            w.injected.done.insert(kind, 1);
        }
        w
    }

    fn judge(&self) -> Verdict {
        judge(&Observed {
            placed: &self.placed,
            products: &self.products,
            shop: &self.shop,
            books: &self.books,
            mail: &self.mail,
            workflows: &self.workflows,
            injected: &self.injected,
            per_kind: 1,
        })
    }
}

/// The violations, asserting there is one naming `needle`.
fn violation_naming(w: &World, needle: &str) -> Vec<String> {
    let v = w.judge().violations;
    assert!(
        v.iter().any(|line| line.contains(needle)),
        "no violation naming {needle:?}: {v:#?}"
    );
    v
}

#[test]
fn a_consistent_run_has_no_violation() {
    let v = World::clean().judge();
    assert!(v.violations.is_empty(), "{:#?}", v.violations);
}

#[test]
fn a_second_capture_is_named() {
    let mut w = World::clean();
    if let Some(c) = w.books.get_mut("o0") {
        c.captures = 2;
    }
    violation_naming(&w, "order o0: 2 captures");
}

#[test]
fn a_failed_order_keeping_the_money_is_named_unless_parked() {
    let mut w = World::clean();
    if let Some(c) = w.books.get_mut("o1") {
        c.refunds = 0;
    }
    violation_naming(&w, "order o1: FAILED after capture, not refunded");
    w.shop
        .attention
        .insert("o1".to_string(), "RefundPayment: refused".to_string());
    assert!(w.judge().violations.is_empty());
}

#[test]
fn lost_stuck_and_invented_orders_are_named() {
    let mut w = World::clean();
    w.shop.orders.remove("o2");
    violation_naming(&w, "order o2 accepted but lost");
    let mut w = World::clean();
    if let Some(o) = w.shop.orders.get_mut("o2") {
        o.status = "PENDING".to_string();
    }
    violation_naming(&w, "order o2 stuck in PENDING");
    let mut w = World::clean();
    let stray = w.shop.orders["o2"].clone();
    w.shop.orders.insert("stray".to_string(), stray);
    violation_naming(&w, "order stray in the shop's books");
}

#[test]
fn stock_drift_and_a_ledger_apart_from_on_hand_are_named() {
    let mut w = World::clean();
    w.shop.on_hand.insert("SKU".to_string(), 8);
    violation_naming(&w, "sku SKU: on hand 8");
    let mut w = World::clean();
    w.shop.ledger.insert("SKU".to_string(), 7);
    violation_naming(&w, "ledger 7");
}

#[test]
fn missing_emails_shipments_and_duplicates_beyond_crashes_are_named() {
    let mut w = World::clean();
    w.mail
        .remove(&("o2".to_string(), "order-received".to_string()));
    violation_naming(&w, "order o2: no order-received email");
    let mut w = World::clean();
    w.shop.shipments.clear();
    violation_naming(&w, "order o0: CONFIRMED without a shipment");
    // Three crashes (one kill of each process kind) allow three duplicates.
    let mut w = World::clean();
    w.mail
        .insert(("o1".to_string(), "order-failed".to_string()), 4);
    assert!(w.judge().violations.is_empty());
    w.mail
        .insert(("o2".to_string(), "order-failed".to_string()), 2);
    violation_naming(&w, "4 duplicate emails for 3 crashes");
}

#[test]
fn open_workflows_and_missing_faults_are_named() {
    let mut w = World::clean();
    if let Some(f) = w.workflows.get_mut("o1") {
        f.closed = false;
    }
    violation_naming(&w, "order o1: workflow still open");
    let mut w = World::clean();
    w.injected.done.remove(&FaultKind::RefundRefusal);
    violation_naming(&w, "fault refund refusal: 0 injected of 1");
}
