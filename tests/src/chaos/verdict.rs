//! The invariants over what a chaos run observed, the table of its
//! figures and the list of violations, each naming its order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use super::faults::{FaultKind, Injected};
use super::observe::{Shop, WorkflowFacts};
use super::workload::{Placed, Product};
use crate::SandboxCounts;

/// Everything a run observed.
pub struct Observed<'a> {
    /// The clients' side.
    pub placed: &'a [Placed],
    /// The products and their opening stock.
    pub products: &'a [Product],
    /// The shop database.
    pub shop: &'a Shop,
    /// The sandbox's counters per order id.
    pub books: &'a HashMap<String, SandboxCounts>,
    /// Emails per (order id, stage slug).
    pub mail: &'a HashMap<(String, String), usize>,
    /// Order workflows per order id.
    pub workflows: &'a HashMap<String, WorkflowFacts>,
    /// Faults injected.
    pub injected: &'a Injected,
    /// Faults of each kind asked for.
    pub per_kind: usize,
}

/// The figures, as `name -> value` rows in groups, and the violations.
#[derive(Debug, Default, serde::Serialize)]
pub struct Verdict {
    /// (group, figure, value).
    pub figures: Vec<(String, String, i64)>,
    /// One line per violation, naming the order (or sku, or fault).
    pub violations: Vec<String>,
    /// What is worth a look but breaks no invariant.
    pub notes: Vec<String>,
}

impl Verdict {
    fn figure(&mut self, group: &str, name: impl Into<String>, value: impl TryInto<i64>) {
        let value = value.try_into().unwrap_or(i64::MAX);
        self.figures.push((group.to_string(), name.into(), value));
    }

    fn violate(&mut self, v: String) {
        self.violations.push(v);
    }

