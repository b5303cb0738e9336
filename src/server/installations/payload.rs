//! The two payload shapes an install delivery comes in, parsed only after its signature held:
//! the canonical `{"type", "timestamp", "data": {organizationId, installationId, clientId,
//! clientSecret}}`, and the seed's flat `{"event", organizationId, clientId, clientSecret}` (no
//! event time, no installation id). A field that breaks its rule is named (`data.clientId`),
//! never echoed.

use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::server::ids::OrganizationId;

/// What a delivery says happened.
#[derive(Debug)]
pub enum Event {
    Installed(Installed),
    Uninstalled(Uninstalled),
    /// A type this app does not handle: acknowledged and ignored.
    Unknown,
}

#[derive(Debug)]
pub struct Installed {
    pub organization_id: OrganizationId,
    pub client_id: String,
    pub client_secret: DeliveredClientSecret,
    pub installation_id: Option<String>,
    /// When it happened at the Workspace (`timestamp`), if said: the order of events.
    pub occurred_at: Option<SystemTime>,
}

#[derive(Debug)]
pub struct Uninstalled {
    pub organization_id: OrganizationId,
    /// Which installation; none: the organization's active one.
    pub client_id: Option<String>,
    pub occurred_at: Option<SystemTime>,
}

/// The client secret a Workspace delivered for an organization's installation.
///
/// # Security
/// Never printed, never serialized; sealed before it is stored, read only to authenticate at
/// the Workspace's token endpoint.
pub struct DeliveredClientSecret(SecretString);

impl DeliveredClientSecret {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for DeliveredClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveredClientSecret([redacted])")
    }
}

/// Why a payload cannot be used: the JSON is not an object, or `field` breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the payload's {field} is missing or invalid")]
pub struct PayloadError {
    /// Where, as a path into the payload (`data.clientId`), or `body` for the whole.
    pub field: &'static str,
}

pub fn parse(body: &[u8]) -> Result<Event, PayloadError> {
    let invalid = |field| PayloadError { field };
    let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("body"));
    };
    // The canonical shape names its kind `type` and nests the facts under `data`.
    let (kind, kind_field, data, prefix) = match (root.get("type"), root.get("event")) {
        (Some(kind), _) => {
            let Some(Value::Object(data)) = root.get("data") else {
                return Err(invalid("data"));
            };
            (kind, "type", data, Shape::Canonical)
        }
        (None, Some(kind)) => (kind, "event", &root, Shape::Flat),
        (None, None) => return Err(invalid("type")),
    };
    let kind = kind.as_str().ok_or_else(|| invalid(kind_field))?;
    let occurred_at = match prefix {
        Shape::Canonical => match root.get("timestamp") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                Some(parse_time(text).ok_or_else(|| invalid("timestamp"))?)
            }
            Some(_) => return Err(invalid("timestamp")),
        },
        Shape::Flat => None,
    };
    let field = |name: &'static str| prefix.path(name);
    match kind {
        "app.installed" => Ok(Event::Installed(Installed {
            organization_id: organization(data, field("organizationId"))?,
            client_id: identifier(data, field("clientId"))?
                .ok_or_else(|| invalid(field("clientId")))?,
            client_secret: client_secret(data, field("clientSecret"))?,
            installation_id: identifier(data, field("installationId"))?,
            occurred_at,
        })),
        "app.uninstalled" => Ok(Event::Uninstalled(Uninstalled {
            organization_id: organization(data, field("organizationId"))?,
            client_id: identifier(data, field("clientId"))?,
            occurred_at,
        })),
        _ => Ok(Event::Unknown),
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Canonical,
    Flat,
}

impl Shape {
    fn path(self, name: &'static str) -> &'static str {
        match (self, name) {
            (Shape::Flat, name) => name,
            (Shape::Canonical, "organizationId") => "data.organizationId",
            (Shape::Canonical, "clientId") => "data.clientId",
            (Shape::Canonical, "clientSecret") => "data.clientSecret",
            (Shape::Canonical, "installationId") => "data.installationId",
            (Shape::Canonical, other) => other,
        }
    }
}

/// The string at `field` (its last segment, within `data`), or none when absent or null.
fn text<'a>(
    data: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, PayloadError> {
    let key = field.rsplit('.').next().unwrap_or(field);
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(PayloadError { field }),
    }
}

/// The app's organization-id rule ([`OrganizationId::parse`]).
fn organization(
    data: &Map<String, Value>,
    field: &'static str,
) -> Result<OrganizationId, PayloadError> {
    text(data, field)?
        .and_then(OrganizationId::parse)
        .ok_or(PayloadError { field })
}

