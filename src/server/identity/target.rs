//! Where a sign-in lands. "Open App" names its destination in `target_link_uri` (OpenID
//! Connect Core §4, third-party-initiated login): the Workspace, or anyone who can make a link
//! to `/auth/login`, chooses it, so only a place inside this app is honoured. Anything else
//! silently becomes `/` (an open redirect is what RFC 9700 §4.11 warns of).

use crate::server::platform::config::PartnerAppUrl;
use crate::server::providers::oauth::authorization::safe_return_to;

/// The path a sign-in with `target_link_uri = raw` lands on: a path of this app, or an absolute
/// URL of `PARTNER_APP_URL`'s origin exactly (no user info), never under `/auth/` or `/api/`
/// (a sign-in that lands on a sign-in or an API route would loop or serve JSON). The query is
/// kept, a fragment dropped.
pub fn landing_path(raw: Option<&str>, app: &PartnerAppUrl) -> String {
    let Some(raw) = raw.map(str::trim).filter(|raw| !raw.is_empty()) else {
        return "/".to_owned();
    };
    let path = if raw.starts_with('/') {
        raw.split('#').next().unwrap_or_default().to_owned()
    } else {
        match url::Url::parse(raw) {
            Ok(url)
                if url.origin().ascii_serialization() == app.origin()
                    && url.username().is_empty()
                    && url.password().is_none() =>
            {
                match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_owned(),
                }
            }
            _ => return "/".to_owned(),
        }
    };
    let lower = path.to_ascii_lowercase();
    let reserved = ["/auth", "/api"].iter().any(|prefix| {
        lower == *prefix
            || lower.starts_with(&format!("{prefix}/"))
            || lower.starts_with(&format!("{prefix}?"))
    });
    if reserved {
        return "/".to_owned();
    }
    safe_return_to(Some(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_place_inside_this_app_is_honoured() {
        let app = PartnerAppUrl::parse("https://app.example").unwrap();
        let cases = [
            ("https://evil.example/", "/"),
            ("//evil.example", "/"),
            ("/\\evil.example", "/"),
            ("https://app@evil.example", "/"),
            ("https://app.example@evil.example/", "/"),
            ("https://user@app.example/clients", "/"),
            ("https://app.evil.example", "/"),
            ("http://app.example/clients", "/"),
            ("https://app.example:8443/clients", "/"),
            ("javascript:alert(1)", "/"),
            ("/auth/login", "/"),
            ("/AUTH/login?iss=x", "/"),
            ("/api/clients", "/"),
            ("/api", "/"),
            ("%2F%2Fevil.example", "/"),
            ("/clients\r\nSet-Cookie: x", "/"),
            ("", "/"),
            ("   ", "/"),
            ("/clients?q=1", "/clients?q=1"),
            ("/clients?q=1#top", "/clients?q=1"),
            ("/authors", "/authors"),
            (
                "https://app.example/properties?sort=name",
                "/properties?sort=name",
            ),
            ("https://app.example", "/"),
        ];
        for (raw, expected) in cases {
            assert_eq!(landing_path(Some(raw), &app), expected, "{raw:?}");
        }
        assert_eq!(landing_path(None, &app), "/");
    }
}
