//! Standard Webhooks verification (<https://www.standardwebhooks.com/>, "Verifying webhooks"):
//! the signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`, a `v1` signature is
//! base64(HMAC-SHA256(secret, content)), `webhook-signature` holds space-separated
//! `version,signature` entries (unknown versions ignored), and the timestamp must be within the
//! tolerance of now, which bounds how long a captured delivery can be replayed (the delivery id
//! bounds it within that window). Checked on the raw bytes, before anything parses the body.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::server::platform::clock::to_unix;
use crate::server::platform::config::WebhookSecret;

/// The longest `webhook-id` taken: the spec's are short (`msg_…`); it is stored as a key.
pub const MAX_WEBHOOK_ID_LEN: usize = 255;

/// Why a delivery is not authentic. Only the log says which: the sender gets one answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing or not readable")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not Unix seconds")]
    UnreadableTimestamp,
    #[error("webhook-timestamp is {0} s away from now, beyond the tolerance")]
    OutsideTolerance(i64),
    #[error("no signature matches a configured secret")]
    NoValidSignature,
}

/// The `webhook-*` headers of a delivery, as received.
pub struct DeliveryHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// An authentic delivery's id (its idempotency key: the same on every retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelivery {
    pub id: String,
}

/// Verifies a delivery against every configured secret (any may match: rotation).
pub fn verify(
    headers: &DeliveryHeaders<'_>,
    body: &[u8],
    secrets: &[WebhookSecret],
    now: SystemTime,
    tolerance: Duration,
) -> Result<VerifiedDelivery, SignatureError> {
    let id = headers
        .id
        .filter(|id| !id.is_empty() && id.len() <= MAX_WEBHOOK_ID_LEN)
        .ok_or(SignatureError::MissingHeader("webhook-id"))?;
    let timestamp = headers
        .timestamp
        .ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let signatures = headers
        .signature
        .ok_or(SignatureError::MissingHeader("webhook-signature"))?;
    let sent_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::UnreadableTimestamp)?;
    let skew = sent_at.saturating_sub(to_unix(now));
    if skew.unsigned_abs() > tolerance.as_secs() {
        return Err(SignatureError::OutsideTolerance(skew));
    }
    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| STANDARD.decode(signature).ok())
        .collect();
    for secret in secrets {
        for candidate in &candidates {
            let Some(mac) = signed_content(secret, id, timestamp, body) else {
                continue;
            };
            // Constant time (the `subtle` comparison inside `verify_slice`).
            if mac.verify_slice(candidate).is_ok() {
                return Ok(VerifiedDelivery { id: id.to_owned() });
            }
        }
    }
    Err(SignatureError::NoValidSignature)
}

/// The MAC of `{id}.{timestamp}.{body}` under `secret` (HMAC takes a key of any length, so
/// `None` does not happen).
fn signed_content(
    secret: &WebhookSecret,
    id: &str,
    timestamp: &str,
    body: &[u8],
) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose()).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// Signs as a sender does: `v1,{base64}`. For the dev Workspace and tests.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    signed_content(secret, id, &timestamp.to_string(), body)
        .map(|mac| format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::platform::clock::from_unix;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    const TOLERANCE: Duration = Duration::from_secs(300);

    fn secret() -> WebhookSecret {
        WebhookSecret::parse(SECRET).unwrap()
    }

    fn check(
        signature: &str,
        now: i64,
        secrets: &[WebhookSecret],
    ) -> Result<VerifiedDelivery, SignatureError> {
        let ts = TIMESTAMP.to_string();
        verify(
            &DeliveryHeaders {
                id: Some(ID),
                timestamp: Some(&ts),
                signature: Some(signature),
            },
            BODY,
            secrets,
            from_unix(now),
            TOLERANCE,
        )
    }

    #[test]
    fn the_specifications_test_vector_verifies() {
        assert_eq!(sign(&secret(), ID, TIMESTAMP, BODY), SIGNATURE);
        assert_eq!(check(SIGNATURE, TIMESTAMP, &[secret()]).unwrap().id, ID);
    }

    #[test]
    fn any_v1_entry_may_match_and_other_versions_are_ignored() {
        let other = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        for header in [
            format!("{SIGNATURE} {other}"),
            format!("{other} {SIGNATURE}"),
            format!("v1a,abc v2,xyz {SIGNATURE} junk"),
        ] {
            assert!(check(&header, TIMESTAMP, &[secret()]).is_ok(), "{header}");
        }
        // The signature under another version is not a v1 signature.
        let relabelled = SIGNATURE.replace("v1,", "v2,");
        assert_eq!(
            check(&relabelled, TIMESTAMP, &[secret()]),
            Err(SignatureError::NoValidSignature)
        );
        assert_eq!(
            check(other, TIMESTAMP, &[secret()]),
            Err(SignatureError::NoValidSignature)
        );
    }

    #[test]
    fn any_configured_secret_may_match() {
        let old = WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([9u8; 32]))).unwrap();
        assert!(check(SIGNATURE, TIMESTAMP, &[old.clone(), secret()]).is_ok());
        assert_eq!(
            check(SIGNATURE, TIMESTAMP, &[old]),
            Err(SignatureError::NoValidSignature)
        );
    }

    #[test]
    fn the_timestamp_must_be_within_the_tolerance_either_way() {
        for now in [TIMESTAMP - 300, TIMESTAMP + 300] {
            assert!(check(SIGNATURE, now, &[secret()]).is_ok(), "{now}");
        }
        assert_eq!(
            check(SIGNATURE, TIMESTAMP + 301, &[secret()]),
            Err(SignatureError::OutsideTolerance(-301))
        );
        assert_eq!(
            check(SIGNATURE, TIMESTAMP - 301, &[secret()]),
            Err(SignatureError::OutsideTolerance(301))
        );
    }

    #[test]
    fn a_changed_body_or_missing_header_is_refused() {
        let ts = TIMESTAMP.to_string();
        let headers = |id, timestamp, signature| DeliveryHeaders {
            id,
            timestamp,
            signature,
        };
        let run = |h: DeliveryHeaders<'_>, body: &[u8]| {
            verify(&h, body, &[secret()], from_unix(TIMESTAMP), TOLERANCE)
        };
        assert_eq!(
            run(
                headers(Some(ID), Some(&ts), Some(SIGNATURE)),
                br#"{"email":"evil@example.com","username":"test_user"}"#
            ),
            Err(SignatureError::NoValidSignature)
        );
        assert_eq!(
            run(headers(None, Some(&ts), Some(SIGNATURE)), BODY),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
        assert_eq!(
            run(headers(Some(ID), None, Some(SIGNATURE)), BODY),
            Err(SignatureError::MissingHeader("webhook-timestamp"))
        );
        assert_eq!(
            run(headers(Some(ID), Some(&ts), None), BODY),
            Err(SignatureError::MissingHeader("webhook-signature"))
        );
        assert_eq!(
            run(headers(Some(ID), Some("soon"), Some(SIGNATURE)), BODY),
            Err(SignatureError::UnreadableTimestamp)
        );
    }
}