    /// The table and the violations, for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut groups: Vec<&str> = Vec::new();
        for (g, _, _) in &self.figures {
            if !groups.contains(&g.as_str()) {
                groups.push(g);
            }
        }
        for group in groups {
            let _ = writeln!(out, "{group}");
            for (_, name, value) in self.figures.iter().filter(|f| f.0 == group) {
                let _ = writeln!(out, "  {name:<46} {value:>8}");
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let _ = writeln!(out, "violations: {}", self.violations.len());
        for v in &self.violations {
            let _ = writeln!(out, "  {v}");
        }
        out
    }
}

/// Checks every invariant of the issue.
pub fn judge(o: &Observed<'_>) -> Verdict {
    let mut v = Verdict::default();
    orders(o, &mut v);
    money(o, &mut v);
    stock(o, &mut v);
    notifications(o, &mut v);
    faults(o, &mut v);
    v
}

fn orders(o: &Observed<'_>, v: &mut Verdict) {
    let accepted: Vec<_> = o.placed.iter().filter(|p| p.accepted.is_some()).collect();
    v.figure("orders", "planned", o.placed.len());
    v.figure("orders", "accepted", accepted.len());
    v.figure(
        "orders",
        "PlaceOrder requests (retries included)",
        o.placed.iter().map(|p| p.attempts as i64).sum::<i64>(),
    );
    for p in o.placed.iter().filter(|p| p.accepted.is_none()) {
        v.violate(format!(
            "order #{} ({}) never accepted: {}",
            p.plan.index,
            p.plan.key,
            p.error.as_deref().unwrap_or("?")
        ));
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for p in &accepted {
        let Some(a) = &p.accepted else { continue };
        let outcome = match (
            o.shop.orders.get(&a.order_id),
            o.shop.attention.get(&a.order_id),
        ) {
            (_, Some(_)) => "NEEDS_ATTENTION".to_string(),
            (Some(s), None) if s.status == "CONFIRMED" => "CONFIRMED".to_string(),
            (Some(s), None) if s.status == "FAILED" => {
                format!("FAILED {}", s.failure_code.as_deref().unwrap_or("?"))
            }
            (Some(s), None) => {
                v.violate(format!("order {} stuck in {}", a.order_id, s.status));
                "STUCK".to_string()
            }
            (None, None) => {
                v.violate(format!("order {} accepted but lost", a.order_id));
                "LOST".to_string()
            }
        };
        *by_kind
            .entry((p.plan.kind.name(), outcome.clone()))
            .or_default() += 1;
        *outcomes.entry(outcome).or_default() += 1;
        if let Some(e) = &p.error {
            v.violate(format!("order {}: client: {e}", a.order_id));
        }
        match o.workflows.get(&a.order_id) {
            Some(w) if w.failing_now => v.violate(format!(
                "order {}: workflow task failing: {:?}",
                a.order_id,
                w.task_failures.last()
            )),
            Some(w) if !w.closed && !o.shop.attention.contains_key(&a.order_id) => {
                v.violate(format!("order {}: workflow still open", a.order_id));
            }
            _ => {}
        }
    }
    let cancels = |answer: bool| {
        o.placed
            .iter()
            .filter(|p| p.cancelled == Some(answer))
            .count()
    };
    v.figure("orders", "cancels accepted", cancels(true));
    v.figure("orders", "cancels too late (409)", cancels(false));
    for (name, n) in outcomes {
        v.figure("outcomes", name, n);
    }
    for ((kind, outcome), n) in by_kind {
        v.figure("outcomes by kind", format!("{kind}: {outcome}"), n);
    }
    // Invented: an order no client asked for (or not under its key).
    let ours: HashSet<&str> = accepted
        .iter()
        .filter_map(|p| p.accepted.as_ref().map(|a| a.order_id.as_str()))
        .collect();
    let mut invented = 0;
    for id in o
        .shop
        .orders
        .keys()
        .filter(|id| !ours.contains(id.as_str()))
    {
        invented += 1;
        v.violate(format!(
            "order {id} in the shop's books but no client was answered with it"
        ));
    }
    v.figure("orders", "invented", invented);
    let closed = o.workflows.values().filter(|w| w.closed).count();
    v.figure("temporal", "order workflows closed", closed);
    v.figure(
        "temporal",
        "order workflows open",
        o.workflows.len() - closed,
    );
    // Failed workflow tasks the saga got past (retried and completed):
    // counted by cause, each cause's first message noted.
    let mut causes: BTreeMap<&str, (usize, &str, &str)> = BTreeMap::new();
    for (id, w) in o.workflows {
        for (cause, message) in &w.task_failures {
            causes.entry(cause).or_insert((0, id, message)).0 += 1;
        }
    }
    for (cause, (n, id, message)) in causes {
        v.figure("temporal", format!("workflow task failures {cause}"), n);
        v.notes.push(format!(
            "{n} workflow task failures {cause}, e.g. order {id}: {message}"
        ));
    }
    v.figure("shop", "open reconciler findings", o.shop.findings.len());
    v.figure("shop", "orders needing attention", o.shop.attention.len());
}

fn money(o: &Observed<'_>, v: &mut Verdict) {
    let (mut captures, mut refunds, mut doubles, mut missing, mut wrong) = (0, 0, 0, 0, 0);
    let mut cancelled_after_capture = 0;
    for a in o.placed.iter().filter_map(|p| p.accepted.as_ref()) {
        let c = o.books.get(&a.order_id).cloned().unwrap_or_default();
        captures += c.captures;
        refunds += c.refunds;
        let id = &a.order_id;
        let attention = o.shop.attention.contains_key(id);
        let shop = o.shop.orders.get(id);
        if c.captures >= 1 && shop.and_then(|s| s.failure_code.as_deref()) == Some("CANCELLED") {
            cancelled_after_capture += 1;
        }
        if c.captures > 1 {
            doubles += 1;
            v.violate(format!("order {id}: {} captures", c.captures));
        }
        if c.refunds > c.captures.min(1) {
            wrong += 1;
            v.violate(format!(
                "order {id}: {} refunds of {} captures",
                c.refunds, c.captures
            ));
        }
        match o.shop.orders.get(id).map(|s| s.status.as_str()) {
            Some("CONFIRMED") if c.captures != 1 || c.refunds != 0 => {
                wrong += 1;
                v.violate(format!(
                    "order {id}: CONFIRMED with {} captures, {} refunds",
                    c.captures, c.refunds
                ));
            }
            Some("FAILED") if c.captures >= 1 && c.refunds == 0 && !attention => {
                missing += 1;
                v.violate(format!("order {id}: FAILED after capture, not refunded"));
            }
            _ => {}
        }
    }
    v.figure("money", "captures", captures);
    v.figure("money", "refunds", refunds);
    v.figure("money", "cancelled after capture", cancelled_after_capture);
    v.figure("money", "double captures", doubles);
    v.figure("money", "missing refunds", missing);
    v.figure("money", "other money mismatches", wrong);
}

fn stock(o: &Observed<'_>, v: &mut Verdict) {
    let mut confirmed: BTreeMap<&str, i64> = BTreeMap::new();
    for s in o.shop.orders.values().filter(|s| s.status == "CONFIRMED") {
        for (sku, q) in &s.lines {
            *confirmed.entry(sku.as_str()).or_default() += q;
        }
    }
    let mut drifted = 0;
    for p in o.products {
        let sku = p.sku.as_str();
        let received = o.shop.received.get(sku).copied().unwrap_or(0);
        let sold = confirmed.get(sku).copied().unwrap_or(0);
        let on_hand = o.shop.on_hand.get(sku).copied().unwrap_or(0);
        let ledger = o.shop.ledger.get(sku).copied().unwrap_or(0);
        let drift = on_hand - (received - sold);
        if received != p.stock {
            v.violate(format!(
                "sku {sku}: received {received}, opening stock was {}",
                p.stock
            ));
        }
        if drift != 0 || ledger != on_hand || on_hand < 0 {
            drifted += 1;
            v.violate(format!(
                "sku {sku}: on hand {on_hand}, ledger {ledger}, received {received} - confirmed {sold}"
            ));
        }
    }
    v.figure("stock", "skus", o.products.len());
    v.figure("stock", "skus with drift", drifted);
    v.figure("stock", "units confirmed", confirmed.values().sum::<i64>());
}

fn notifications(o: &Observed<'_>, v: &mut Verdict) {
    let count = |id: &str, stage: &str| {
        o.mail
            .get(&(id.to_string(), stage.to_string()))
            .copied()
            .unwrap_or(0)
    };
    let (mut received, mut confirmed, mut failed, mut dups, mut ships) = (0, 0, 0, 0, 0);
    for a in o.placed.iter().filter_map(|p| p.accepted.as_ref()) {
        let id = a.order_id.as_str();
        let (r, c, f) = (
            count(id, "order-received"),
            count(id, "order-confirmed"),
            count(id, "order-failed"),
        );
        received += r;
        confirmed += c;
        failed += f;
        dups += r.saturating_sub(1) + c.saturating_sub(1) + f.saturating_sub(1);
        let status = o.shop.orders.get(id).map(|s| s.status.as_str());
        if r == 0 {
            v.violate(format!("order {id}: no order-received email"));
        }
        let shipped = o.shop.shipments.contains(id);
        ships += usize::from(shipped);
        match status {
            Some("CONFIRMED") => {
                if c == 0 || f > 0 {
                    v.violate(format!(
                        "order {id}: CONFIRMED with {c} confirmed, {f} failed emails"
                    ));
                }
                if !shipped {
                    v.violate(format!("order {id}: CONFIRMED without a shipment"));
                }
            }
            Some("FAILED") => {
                if f == 0 || c > 0 {
                    v.violate(format!(
                        "order {id}: FAILED with {c} confirmed, {f} failed emails"
                    ));
                }
                if shipped {
                    v.violate(format!("order {id}: FAILED with a shipment"));
                }
            }
            _ => {}
        }
    }
    v.figure("emails", "order-received", received);
    v.figure("emails", "order-confirmed", confirmed);
    v.figure("emails", "order-failed", failed);
    v.figure("emails", "duplicates", dups);
    v.figure("shipments", "shipments", ships);
    // The target: at most one duplicate per crash.
    let crashes: usize = o
        .injected
        .done
        .iter()
        .filter(|(k, _)| k.is_crash())
        .map(|(_, n)| n)
        .sum();
    if dups > crashes {
        v.violate(format!("{dups} duplicate emails for {crashes} crashes"));
    }
}

fn faults(o: &Observed<'_>, v: &mut Verdict) {
    for kind in FaultKind::ALL {
        let n = o.injected.done.get(&kind).copied().unwrap_or(0);
        v.figure("faults injected", kind.name(), n);
        if n < o.per_kind {
            v.violate(format!(
                "fault {}: {n} injected of {}",
                kind.name(),
                o.per_kind
            ));
        }
    }
    for (kind, e) in &o.injected.failed {
        let e: String = e.chars().take(240).collect();
        v.notes
            .push(format!("fault {} not injected: {e}", kind.name()));
    }
}
