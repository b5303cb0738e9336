//! What makes this emulator Qentrah rather than another provider: the scopes it knows (with the
//! words its consent page uses), where its partner API lives (the RFC 8707 resource every
//! request must name), and the callback path a partner app registers with it by default. The
//! core (authorization server, control API, failure injection) reads these from the profile it
//! runs with, so another provider's profile goes beside [`QENTRAH`].

/// A scope a provider knows.
#[derive(Debug)]
pub struct Scope {
    pub name: &'static str,
    /// What the consent page says it allows.
    pub consent: &'static str,
    /// Whether it reads data (the control page can withhold those); `offline_access` does not.
    pub reads_data: bool,
}

/// A provider the dev Workspace can be.
#[derive(Debug)]
pub struct Profile {
    /// Its name, in page titles.
    pub name: &'static str,
    pub scopes: &'static [Scope],
    /// The partner API's path under the issuer, and its resource indicator (RFC 8707).
    pub resource_path: &'static str,
    /// The partner app's callback path that default clients register.
    pub callback_path: &'static str,
}

impl Profile {
    pub fn supports(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s.name == scope)
    }

    pub fn scope_names(&self) -> Vec<&'static str> {
        self.scopes.iter().map(|s| s.name).collect()
    }

    /// The scopes that read data, in order.
    pub fn data_scopes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.scopes.iter().filter(|s| s.reads_data).map(|s| s.name)
    }

    pub fn consent_words(&self, scope: &str) -> &'static str {
        self.scopes
            .iter()
            .find(|s| s.name == scope)
            .map_or("Unknown access", |s| s.consent)
    }
}

/// Qentrah, as the integration brief describes it.
pub const QENTRAH: Profile = Profile {
    name: "Qentrah",
    scopes: &[
        Scope {
            name: "organization:read",
            consent: "Read your organization's profile",
            reads_data: true,
        },
        Scope {
            name: "client:read",
            consent: "Read your clients",
            reads_data: true,
        },
        Scope {
            name: "property:read",
            consent: "Read your properties",
            reads_data: true,
        },
        // OpenID Connect sign-in ("Open App"): who the user is, in which organization, with
        // which role. None reads partner data.
        Scope {
            name: "openid",
            consent: "Sign you in",
            reads_data: false,
        },
        Scope {
            name: "profile",
            consent: "See your name",
            reads_data: false,
        },
        Scope {
            name: "email",
            consent: "See your email address",
            reads_data: false,
        },
        Scope {
            name: "organization",
            consent: "See your organization and role",
            reads_data: false,
        },
        Scope {
            name: "offline_access",
            consent: "Stay connected when you are not using the app",
            reads_data: false,
        },
    ],
    resource_path: "/api/v1/partner",
    callback_path: "/api/auth/qentrah/callback",
};
