//! Marketplace webhooks: the Standard Webhooks signing secrets the Workspace signs install
//! deliveries with (configured out of band, never the delivered client secret), how far a
//! delivery's timestamp may be from now, and how long an uninstalled organization's people are
//! remembered.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox};

use super::{var, ConfigError, Env};

/// How far `webhook-timestamp` may be from now, by default (Standard Webhooks suggests 5 min).
pub const DEFAULT_WEBHOOK_TOLERANCE_SECS: u64 = 300;

/// How long data about the people of an uninstalled organization is kept, by default.
pub const DEFAULT_UNINSTALL_RETENTION_HOURS: u64 = 48;

/// The development signing secret `.env.example` ships (the dev Workspace's marketplace signs
/// with it): public, so refused for an https deployment.
pub const DEVELOPMENT_WEBHOOK_SECRET: &str = "whsec_ZGV2LXdvcmtzcGFjZS13ZWJob29rLXNpZ25pbmcta2V5";

/// A signing secret, `whsec_` then base64 of 24–64 bytes.
///
/// # Security
/// Never printed, never serialized; only signature verification reads it.
pub struct WebhookSecret(SecretBox<Vec<u8>>);

impl WebhookSecret {
    pub fn parse(raw: &str) -> Option<Self> {
        let encoded = raw.trim().strip_prefix("whsec_")?;
        let bytes = STANDARD.decode(encoded).ok()?;
        (24..=64)
            .contains(&bytes.len())
            .then(|| Self(SecretBox::new(Box::new(bytes))))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl Clone for WebhookSecret {
    fn clone(&self) -> Self {
        Self(SecretBox::new(Box::new(self.expose().to_vec())))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// The marketplace webhook's settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The current secret first, then earlier ones still accepted (rotation). Empty: the
    /// webhook route is not mounted.
    pub secrets: Vec<WebhookSecret>,
    pub tolerance: Duration,
    pub uninstall_retention: Duration,
}

impl WebhookConfig {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let secrets = env
            .optional(var::WEBHOOK_SECRETS)
            .unwrap_or_default()
            .split(',')
            .filter(|secret| !secret.trim().is_empty())
            .map(|secret| {
                WebhookSecret::parse(secret).ok_or_else(|| {
                    ConfigError::new(
                        var::WEBHOOK_SECRETS,
                        "must be comma-separated Standard Webhooks secrets, each whsec_ then base64 of 24 to 64 bytes",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            secrets,
            tolerance: Duration::from_secs(env.number_in(
                var::WEBHOOK_TOLERANCE_SECS,
                30..=600,
                DEFAULT_WEBHOOK_TOLERANCE_SECS,
                "must be seconds from 30 to 600",
            )?),
            uninstall_retention: Duration::from_secs(
                3600 * env.number_in(
                    var::UNINSTALL_DATA_RETENTION_HOURS,
                    0..=720,
                    DEFAULT_UNINSTALL_RETENTION_HOURS,
                    "must be hours from 0 to 720",
                )?,
            ),
        })
    }

    /// Whether marketplace webhooks are on (a secret is configured).
    pub fn enabled(&self) -> bool {
        !self.secrets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<WebhookConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        WebhookConfig::from_env(&Env::new(&lookup))
    }

    /// The Standard Webhooks specification's example secret (24 bytes).
    const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes_and_never_printed() {
        let off = load(&[]).unwrap();
        assert!(!off.enabled());
        assert_eq!(off.tolerance, Duration::from_secs(300));
        assert_eq!(off.uninstall_retention, Duration::from_secs(48 * 3600));

        let long = format!("whsec_{}", STANDARD.encode([7u8; 64]));
        let on = load(&[(var::WEBHOOK_SECRETS, &format!("{SPEC_SECRET}, {long}"))]).unwrap();
        assert_eq!(on.secrets.len(), 2);
        assert!(!format!("{on:?}").contains("C2FVsBQ"));

        for bad in [
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_not base64!",
            &format!("whsec_{}", STANDARD.encode([7u8; 23])),
            &format!("whsec_{}", STANDARD.encode([7u8; 65])),
        ] {
            let err = load(&[(var::WEBHOOK_SECRETS, bad)]).unwrap_err();
            assert_eq!(err.variable, var::WEBHOOK_SECRETS, "{bad}");
            assert!(!err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn tolerance_and_retention_keep_to_their_ranges() {
        for (name, good, bad) in [
            (var::WEBHOOK_TOLERANCE_SECS, ["30", "600"], ["29", "601"]),
            (
                var::UNINSTALL_DATA_RETENTION_HOURS,
                ["0", "720"],
                ["-1", "721"],
            ),
        ] {
            for value in good {
                assert!(load(&[(name, value)]).is_ok(), "{name}={value}");
            }
            for value in bad {
                assert_eq!(
                    load(&[(name, value)]).unwrap_err().variable,
                    name,
                    "{value}"
                );
            }
        }
    }
}
