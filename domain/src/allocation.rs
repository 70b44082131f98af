//! Where an order's stock comes from when the shop keeps stock in several
//! warehouses: the allocation policy `ProcessInventory` applies inside its
//! transaction ([`allocate`]).
//!
//! The policy: **fewest shipments, then a fixed warehouse order**. Each
//! warehouse an order takes stock from becomes one shipment, so among the
//! sets of warehouses that together hold every line, the smallest is
//! chosen; among sets of that size, the first in the fixed order (the
//! order warehouses were opened in, `main` first; sets compared warehouse
//! by warehouse). Within the chosen set each product is taken from its
//! warehouses in the fixed order, as much as each holds, so a line is
//! split only when no warehouse of the set holds all of it.
//!
//! Finding the smallest set is a set cover: it is searched exactly while
//! at most [`EXACT_SEARCH_MAX_WAREHOUSES`] warehouses hold any of the
//! order's products, and past that greedily (each time the warehouse that
//! covers the most missing units, the first in the fixed order on a tie),
//! which keeps a shop with many warehouses from an exponential search.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ShipmentLine, Sku, WarehouseId};

/// The warehouse of stock recorded before there were several, and of
/// receipts that name none.
pub const DEFAULT_WAREHOUSE: &str = "main";

/// Most warehouses (holding some of an order's products) searched exactly
/// for the fewest shipments; past it the search is greedy.
pub const EXACT_SEARCH_MAX_WAREHOUSES: usize = 12;

/// One warehouse's stock of the products an order wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseStock {
    /// The warehouse.
    pub warehouse_id: WarehouseId,
    /// Units on hand per product (absent: none).
    pub on_hand: BTreeMap<Sku, i64>,
}

impl WarehouseStock {
    fn held(&self, sku: &Sku) -> i64 {
        self.on_hand.get(sku).copied().unwrap_or(0).max(0)
    }
}

/// What an order takes from one warehouse: the lines of one shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseAllocation {
    /// The warehouse the units come from.
    pub warehouse_id: WarehouseId,
    /// Units per product, by sku.
    pub lines: Vec<ShipmentLine>,
}

/// Allocates `wanted` (units per sku) from `warehouses`, given in the
/// fixed warehouse order, by the [module's policy](self). `None` when the
/// warehouses together hold too little of some product. The result lists
/// the warehouses used in the fixed order, each with at least one line.
pub fn allocate(
    wanted: &BTreeMap<Sku, i64>,
    warehouses: &[WarehouseStock],
) -> Option<Vec<WarehouseAllocation>> {
    let wanted: BTreeMap<&Sku, i64> = wanted
        .iter()
        .filter(|(_, q)| **q > 0)
        .map(|(s, q)| (s, *q))
        .collect();
    // Only warehouses holding some of the order can be part of a cover.
    let holding: Vec<&WarehouseStock> = warehouses
        .iter()
        .filter(|w| wanted.keys().any(|s| w.held(s) > 0))
        .collect();
    let covers = |set: &[usize]| {
        wanted
            .iter()
            .all(|(sku, q)| set.iter().map(|&i| holding[i].held(sku)).sum::<i64>() >= *q)
    };
    let all: Vec<usize> = (0..holding.len()).collect();
    if !covers(&all) {
        return None;
    }
    let chosen = if holding.len() <= EXACT_SEARCH_MAX_WAREHOUSES {
        (1..=holding.len())
            .find_map(|k| Combinations::new(holding.len(), k).find(|set| covers(set)))
            .unwrap_or(all)
    } else {
        greedy_cover(&wanted, &holding)
    };
    let mut remaining = wanted;
    let mut allocations = Vec::new();
    for &i in &chosen {
        let warehouse = holding[i];
        let mut lines = Vec::new();
        for (sku, left) in remaining.iter_mut() {
            let take = (*left).min(warehouse.held(sku));
            if take > 0 {
                *left -= take;
                lines.push(ShipmentLine {
                    sku: (*sku).clone(),
                    quantity: take,
                });
            }
        }
        if !lines.is_empty() {
            allocations.push(WarehouseAllocation {
                warehouse_id: warehouse.warehouse_id.clone(),
                lines,
            });
        }
    }
    Some(allocations)
}

/// Warehouses (indices into `holding`, in the fixed order) picked one at a
/// time for the most missing units; the caller checked they cover.
fn greedy_cover(wanted: &BTreeMap<&Sku, i64>, holding: &[&WarehouseStock]) -> Vec<usize> {
    let mut missing = wanted.clone();
    let mut chosen = Vec::new();
    while missing.values().any(|q| *q > 0) {
        let gain = |i: usize| -> i64 {
            missing
                .iter()
                .map(|(sku, q)| (*q).min(holding[i].held(sku)))
                .sum()
        };
        let best = (0..holding.len())
            .filter(|i| !chosen.contains(i))
            // max_by_key keeps the last maximum: reversed, the first.
            .rev()
            .max_by_key(|&i| gain(i));
        let Some(best) = best.filter(|&i| gain(i) > 0) else {
            break;
        };
        for (sku, q) in missing.iter_mut() {
            *q -= (*q).min(holding[best].held(sku));
        }
        chosen.push(best);
    }
    chosen.sort_unstable();
    chosen
}

