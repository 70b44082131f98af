//! The page of a list call, checked once for every list: its size (0: the
//! default 20; at most 100) and the token of the page before (empty: the
//! first page).

use std::fmt::Display;
use std::str::FromStr;

use ordersaga_store::PageCursor;

use crate::error::{ApiError, invalid};

/// The default page size.
const DEFAULT_SIZE: u32 = 20;

/// The page size to ask the store for and where to continue, or
/// `InvalidArgument` for a size over 100 or a token no page handed out.
pub(crate) fn page_request<K: Display + FromStr>(
    page_size: u32,
    page_token: Option<&str>,
) -> Result<(u32, Option<PageCursor<K>>), ApiError> {
    if page_size > 100 {
        return Err(invalid("page_size must be 0 to 100"));
    }
    let after = page_token
        .filter(|t| !t.is_empty())
        .map(|t| PageCursor::from_token(t).ok_or_else(|| invalid("page_token is not valid")))
        .transpose()?;
    let size = if page_size == 0 {
        DEFAULT_SIZE
    } else {
        page_size
    };
    Ok((size, after))
}
