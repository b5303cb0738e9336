//! One request's handle on a connection: the row is read, and its access token decrypted, once
//! per request however many partner-API calls the request makes. A page rendered on the server
//! calls its server functions in-process, and they share the page request's [`RequestScope`]
//! (provided in the Leptos context for every request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{AccessToken, Binding, ConnectionInfo, ConnectionKey};

/// What one request has read of the connections it uses (one per provider).
#[derive(Debug, Clone, Default)]
pub struct RequestScope(Arc<Mutex<HashMap<ConnectionKey, ConnectionAccess>>>);

impl RequestScope {
    /// The request's handle on `binding`'s connection, shared by all of the request's calls.
    pub fn access(&self, binding: &Binding) -> ConnectionAccess {
        let mut handles = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match handles.get(&binding.key) {
            Some(access) if access.binding == *binding => access.clone(),
            _ => {
                let access = ConnectionAccess::new(binding.clone());
                handles.insert(binding.key.clone(), access.clone());
                access
            }
        }
    }
}

/// A session's connection, as one request sees it.
#[derive(Debug, Clone)]
pub struct ConnectionAccess {
    binding: Binding,
    pub(super) read: Arc<tokio::sync::Mutex<Option<RowRead>>>,
}

/// The row as this request read it, or as a refresh during this request left it.
#[derive(Debug, Clone)]
pub(super) struct RowRead {
    pub info: ConnectionInfo,
    pub token: AccessToken,
    /// This request refreshed the token (or was handed a refresh's result): it is the newest,
    /// whatever the row's old expiry says, until the Workspace refuses it.
    pub refreshed_here: bool,
}

impl ConnectionAccess {
    /// A handle of its own (outside any request scope: every call reads the row itself).
    pub fn new(binding: Binding) -> Self {
        Self {
            binding,
            read: Arc::default(),
        }
    }

    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    pub fn key(&self) -> &ConnectionKey {
        &self.binding.key
    }
}
