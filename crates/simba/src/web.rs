//! What the two HTTP edges, the JSON API and the dashboard, share in reading a request and in
//! writing a timestamp: query parameters, page parameters and the shipment filter as a query
//! spells it. A malformed parameter is a [`BadParam`], which the API answers as a 400 problem
//! and the dashboard as a sentence on the page: neither edge needs the other's error type.

use crate::domain::{FulfilmentMethod, Timestamp, ValidationErrors};
use crate::store::shipments::Filter;

/// A query parameter that cannot be read, with the parameter named.
#[derive(Debug)]
pub struct BadParam(pub ValidationErrors);

impl BadParam {
    pub fn new(param: &str, message: impl Into<String>) -> BadParam {
        BadParam(ValidationErrors::single(param, message))
    }

    /// The sentence that names the parameter and what is wrong with it.
    pub fn detail(&self) -> String {
        self.0.summary()
    }
}

/// A timestamp as API.md writes it: RFC 3339 in UTC, whole seconds.
pub fn rfc3339(at: Timestamp) -> String {
    at.rfc3339()
}

/// Query parameters by name; the last occurrence of a repeated name wins.
#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> QueryParams {
        QueryParams(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// A parameter's value; an empty value counts as absent, as in DRF's filters.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Parses a parameter; a malformed one is a [`BadParam`] that names it.
    pub fn parse_with<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, BadParam> {
        self.get(name)
            .map(|v| parse(v).map_err(|message| BadParam::new(name, message)))
            .transpose()
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> QueryParams {
        QueryParams(pairs)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 500;

/// Django REST Framework's page numbers: `page` from 1, `page_size` up to [`MAX_PAGE_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageParams {
    pub page: i64,
    pub page_size: i64,
}

impl Default for PageParams {
    fn default() -> Self {
        PageParams {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl PageParams {
    pub fn from_query(query: &QueryParams) -> Result<PageParams, BadParam> {
        let page = query
            .parse_with("page", |v| match v.parse::<i64>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err("must be a positive integer".into()),
            })?
            .unwrap_or(1);
        let page_size = query
            .parse_with("page_size", |v| match v.parse::<i64>() {
                Ok(n @ 1..=MAX_PAGE_SIZE) => Ok(n),
                _ => Err(format!("must be an integer between 1 and {MAX_PAGE_SIZE}")),
            })?
            .unwrap_or(DEFAULT_PAGE_SIZE);
        Ok(PageParams { page, page_size })
    }

    pub fn limit(self) -> i64 {
        self.page_size
    }

    /// Rows to skip; saturates so that an absurd page number is simply past the end.
    pub fn offset(self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }
}

/// The shipment filter of a query (`shop`, `fulfilment_method`, `order_id`, `ean`,
/// `shipped_after`, `shipped_before`, `q`); `shop_id` from the path wins over `shop`.
pub fn shipment_filter(query: &QueryParams, shop_id: Option<i64>) -> Result<Filter, BadParam> {
    let shop_id = match shop_id {
        Some(id) => Some(id),
        None => query.parse_with("shop", |v| {
            v.parse::<i64>()
                .map_err(|_| "must be an integer".to_owned())
        })?,
    };
    Ok(Filter {
        shop_id,
        fulfilment_method: query.parse_with("fulfilment_method", FulfilmentMethod::parse)?,
        order_id: query.parse_with("order_id", text(64))?,
        ean: query.parse_with("ean", text(32))?,
        shipped_after: query.parse_with("shipped_after", timestamp)?,
        shipped_before: query.parse_with("shipped_before", timestamp)?,
        q: query.parse_with("q", text(255))?,
    })
}

/// Parses an RFC 3339 timestamp query parameter, to the second as shipment dates are stored.
fn timestamp(value: &str) -> Result<Timestamp, String> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| Timestamp::from_unix_seconds(t.unix_timestamp()))
        .map_err(|_| "must be an RFC 3339 date-time, such as 2026-11-27T10:15:00Z".into())
}

fn text(max: usize) -> impl Fn(&str) -> Result<String, String> {
    move |v: &str| {
        if v.len() > max {
            Err(format!("must be at most {max} characters"))
        } else {
            Ok(v.trim().to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_seconds() {
        assert_eq!(
            rfc3339(Timestamp::from_unix_seconds(0)),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_unix_seconds(1_795_774_500)),
            "2026-11-27T10:15:00Z"
        );
    }

    #[test]
    fn query_parameters_decode_and_the_last_wins() {
        let q = QueryParams::parse(Some("a=1&b=x%20y&a=2&c="));
        assert_eq!(q.get("a"), Some("2"));
        assert_eq!(q.get("b"), Some("x y"));
        assert_eq!(q.get("c"), None);
        assert_eq!(q.get("d"), None);
    }

    fn params(q: &str) -> Result<PageParams, BadParam> {
        PageParams::from_query(&QueryParams::parse(Some(q)))
    }

    #[test]
    fn page_parameters_default_and_stay_in_bounds() {
        assert_eq!(params("").unwrap(), PageParams::default());
        assert_eq!(params("page=3&page_size=500").unwrap().offset(), 1000);
        for bad in [
            "page=0",
            "page=-1",
            "page=x",
            "page_size=0",
            "page_size=501",
        ] {
            assert!(params(bad).is_err(), "{bad} accepted");
        }
    }
}