/// The `k`-element subsets of `0..n` in lexicographic order.
struct Combinations {
    n: usize,
    next: Option<Vec<usize>>,
}

impl Combinations {
    fn new(n: usize, k: usize) -> Self {
        Self {
            n,
            next: (k <= n).then(|| (0..k).collect()),
        }
    }
}

impl Iterator for Combinations {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let current = self.next.take()?;
        let k = current.len();
        let mut following = current.clone();
        // The rightmost position that can still move right.
        if let Some(pos) = (0..k).rev().find(|&p| following[p] < self.n - k + p) {
            following[pos] += 1;
            for p in pos + 1..k {
                following[p] = following[p - 1] + 1;
            }
            self.next = Some(following);
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    fn warehouse(id: &str, stock: &[(&str, i64)]) -> WarehouseStock {
        WarehouseStock {
            warehouse_id: WarehouseId::parse(id).unwrap(),
            on_hand: stock.iter().map(|(s, q)| (sku(s), *q)).collect(),
        }
    }

    fn wanted(lines: &[(&str, i64)]) -> BTreeMap<Sku, i64> {
        lines.iter().map(|(s, q)| (sku(s), *q)).collect()
    }

    /// One shipment as (warehouse, [(sku, units)]), for short assertions.
    type Shipment = (String, Vec<(String, i64)>);

    fn plan(a: Option<Vec<WarehouseAllocation>>) -> Option<Vec<Shipment>> {
        a.map(|a| {
            a.into_iter()
                .map(|w| {
                    let lines = w
                        .lines
                        .into_iter()
                        .map(|l| (l.sku.to_string(), l.quantity))
                        .collect();
                    (w.warehouse_id.to_string(), lines)
                })
                .collect()
        })
    }

    fn p(w: &str, lines: &[(&str, i64)]) -> Shipment {
        let lines = lines.iter().map(|(s, q)| (s.to_string(), *q)).collect();
        (w.to_string(), lines)
    }

    #[test]
    fn one_warehouse_that_holds_everything_wins_over_an_earlier_split() {
        let whs = [
            warehouse("main", &[("MUG", 5)]),
            warehouse("east", &[("MUG", 1), ("TEE", 9)]),
            warehouse("west", &[("MUG", 5), ("TEE", 2)]),
        ];
        let got = allocate(&wanted(&[("MUG", 2), ("TEE", 2)]), &whs);
        assert_eq!(plan(got), Some(vec![p("west", &[("MUG", 2), ("TEE", 2)])]));
    }

    #[test]
    fn among_equal_sets_the_fixed_order_decides() {
        let whs = [
            warehouse("main", &[("MUG", 5)]),
            warehouse("east", &[("MUG", 5)]),
        ];
        let got = allocate(&wanted(&[("MUG", 3)]), &whs);
        assert_eq!(plan(got), Some(vec![p("main", &[("MUG", 3)])]));
    }

    #[test]
    fn a_line_is_split_only_when_no_warehouse_holds_it_all() {
        let whs = [
            warehouse("main", &[("MUG", 2)]),
            warehouse("east", &[("MUG", 1)]),
            warehouse("west", &[("MUG", 2)]),
        ];
        let got = allocate(&wanted(&[("MUG", 4)]), &whs);
        assert_eq!(
            plan(got),
            Some(vec![p("main", &[("MUG", 2)]), p("west", &[("MUG", 2)])]),
            "main and east hold 3: the first pair that covers 4 is main and west"
        );
    }

    #[test]
    fn too_little_in_all_warehouses_together_allocates_nothing() {
        let whs = [
            warehouse("main", &[("MUG", 2), ("TEE", 5)]),
            warehouse("east", &[("MUG", 1)]),
        ];
        assert_eq!(allocate(&wanted(&[("MUG", 4), ("TEE", 1)]), &whs), None);
        assert_eq!(allocate(&wanted(&[("HAT", 1)]), &whs), None);
    }

    #[test]
    fn many_warehouses_are_covered_greedily_and_completely() {
        // 14 warehouses holding one unit each, and one holding five: the
        // greedy pick takes the big one first.
        let mut whs: Vec<WarehouseStock> = (0..14)
            .map(|i| warehouse(&format!("w{i:02}"), &[("MUG", 1)]))
            .collect();
        whs.push(warehouse("big", &[("MUG", 5)]));
        let got = allocate(&wanted(&[("MUG", 7)]), &whs).unwrap();
        let total: i64 = got.iter().flat_map(|a| &a.lines).map(|l| l.quantity).sum();
        assert_eq!(total, 7);
        assert_eq!(got.len(), 3, "big, then two single units: {got:?}");
        assert_eq!(
            got[2].warehouse_id.as_str(),
            "big",
            "listed in the fixed order"
        );
    }

    #[test]
    fn combinations_are_lexicographic() {
        let all: Vec<Vec<usize>> = Combinations::new(4, 2).collect();
        assert_eq!(
            all,
            vec![
                vec![0, 1],
                vec![0, 2],
                vec![0, 3],
                vec![1, 2],
                vec![1, 3],
                vec![2, 3]
            ]
        );
        assert_eq!(Combinations::new(2, 3).count(), 0);
    }
}
