//! Tolerant parsing of the partner API's bodies. The brief documents no JSON shapes, so accept
//! every shape a reasonable API might use, ignore what we do not know, and refuse with a specific
//! error (never a panic) when a body fits none of them.

use serde_json::{Map, Value};

use crate::domain::{OrganizationView, RecordView};

/// Why a body could not be read as records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is neither an array nor an object with an array under data, items, clients or properties")]
    NoList,
    #[error("record {index} has no id or no name")]
    BadRecord { index: usize },
    #[error("the organization has no id or no name")]
    BadOrganization,
    /// The page says there is more in a way this client does not follow (`has_more`, a
    /// `links.next`, a numeric cursor…): taking the page as the whole list would truncate it.
    #[error("the list is paged by `{key}`, which this client does not follow")]
    UnknownPagination { key: String },
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<RecordView>,
    pub next_cursor: Option<String>,
    /// The whole list's length, if the page says (`total`, `total_count` or `count`).
    pub total: Option<u64>,
}

/// Fields that give the whole list's length.
const COUNT_KEYS: [&str; 3] = ["total", "total_count", "count"];

/// Whether a field the parser does not follow says "there is more" in some other pagination
/// scheme. `false`, `null`, `0` and empty values say nothing.
fn unknown_pagination(key: &str, value: &Value) -> bool {
    let key = key.to_ascii_lowercase();
    let paging_name = ["next", "cursor", "page", "more", "offset", "continuation"]
        .iter()
        .any(|word| key.contains(word))
        || key == "links"
        || key == "pagination";
    let says_something = match value {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_u64() != Some(0),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => o
            .values()
            .any(|v| !matches!(v, Value::Null | Value::Bool(false))),
        Value::Bool(true) => true,
    };
    paging_name && says_something
}

const LIST_KEYS: [&str; 4] = ["data", "items", "clients", "properties"];

/// Parses a list page: a top-level array, or an array under one of [`LIST_KEYS`], with an
/// optional `next_cursor`.
pub fn parse_page(body: &Value) -> Result<Page, ParseError> {
    let (items, next_cursor) = match body {
        Value::Array(items) => (items, None),
        Value::Object(object) => {
            let (list_key, items) = LIST_KEYS
                .iter()
                .find_map(|key| {
                    object
                        .get(*key)
                        .and_then(Value::as_array)
                        .map(|a| (*key, a))
                })
                .ok_or(ParseError::NoList)?;
            let next = match object.get("next_cursor") {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) if c.is_empty() => None,
                Some(Value::String(c)) => Some(c.clone()),
                Some(_) => {
                    return Err(ParseError::UnknownPagination {
                        key: "next_cursor".to_owned(),
                    })
                }
            };
            // A non-empty page with a "more" signal we do not follow must not pass for the
            // whole list (an empty one cannot be truncated).
            if !items.is_empty() {
                if let Some((key, _)) = object.iter().find(|(key, value)| {
                    key.as_str() != list_key
                        && key.as_str() != "next_cursor"
                        && !COUNT_KEYS.contains(&key.as_str())
                        && unknown_pagination(key, value)
                }) {
                    return Err(ParseError::UnknownPagination { key: key.clone() });
                }
            }
            (items, next)
        }
        _ => return Err(ParseError::NoList),
    };
    let total = match body {
        Value::Object(object) => COUNT_KEYS
            .iter()
            .find_map(|key| object.get(*key).and_then(Value::as_u64)),
        _ => None,
    };
    let records = items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_record(item).ok_or(ParseError::BadRecord { index }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        records,
        next_cursor,
        total,
    })
}

fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn id_and_name(object: &Map<String, Value>) -> Option<(String, String)> {
    let id = text(object, "id")?;
    let name = text(object, "name").or_else(|| text(object, "display_name"))?;
    Some((id, name))
}

