//! The providers this app connects to, as data: each a profile (where it lives, what we ask of
//! it, the routes of its flow), the OAuth client registered with it, and its partner API client.
//! Qentrah comes first, from the brief's `QENTRAH_*` variables (its connection is the one the
//! pages show); others are added by configuration ([`AppConfig::other_providers`]).

pub mod oauth;
pub mod qentrah;

use std::sync::Arc;

use crate::server::ids::ProviderId;
use crate::server::platform::config::{AppConfig, WorkspaceConfig};
use crate::server::providers::oauth::{ClientRegistry, OAuthClient, ProviderConfig};
use crate::server::providers::qentrah::WorkspaceClient;

/// Why the configured providers cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the URL of provider {provider} does not form valid endpoint URLs")]
    Url {
        provider: ProviderId,
        #[source]
        source: url::ParseError,
    },
    #[error("provider {0} is configured twice")]
    Duplicate(ProviderId),
}

/// One provider: its profile with our registration, and its partner API.
#[derive(Debug, Clone)]
pub struct Provider {
    oauth: OAuthClient,
    api: WorkspaceClient,
}

impl Provider {
    pub fn profile(&self) -> &ProviderConfig {
        self.oauth.provider()
    }

    pub fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    pub fn api(&self) -> &WorkspaceClient {
        &self.api
    }
}

/// Every configured provider, Qentrah first.
#[derive(Debug, Clone)]
pub struct ProviderRegistry(Arc<[Provider]>);

impl ProviderRegistry {
    pub fn from_config(config: &AppConfig, http: &reqwest::Client) -> Result<Self, ProviderError> {
        let qentrah = ProviderConfig::qentrah(config).map_err(|source| ProviderError::Url {
            provider: ProviderId::qentrah(),
            source,
        })?;
        let mut providers = vec![Self::provider(qentrah, &config.workspace, http)];
        for other in &config.other_providers {
            if providers.iter().any(|p| p.profile().name == other.name) {
                return Err(ProviderError::Duplicate(other.name.clone()));
            }
            let profile = ProviderConfig::workspace_like(
                other.name.clone(),
                &other.workspace,
                &config.partner_app_url,
            )
            .map_err(|source| ProviderError::Url {
                provider: other.name.clone(),
                source,
            })?;
            providers.push(Self::provider(profile, &other.workspace, http));
        }
        Ok(Self(providers.into()))
    }

    fn provider(
        profile: ProviderConfig,
        workspace: &WorkspaceConfig,
        http: &reqwest::Client,
    ) -> Provider {
        Provider {
            api: WorkspaceClient::new(
                http.clone(),
                workspace.api_url.as_str(),
                workspace.page_size,
            ),
            oauth: OAuthClient::new(profile, workspace, http.clone()),
        }
    }

    /// Qentrah: the provider whose connection the pages show.
    pub fn qentrah(&self) -> &Provider {
        &self.0[0]
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.0.iter().find(|p| p.profile().name == *name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.0.iter()
    }

    /// The OAuth clients, looked up by provider.
    pub fn clients(&self) -> ClientRegistry {
        ClientRegistry::new(self.0.iter().map(|p| p.oauth.clone()))
    }
}
