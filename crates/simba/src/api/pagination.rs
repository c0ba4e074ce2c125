//! Django REST Framework's page-number pagination as the API answers it: absolute
//! `next`/`previous` links, and 404 for a page past the end (the page parameters are
//! `web::PageParams`, shared with the dashboard).

use axum::http::{HeaderMap, Uri, header};
use serde::Serialize;

use super::{PageParams, QueryParams};
use crate::error::ApiError;

/// A page as every list answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<T> Page<T> {
    /// Wraps one page of results; a page past the end (other than the first) is a 404.
    pub fn new(
        results: Vec<T>,
        count: i64,
        params: PageParams,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Page<T>, ApiError> {
        let Links { next, previous } = Links::new(count, params, uri, headers)?;
        Ok(Page {
            count,
            next,
            previous,
            results,
        })
    }
}

/// A page's `next` and `previous`.
pub struct Links {
    pub next: Option<String>,
    pub previous: Option<String>,
}

impl Links {
    /// The links of page `params.page` of `count` results; a page past the end (other than
    /// the first) is a 404.
    pub fn new(
        count: i64,
        params: PageParams,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Links, ApiError> {
        if params.page > 1 && params.offset() >= count {
            return Err(ApiError::NotFound);
        }
        let last_page = (count + params.page_size - 1) / params.page_size;
        let link = |page: i64| {
            let page = page.to_string();
            let set = (page != "1").then_some(("page", page.as_str()));
            url_with(uri, headers, &["page"], set)
        };
        Ok(Links {
            next: (params.page < last_page).then(|| link(params.page + 1)),
            previous: (params.page > 1).then(|| link(params.page - 1)),
        })
    }
}

/// The request's own absolute URL without the parameters `drop` and with `set` (which is
/// dropped too) at the end; the host was checked against `ALLOWED_HOSTS` already.
pub(super) fn url_with(
    uri: &Uri,
    headers: &HeaderMap,
    drop: &[&str],
    set: Option<(&str, &str)>,
) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    let query = QueryParams::parse(uri.query());
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    let dropped = |name: &str| drop.contains(&name) || set.is_some_and(|(set, _)| set == name);
    for (k, v) in query.pairs().iter().filter(|(k, _)| !dropped(k)) {
        serializer.append_pair(k, v);
    }
    if let Some((name, value)) = set {
        serializer.append_pair(name, value);
    }
    let query = serializer.finish();
    let separator = if query.is_empty() { "" } else { "?" };
    format!("{scheme}://{host}{}{separator}{query}", uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> PageParams {
        PageParams::from_query(&QueryParams::parse(Some(q))).unwrap()
    }

    #[test]
    fn links_keep_the_other_parameters() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "simba.test:8000".parse().unwrap());
        let uri: Uri = "/api/v1/shipments?ordering=id&page=2&page_size=10"
            .parse()
            .unwrap();
        let page = Page::new(vec![1], 35, params("page=2&page_size=10"), &uri, &headers).unwrap();
        assert_eq!(
            page.next.as_deref(),
            Some("http://simba.test:8000/api/v1/shipments?ordering=id&page_size=10&page=3")
        );
        assert_eq!(
            page.previous.as_deref(),
            Some("http://simba.test:8000/api/v1/shipments?ordering=id&page_size=10")
        );
    }

    #[test]
    fn past_the_end_is_not_found_but_an_empty_first_page_is_fine() {
        let headers = HeaderMap::new();
        let uri: Uri = "/x".parse().unwrap();
        assert!(Page::<i32>::new(vec![], 0, params(""), &uri, &headers).is_ok());
        assert!(Page::<i32>::new(vec![], 50, params("page=2"), &uri, &headers).is_err());
    }
}
