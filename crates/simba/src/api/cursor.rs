//! Cursor pagination, for any list: `?cursor=` (empty to start) answers
//! `{next, previous, results}` with no count, and an RFC 8288 `Link` header. A page is a keyset
//! seek ([`crate::store::keyset`]), so it costs what the first page costs at any depth.
//!
//! A cursor is opaque and cannot be forged: base64url of a row's position and a direction,
//! followed by an HMAC-SHA256 (under a key derived from `SECRET_KEY`) of that payload, the
//! seller, and the list it came from — its path, its filters and its ordering. So a tampered
//! cursor, another seller's, or one carried to another list or to other filters is a 400
//! that names `cursor`, and a cursor needs no server-side state.
//!
//! Wiring a list takes a store function that seeks (see `store::shops::walk`) and, in the
//! handler, [`Walk::from_query`] before the read and [`Walk::answer`] after it.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::pagination::url_with;
use super::{PageParams, QueryParams};
use crate::crypto::Cipher;
use crate::store::keyset::{Direction, Position, Seek};
use crate::web::BadParam;

/// A page of a cursor walk (documented beside the numbered page by `openapi::CursorsAndTags`).
#[derive(Debug, Serialize)]
pub struct CursorPage<R> {
    /// The next page's absolute URL, `null` at the end.
    pub next: Option<String>,
    /// The previous page's absolute URL, `null` at the start.
    pub previous: Option<String>,
    /// The rows: a list, or one serialised already.
    pub results: R,
}

const PARAM: &str = "cursor";
const PURPOSE: &str = "simba api cursor v1";
const FORMAT_V1: u8 = 1;
/// Format, direction, whether a key follows, the key and the id.
const PAYLOAD_LEN: usize = 3 + 8 + 8;
/// Half of HMAC-SHA256: far beyond guessing, and keeps a cursor at 47 characters.
const MAC_LEN: usize = 16;

/// The query parameters that choose the page rather than the list: left out of what a cursor
/// is bound to, so that `page_size` may change along a walk.
const PAGING: [&str; 3] = [PARAM, "page", "page_size"];

/// One request's page of a cursor walk: where it reads from, and what its cursors are bound to.
#[derive(Debug)]
pub struct Walk {
    seek: Seek,
    binding: Binding,
}

/// What a cursor is valid for: the seller and the list with its filters and ordering.
#[derive(Debug)]
struct Binding {
    user_id: String,
    list: String,
}

impl Binding {
    fn new(user_id: i64, uri: &Uri, query: &QueryParams) -> Binding {
        let mut filters: Vec<(&str, &str)> = Vec::new();
        for (name, value) in query.pairs() {
            if PAGING.contains(&name.as_str()) {
                continue;
            }
            // The last occurrence wins and an empty value is absent, as the filters read them.
            filters.retain(|(kept, _)| kept != name);
            if !value.is_empty() {
                filters.push((name, value));
            }
        }
        filters.sort_unstable();
        let filters = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(filters)
            .finish();
        Binding {
            user_id: user_id.to_string(),
            list: format!("{}?{filters}", uri.path()),
        }
    }

    fn mac(&self, cipher: &Cipher, payload: &[u8]) -> [u8; 32] {
        let payload = URL_SAFE_NO_PAD.encode(payload);
        cipher.mac(PURPOSE, &[&self.user_id, &self.list, &payload])
    }