/// A record with `id` and `name` (or `display_name`); a few well-known fields are kept for
/// display, everything else is ignored.
fn parse_record(value: &Value) -> Option<RecordView> {
    let object = value.as_object()?;
    let (id, name) = id_and_name(object)?;
    let address = object.get("address").and_then(Value::as_object);
    let location = address
        .map(|a| {
            [text(a, "city"), text(a, "country")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|l| !l.is_empty())
        .or_else(|| text(object, "city"));
    let detail = text(object, "email")
        .or_else(|| text(object, "kind"))
        .or_else(|| text(object, "type"));
    Some(RecordView {
        id,
        name,
        detail,
        status: text(object, "status"),
        location,
    })
}

/// Parses `me`: the organization object itself, or under `data` or `organization`.
pub fn parse_organization(body: &Value) -> Result<OrganizationView, ParseError> {
    let object = body
        .get("data")
        .or_else(|| body.get("organization"))
        .unwrap_or(body)
        .as_object()
        .ok_or(ParseError::BadOrganization)?;
    let (id, name) = id_and_name(object).ok_or(ParseError::BadOrganization)?;
    Ok(OrganizationView {
        id,
        name,
        plan: text(object, "plan"),
        country: text(object, "country"),
        timezone: text(object, "timezone"),
        billing_email: text(object, "billing_email").or_else(|| text(object, "email")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_list_shape_parses() {
        let record = json!({"id": "c1", "name": "Ana", "email": "a@x", "extra": {"deep": 1}});
        for body in [
            json!([record]),
            json!({"data": [record], "next_cursor": "abc"}),
            json!({"items": [record]}),
            json!({"clients": [record]}),
            json!({"properties": [record], "next_cursor": null}),
        ] {
            let page = parse_page(&body).unwrap();
            assert_eq!(page.records[0].id, "c1");
            assert_eq!(page.records[0].detail.as_deref(), Some("a@x"));
        }
        assert_eq!(
            parse_page(&json!({"data": [record], "next_cursor": "abc"}))
                .unwrap()
                .next_cursor
                .as_deref(),
            Some("abc")
        );
    }

    #[test]
    fn a_page_in_a_pagination_scheme_we_do_not_follow_is_refused() {
        let record = json!({"id": "c1", "name": "Ana"});
        for (body, key) in [
            (json!({"data": [record], "has_more": true}), "has_more"),
            (
                json!({"data": [record], "links": {"next": "/x?page=2"}}),
                "links",
            ),
            (
                json!({"data": [record], "next_page_token": "t"}),
                "next_page_token",
            ),
            (
                json!({"data": [record], "pagination": {"next": 2}}),
                "pagination",
            ),
            (json!({"data": [record], "next_cursor": 2}), "next_cursor"),
            (
                json!({"items": [record], "nextCursor": "abc"}),
                "nextCursor",
            ),
        ] {
            assert_eq!(
                parse_page(&body),
                Err(ParseError::UnknownPagination {
                    key: key.to_owned()
                }),
                "{body}"
            );
        }
        // What says nothing more is fine, and so is an empty page.
        for body in [
            json!({"data": [record], "has_more": false, "total": 1}),
            json!({"data": [record], "links": {"next": null}, "next_cursor": null}),
            json!({"data": [], "has_more": true}),
            json!({"data": [record], "meta": {"request_id": "r"}}),
        ] {
            assert!(parse_page(&body).is_ok(), "{body}");
        }
        assert_eq!(
            parse_page(&json!({"data": [record], "total_count": 240}))
                .unwrap()
                .total,
            Some(240)
        );
    }

    #[test]
    fn display_name_and_numeric_ids_are_accepted() {
        let page = parse_page(&json!([{"id": 42, "display_name": "Zed"}])).unwrap();
        assert_eq!(
            (page.records[0].id.as_str(), page.records[0].name.as_str()),
            ("42", "Zed")
        );
    }

    #[test]
    fn bodies_that_fit_no_shape_are_specific_errors() {
        assert_eq!(parse_page(&json!({"rows": []})), Err(ParseError::NoList));
        assert_eq!(parse_page(&json!("text")), Err(ParseError::NoList));
        assert_eq!(
            parse_page(&json!([{"id": "1", "name": "ok"}, {"name": "no id"}])),
            Err(ParseError::BadRecord { index: 1 })
        );
        assert_eq!(
            parse_organization(&json!([1])),
            Err(ParseError::BadOrganization)
        );
    }

    #[test]
    fn organization_in_any_wrapper() {
        for body in [
            json!({"id": "o", "name": "Org"}),
            json!({"data": {"id": "o", "display_name": "Org"}}),
            json!({"organization": {"id": "o", "name": "Org", "plan": "pro"}}),
        ] {
            assert_eq!(parse_organization(&body).unwrap().name, "Org");
        }
    }

    #[test]
    fn location_from_address_or_city() {
        let page = parse_page(&json!([
            {"id": "1", "name": "a", "address": {"city": "Lisbon", "country": "PT"}},
            {"id": "2", "name": "b", "city": "Porto"}
        ]))
        .unwrap();
        assert_eq!(page.records[0].location.as_deref(), Some("Lisbon, PT"));
        assert_eq!(page.records[1].location.as_deref(), Some("Porto"));
    }
}
