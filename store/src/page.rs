//! Newest-first lists, one page at a time: the page size, the numbered
//! placeholders of a query built clause by clause, and the cursor a page
//! hands back to continue after its last row.

use std::fmt::Display;
use std::str::FromStr;

use ordersaga_domain::OrderId;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// Where a newest-first list continues: after the row created at
/// `created_at_ms` with `key` (ties on the time broken by the key). Opaque
/// outside the store: it travels as a page token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor<K> {
    created_at_ms: i64,
    key: K,
}

/// Position in a list keyed by order.
pub type OrderCursor = PageCursor<OrderId>;

/// Position in the list of shipments (keyed by `{order_id}/{warehouse}`).
pub type ShipmentCursor = PageCursor<String>;

/// Position in the list of low-stock alerts (keyed by alert id).
pub type AlertCursor = PageCursor<String>;

impl<K: Display + FromStr> PageCursor<K> {
    /// The cursor after a row created at `created_at_ms` with `key`.
    pub(crate) fn after(created_at_ms: i64, key: K) -> Self {
        Self { created_at_ms, key }
    }

    /// Binds the cursor to the placeholders of [`Placeholders::older_than`].
    pub(crate) fn bind<'q>(
        &self,
        query: Query<'q, sqlx::Any, AnyArguments<'q>>,
    ) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
        query.bind(self.created_at_ms).bind(self.key.to_string())
    }

    /// The opaque page token form.
    pub fn to_token(&self) -> String {
        format!("{}.{}", self.created_at_ms, self.key)
    }

    /// Parses a page token made by [`Self::to_token`].
    pub fn from_token(token: &str) -> Option<Self> {
        let (ms, key) = token.split_once('.')?;
        Some(Self {
            created_at_ms: ms.parse().ok()?,
            key: key.parse().ok()?,
        })
    }
}

/// Numbered placeholders (`$1`, `$2`, ...) handed out in order while a
/// statement is built clause by clause.
#[derive(Debug, Default)]
pub(crate) struct Placeholders(usize);

impl Placeholders {
    /// The next placeholder.
    pub(crate) fn next(&mut self) -> String {
        self.0 += 1;
        format!("${}", self.0)
    }

    /// `n` placeholders for an `IN (..)` list: `$3, $4`.
    pub(crate) fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.next()).collect::<Vec<_>>().join(", ")
    }

    /// `rows` parenthesised rows of `width` placeholders each, for a
    /// multi-row `VALUES`: `($1, $2), ($3, $4)`.
    pub(crate) fn rows(&mut self, rows: usize, width: usize) -> String {
        (0..rows)
            .map(|_| format!("({})", self.list(width)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The keyset condition of a newest-first list: rows older than the
    /// last one shown, ties on `created_at` broken by `key` (binds the
    /// time, then the key).
    pub(crate) fn older_than(&mut self, key: &str) -> String {
        let (at, id) = (self.next(), self.next());
        format!("(created_at < {at} OR (created_at = {at} AND {key} < {id}))")
    }
}

/// One page of a list: `limit` clamped to 1..=100 rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page(u32);

impl Page {
    pub(crate) fn new(limit: u32) -> Self {
        Self(limit.clamp(1, 100))
    }

    /// The `LIMIT` to fetch: one row more than the page, which tells
    /// whether another page follows.
    pub(crate) fn fetch_limit(self) -> i64 {
        i64::from(self.0) + 1
    }

    /// The page out of the fetched rows, and whether more follow.
    pub(crate) fn cut<T>(self, mut rows: Vec<T>) -> (Vec<T>, bool) {
        let size = usize::try_from(self.0).unwrap_or(usize::MAX);
        let more = rows.len() > size;
        rows.truncate(size);
        (rows, more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let alert = AlertCursor::after(1_700, "order:x/MUG.2".to_string());
        assert_eq!(alert.to_token(), "1700.order:x/MUG.2");
        assert_eq!(AlertCursor::from_token(&alert.to_token()), Some(alert));
        assert_eq!(OrderCursor::from_token("1700.not-a-uuid"), None);
        assert_eq!(AlertCursor::from_token("soon.x"), None);
        assert_eq!(AlertCursor::from_token("1700"), None);
    }

    #[test]
    fn placeholders_number_clauses_in_order() {
        let mut p = Placeholders::default();
        assert_eq!(p.next(), "$1");
        assert_eq!(
            p.older_than("order_id"),
            "(created_at < $2 OR (created_at = $2 AND order_id < $3))"
        );
        assert_eq!(p.list(2), "$4, $5");
        assert_eq!(p.rows(2, 2), "($6, $7), ($8, $9)");
    }

    #[test]
    fn a_page_fetches_one_row_more_to_know_whether_more_follow() {
        let page = Page::new(2);
        assert_eq!(page.fetch_limit(), 3);
        assert_eq!(page.cut(vec![1, 2, 3]), (vec![1, 2], true));
        assert_eq!(page.cut(vec![1, 2]), (vec![1, 2], false));
        assert_eq!(Page::new(0).fetch_limit(), 2, "at least one row");
        assert_eq!(Page::new(500).fetch_limit(), 101, "at most 100 rows");
    }
}