    fn encode(&self, cipher: &Cipher, direction: Direction, at: Position) -> String {
        let mut bytes = Vec::with_capacity(PAYLOAD_LEN + MAC_LEN);
        bytes.push(FORMAT_V1);
        bytes.push(match direction {
            Direction::Forward => 0,
            Direction::Backward => 1,
        });
        bytes.push(u8::from(at.key.is_some()));
        bytes.extend_from_slice(&at.key.unwrap_or_default().to_be_bytes());
        bytes.extend_from_slice(&at.id.to_be_bytes());
        let mac = self.mac(cipher, &bytes);
        bytes.extend_from_slice(&mac[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position and direction a cursor names, if it was issued for this binding.
    fn decode(&self, cipher: &Cipher, cursor: &str) -> Option<(Direction, Position)> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if bytes.len() != PAYLOAD_LEN + MAC_LEN {
            return None;
        }
        let (payload, mac) = bytes.split_at(PAYLOAD_LEN);
        let expected = self.mac(cipher, payload);
        let differs = expected[..MAC_LEN]
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 || payload[0] != FORMAT_V1 {
            return None;
        }
        let direction = match payload[1] {
            0 => Direction::Forward,
            1 => Direction::Backward,
            _ => return None,
        };
        let int = |at: usize| {
            let bytes: [u8; 8] = payload.get(at..at + 8)?.try_into().ok()?;
            Some(i64::from_be_bytes(bytes))
        };
        let key = match payload[2] {
            0 => None,
            1 => Some(int(3)?),
            _ => return None,
        };
        Some((direction, Position { key, id: int(11)? }))
    }
}

impl Walk {
    /// The walk a request asks for, or `None` when it pages by number (no `cursor` parameter).
    /// A cursor this seller was not given for this list, or `page` beside `cursor`, is a
    /// [`BadParam`] naming `cursor`.
    pub fn from_query(
        query: &QueryParams,
        uri: &Uri,
        user_id: i64,
        cipher: &Cipher,
    ) -> Result<Option<Walk>, BadParam> {
        let Some(cursor) = query
            .pairs()
            .iter()
            .rev()
            .find(|(name, _)| name == PARAM)
            .map(|(_, value)| value.as_str())
        else {
            return Ok(None);
        };
        if query.get("page").is_some() {
            return Err(BadParam::new(PARAM, "cannot be combined with page"));
        }
        let limit = PageParams::from_query(query)?.limit();
        let binding = Binding::new(user_id, uri, query);
        let (direction, from) = match cursor {
            "" => (Direction::Forward, None),
            cursor => {
                let (direction, at) = binding.decode(cipher, cursor).ok_or_else(|| {
                    BadParam::new(
                        PARAM,
                        "is not a cursor of this list: use the next or previous link as given",
                    )
                })?;
                (direction, Some(at))
            }
        };
        Ok(Some(Walk {
            seek: Seek {
                from,
                direction,
                limit,
            },
            binding,
        }))
    }

    /// The seek the store reads this page with.
    pub fn seek(&self) -> &Seek {
        &self.seek
    }

    /// The answer for the page read: its rows, the positions of its first and last rows (see
    /// [`ends`]), and whether the store found more beyond it in the seek's direction.
    pub fn answer<R: Serialize>(
        &self,
        results: R,
        ends: Option<(Position, Position)>,
        more: bool,
        context: (&Cipher, &Uri, &HeaderMap),
    ) -> CursorAnswer<R> {
        let (cipher, uri, headers) = context;
        let forward = self.seek.direction == Direction::Forward;
        let started = self.seek.from.is_some();
        // Past the page's last row lies more when the store said so reading forward, and the
        // row the backward read started from otherwise; the same, mirrored, before its first.
        let (has_next, has_previous) = match forward {
            true => (more, started),
            false => (started, more),
        };
        let link = |direction, at| {
            let cursor = self.binding.encode(cipher, direction, at);
            url_with(uri, headers, &["page"], Some((PARAM, &cursor)))
        };
        let (next, previous) = match ends {
            Some((first, last)) => (
                has_next.then(|| link(Direction::Forward, last)),
                has_previous.then(|| link(Direction::Backward, first)),
            ),
            None => (None, None),
        };
        CursorAnswer(CursorPage {
            next,
            previous,
            results,
        })
    }
}

/// The positions of the first and last of a page's rows.
pub fn ends<T>(rows: &[T], position: impl Fn(&T) -> Position) -> Option<(Position, Position)> {
    Some((position(rows.first()?), position(rows.last()?)))
}

/// A cursor page as answered: the JSON and the same links in a `Link` header.
#[derive(Debug)]
pub struct CursorAnswer<R>(pub CursorPage<R>);

impl<R: Serialize> IntoResponse for CursorAnswer<R> {
    fn into_response(self) -> Response {
        let page = self.0;
        let links: Vec<String> = [(&page.next, "next"), (&page.previous, "prev")]
            .into_iter()
            .filter_map(|(url, rel)| url.as_ref().map(|url| format!("<{url}>; rel=\"{rel}\"")))
            .collect();
        let mut response = Json(page).into_response();
        if !links.is_empty()
            && let Ok(value) = HeaderValue::from_str(&links.join(", "))
        {
            response.headers_mut().insert(header::LINK, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn cipher() -> Cipher {
        Cipher::new(&SecretString::from("test secret key"))
    }

    fn walk(user_id: i64, target: &str) -> Result<Option<Walk>, BadParam> {
        let uri: Uri = target.parse().unwrap();
        let query = QueryParams::parse(uri.query());
        Walk::from_query(&query, &uri, user_id, &cipher())
    }

    fn cursor_at(user_id: i64, target: &str, at: Position) -> String {
        let walk = walk(user_id, target).unwrap().unwrap();
        walk.binding.encode(&cipher(), Direction::Forward, at)
    }

    const AT: Position = Position {
        key: Some(1_700_000_000),
        id: 42,
    };

    #[test]
    fn a_cursor_reads_back_where_it_was_issued_whatever_the_order_of_the_filters() {
        let cursor = cursor_at(1, "/s?ordering=id&fulfilment_method=FBR&cursor=", AT);
        assert_eq!(cursor.len(), 47);
        let target = format!("/s?fulfilment_method=FBR&cursor={cursor}&ordering=id&page_size=9");
        let seek = *walk(1, &target).unwrap().unwrap().seek();
        assert_eq!(seek.from, Some(AT));
        assert_eq!(seek.direction, Direction::Forward);
        assert_eq!(seek.limit, 9);
    }

    #[test]
    fn a_cursor_is_refused_for_another_seller_list_filter_or_ordering_and_when_tampered() {
        let cursor = cursor_at(1, "/s?ordering=id&cursor=", AT);
        let flipped = match &cursor[20..21] {
            "B" => "C",
            _ => "B",
        };
        let tampered = format!("{}{flipped}{}", &cursor[..20], &cursor[21..]);
        for (user_id, target) in [
            (2, format!("/s?ordering=id&cursor={cursor}")),
            (1, format!("/t?ordering=id&cursor={cursor}")),
            (1, format!("/s?ordering=-id&cursor={cursor}")),
            (1, format!("/s?ordering=id&q=x&cursor={cursor}")),
            (1, format!("/s?ordering=id&cursor={cursor}x")),
            (1, format!("/s?ordering=id&cursor={tampered}")),
            (1, "/s?ordering=id&cursor=%00".to_owned()),
        ] {
            let error = walk(user_id, &target).unwrap_err();
            assert!(error.detail().contains("cursor"), "{target}: {error:?}");
        }
        assert!(walk(1, &format!("/s?ordering=id&cursor={cursor}")).is_ok());
    }

    #[test]
    fn page_beside_cursor_is_refused_and_no_cursor_pages_by_number() {
        assert!(walk(1, "/s?cursor=&page=2").is_err());
        assert!(walk(1, "/s?page=2").unwrap().is_none());
        assert!(walk(1, "/s?cursor=&page_size=501").is_err());
    }
}
