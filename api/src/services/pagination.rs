//! Cursor pagination: newest first, by id (ids are UUIDv7, so id order is
//! creation order). Cursors are opaque to clients.

use base64::Engine;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;

/// A checked `first`/`after` pair.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub first: u64,
    /// Items strictly older than this id.
    pub after: Option<Uuid>,
}

/// One page of results.
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
    pub total_count: u64,
}

pub fn page_request(first: Option<i32>, after: Option<String>) -> ApiResult<PageRequest> {
    let first = match first {
        None => DEFAULT_PAGE_SIZE,
        Some(n) if n < 0 => {
            return Err(ApiError::bad_input(format!(
                "first must be zero or more, got {n}"
            )));
        }
        Some(n) => (n as u64).min(MAX_PAGE_SIZE),
    };
    let after = after.map(|cursor| decode_cursor(&cursor)).transpose()?;
    Ok(PageRequest { first, after })
}

pub fn encode_cursor(id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("c1:{id}"))
}

fn decode_cursor(cursor: &str) -> ApiResult<Uuid> {
    let bad = || {
        ApiError::bad_input(
            "after is not a valid cursor: pass an endCursor or edge cursor returned by this list",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let id = text.strip_prefix("c1:").ok_or_else(bad)?;
    Uuid::parse_str(id).map_err(|_| bad())
}

/// Cuts a fetched `first + 1` rows down to a page.
pub fn into_page<T>(mut items: Vec<T>, request: PageRequest, total_count: u64) -> Page<T> {
    let has_next_page = items.len() as u64 > request.first;
    items.truncate(request.first as usize);
    Page {
        items,
        has_next_page,
        total_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id);
        assert!(decode_cursor("garbage").is_err());
        assert!(page_request(Some(-1), None).is_err());
        assert_eq!(
            page_request(Some(10_000), None).unwrap().first,
            MAX_PAGE_SIZE
        );
        assert_eq!(page_request(None, None).unwrap().first, DEFAULT_PAGE_SIZE);
    }
}