/// An identifier (a client id, an installation id): printable ASCII, 1 to 255 characters
/// (RFC 6749 §2.2 leaves a client id's form to the server).
fn identifier(
    data: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, PayloadError> {
    match text(data, field)? {
        None => Ok(None),
        Some(id) if (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(id.to_owned()))
        }
        Some(_) => Err(PayloadError { field }),
    }
}

/// 16 to 1024 bytes, no control characters.
fn client_secret(
    data: &Map<String, Value>,
    field: &'static str,
) -> Result<DeliveredClientSecret, PayloadError> {
    match text(data, field)? {
        Some(secret)
            if (16..=1024).contains(&secret.len()) && !secret.chars().any(char::is_control) =>
        {
            Ok(DeliveredClientSecret(SecretString::from(secret.to_owned())))
        }
        _ => Err(PayloadError { field }),
    }
}

/// An ISO 8601 / RFC 3339 date-time (`2026-12-01T10:00:00Z`, or with an offset).
fn parse_time(text: &str) -> Option<SystemTime> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let secs = parsed.unix_timestamp();
    Some(crate::server::platform::clock::from_unix(secs.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "secret_0123456789abcdef";

    #[test]
    fn the_canonical_shape_with_its_event_time() {
        let body = format!(
            r#"{{"type":"app.installed","timestamp":"2026-12-01T10:00:00Z","data":{{"organizationId":"org_abc123","installationId":"inst_1","clientId":"app_xyz789","clientSecret":"{SECRET}"}}}}"#
        );
        let Ok(Event::Installed(installed)) = parse(body.as_bytes()) else {
            panic!("not an install");
        };
        assert_eq!(installed.organization_id.as_str(), "org_abc123");
        assert_eq!(installed.client_id, "app_xyz789");
        assert_eq!(installed.installation_id.as_deref(), Some("inst_1"));
        assert_eq!(installed.client_secret.expose(), SECRET);
        assert_eq!(
            installed.occurred_at,
            Some(crate::server::platform::clock::from_unix(1_796_119_200))
        );
        assert!(!format!("{installed:?}").contains(SECRET));
    }

    #[test]
    fn the_flat_shape_and_an_uninstall_without_a_client() {
        let body = format!(
            r#"{{"event":"app.installed","organizationId":"org_abc123","clientId":"app_1","clientSecret":"{SECRET}"}}"#
        );
        let Ok(Event::Installed(installed)) = parse(body.as_bytes()) else {
            panic!("not an install");
        };
        assert_eq!(
            (installed.occurred_at, installed.installation_id),
            (None, None)
        );
        let Ok(Event::Uninstalled(uninstalled)) =
            parse(br#"{"type":"app.uninstalled","data":{"organizationId":"org_abc123"}}"#)
        else {
            panic!("not an uninstall");
        };
        assert_eq!(uninstalled.client_id, None);
        assert!(matches!(
            parse(br#"{"type":"app.renamed","data":{}}"#),
            Ok(Event::Unknown)
        ));
    }

    #[test]
    fn a_bad_field_is_named_never_echoed() {
        let install = |data: &str| format!(r#"{{"type":"app.installed","data":{data}}}"#);
        for (body, field) in [
            ("not json".to_owned(), "body"),
            ("[1]".to_owned(), "body"),
            (r#"{"data":{}}"#.to_owned(), "type"),
            (r#"{"type":7,"data":{}}"#.to_owned(), "type"),
            (r#"{"type":"app.installed"}"#.to_owned(), "data"),
            (
                install(&format!(
                    r#"{{"organizationId":"org/../x","clientId":"a","clientSecret":"{SECRET}"}}"#
                )),
                "data.organizationId",
            ),
            (
                install(&format!(
                    r#"{{"organizationId":"org","clientId":"a b","clientSecret":"{SECRET}"}}"#
                )),
                "data.clientId",
            ),
            (
                install(&format!(
                    r#"{{"organizationId":"org","clientSecret":"{SECRET}"}}"#
                )),
                "data.clientId",
            ),
            (
                install(r#"{"organizationId":"org","clientId":"a","clientSecret":"short"}"#),
                "data.clientSecret",
            ),
            (
                install(
                    r#"{"organizationId":"org","clientId":"a","clientSecret":"0123456789abcdef\n"}"#,
                ),
                "data.clientSecret",
            ),
            (
                format!(
                    r#"{{"type":"app.installed","timestamp":"yesterday","data":{{"organizationId":"org","clientId":"a","clientSecret":"{SECRET}"}}}}"#
                ),
                "timestamp",
            ),
            (
                r#"{"event":"app.uninstalled","organizationId":""}"#.to_owned(),
                "organizationId",
            ),
        ] {
            assert_eq!(parse(body.as_bytes()).unwrap_err().field, field, "{body}");
        }
    }
}
