//! Identifiers (`OrganizationId`, `ProviderId`) parsed once, at the edge where they arrive, so code past it holds a checked value
//! instead of re-checking a string.

use std::fmt;

/// An organization id as a provider names it. It goes into the partner API's URL path and keys
/// the vault, so only what needs no escaping there is taken: 1 to 128 of RFC 3986's unreserved
/// characters (§2.3), and not a dot segment (`..` would be folded away by URL parsing, §5.2.4,
/// and send the token to another path). Anything else is treated as missing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrganizationId(String);

impl OrganizationId {
    pub fn parse(raw: &str) -> Option<Self> {
        let usable = (1..=128).contains(&raw.len())
            && raw != "."
            && raw != ".."
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        usable.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Kept in session records (a signed-in user's organization): read back through the same check.
impl serde::Serialize for OrganizationId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for OrganizationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).ok_or_else(|| serde::de::Error::custom("not an organization id"))
    }
}

impl fmt::Display for OrganizationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for OrganizationId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// A provider's id: the `provider` of its connections and the segment of its routes
/// (`/api/auth/{id}/start`), so 1 to 32 lowercase ASCII letters, digits or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderId(String);

impl ProviderId {
    pub fn parse(raw: &str) -> Option<Self> {
        let usable = (1..=32).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        usable.then(|| Self(raw.to_owned()))
    }

    /// Qentrah's.
    pub fn qentrah() -> Self {
        Self(crate::vocabulary::QENTRAH.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for ProviderId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_are_safe_route_segments() {
        for good in ["qentrah", "regarding-work", "hub2"] {
            assert_eq!(ProviderId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "Qentrah", "a/b", "..", "a b", &"x".repeat(33)] {
            assert_eq!(ProviderId::parse(bad), None, "{bad}");
        }
        assert_eq!(
            ProviderId::qentrah(),
            *ProviderId::parse("qentrah").as_ref().unwrap()
        );
    }

    #[test]
    fn only_organization_ids_safe_in_a_url_path_are_taken() {
        for id in ["org_acme", "org-1", "A.b~c", &"x".repeat(128)] {
            assert_eq!(
                OrganizationId::parse(id)
                    .map(|id| id.to_string())
                    .as_deref(),
                Some(id)
            );
        }
        for id in [
            "",
            " ",
            ".",
            "..",
            "org acme",
            "org/../me",
            "org%2F",
            "org?x=1",
            "org#x",
            "orgé",
            &"x".repeat(129),
        ] {
            assert_eq!(OrganizationId::parse(id), None, "{id:?}");
        }
    }
}
