//! Who is signed in to the Workspace, and what it says about them: seeded users with their
//! organizations and roles, the Workspace's own session cookie, the ID-token signing keys (with
//! rotation), and the faults the control API can put into ID tokens and UserInfo answers.

use std::collections::{HashMap, VecDeque};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs1v15::SigningKey as Rs256Key;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

/// The Workspace's session cookie (its own sign-in, not the partner app's).
pub const SESSION_COOKIE: &str = "qws_session";
/// How long an ID token is valid (OIDC Core §2 `exp`; real servers use minutes).
pub const ID_TOKEN_LIFETIME_SECS: u64 = 300;

/// A person with a Workspace account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Stable and never reassigned (OIDC Core §2 `sub`); the email can change.
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub memberships: Vec<Membership>,
    pub disabled: bool,
}

/// A user's role in one organization (the raw Workspace role: the app maps it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Membership {
    pub organization_id: String,
    pub role: String,
}

impl User {
    pub fn role_in(&self, organization_id: &str) -> Option<&str> {
        self.memberships
            .iter()
            .find(|m| m.organization_id == organization_id)
            .map(|m| m.role.as_str())
    }
}

fn user(sub: &str, name: &str, email: &str, verified: bool, memberships: &[(&str, &str)]) -> User {
    User {
        sub: sub.to_owned(),
        email: email.to_owned(),
        email_verified: verified,
        name: name.to_owned(),
        memberships: memberships
            .iter()
            .map(|(organization_id, role)| Membership {
                organization_id: (*organization_id).to_owned(),
                role: (*role).to_owned(),
            })
            .collect(),
        disabled: false,
    }
}

/// The seeded users, each there for a case the partner app must get right.
pub fn seeded_users() -> Vec<User> {
    vec![
        user(
            "usr_ada",
            "Ada Okafor",
            "ada@acme.test",
            true,
            &[("org_acme", "admin")],
        ),
        user(
            "usr_milo",
            "Milo Brandt",
            "milo@acme.test",
            true,
            &[("org_acme", "member")],
        ),
        user(
            "usr_hana",
            "Hana Ito",
            "hana@harbor.test",
            true,
            &[("org_harbor", "owner")],
        ),
        // A member of two organizations: one person, two memberships.
        user(
            "usr_bo",
            "Bo Lindqvist",
            "bo@both.test",
            true,
            &[("org_acme", "member"), ("org_harbor", "member")],
        ),
        // A role the default role map does not know: no access, never a guess.
        user(
            "usr_gus",
            "Gus Auditor",
            "gus@acme.test",
            true,
            &[("org_acme", "billing")],
        ),
        // Claims the admin's email, unverified: another person, never merged by email.
        user(
            "usr_eve",
            "Ada Okafor",
            "ada@acme.test",
            false,
            &[("org_acme", "member")],
        ),
        // An attacker: admin of an organization of their own, with a real flow of their own.
        user(
            "usr_mallory",
            "Mallory",
            "mallory@evil.test",
            true,
            &[("1001", "admin")],
        ),
    ]
}

/// A deliberately wrong ID token, to prove the client refuses it (OIDC Core §3.1.3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdTokenFault {
    WrongIss,
    WrongAud,
    MissingAud,
    /// `aud` is another organization's installed client.
    OtherClientAud,
    /// Two audiences and no `azp`.
    SeveralAudWithoutAzp,
    WrongNonce,
    MissingNonce,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 with the RSA public key as the HMAC key (the algorithm-confusion attack).
    Hs256WithPublicKey,
    BadSignature,
    Expired,
    IatInFuture,
    MissingSub,
    /// Signed with a key the JWKS does not publish.
    UnknownKid,
    /// An `organization_id` claim naming another organization.
    OtherOrganization,
}

impl IdTokenFault {
    pub const ALL: [IdTokenFault; 15] = [
        IdTokenFault::WrongIss,
        IdTokenFault::WrongAud,
        IdTokenFault::MissingAud,
        IdTokenFault::OtherClientAud,
        IdTokenFault::SeveralAudWithoutAzp,
        IdTokenFault::WrongNonce,
        IdTokenFault::MissingNonce,
        IdTokenFault::AlgNone,
        IdTokenFault::Hs256WithPublicKey,
        IdTokenFault::BadSignature,
        IdTokenFault::Expired,
        IdTokenFault::IatInFuture,
        IdTokenFault::MissingSub,
        IdTokenFault::UnknownKid,
        IdTokenFault::OtherOrganization,
    ];

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A deliberately wrong UserInfo answer (OIDC Core §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum UserInfoFault {
    /// Another `sub` than the ID token's (§5.3.2: the client must not use the answer).
    SubMismatch,
    OrganizationMismatch,
    MissingOrganization,
    /// This role instead of the user's.
    Role {
        role: String,
    },
    /// This status with an error body instead of the claims.
    Status {
        status: u16,
    },
}

/// The JWS algorithms the Workspace signs ID tokens with (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SigningAlg {
    #[default]
    RS256,
    ES256,
}

impl SigningAlg {
    pub fn name(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(SigningAlg::RS256),
            "ES256" => Some(SigningAlg::ES256),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum KeyMaterial {
    // Boxed: an RSA key is several times the size of a P-256 one.
    Rsa(Box<RsaPrivateKey>),
    Ec(p256::ecdsa::SigningKey),
}

/// One signing key, published in the JWKS while it is current or just rotated out.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: String,
    key: KeyMaterial,
}

impl SigningKey {
    fn generate(kid: String, alg: SigningAlg) -> Option<Self> {
        let key = match alg {
            SigningAlg::RS256 => KeyMaterial::Rsa(Box::new(
                RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).ok()?,
            )),
            // A scalar from 256 random bits; the rare value outside the curve's order is drawn
            // again.
            SigningAlg::ES256 => KeyMaterial::Ec((0..8).find_map(|_| {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).ok()?;
                p256::ecdsa::SigningKey::from_bytes(&bytes.into()).ok()
            })?),
        };
        Some(Self { kid, key })
    }

    pub fn alg(&self) -> SigningAlg {
        match self.key {
            KeyMaterial::Rsa(_) => SigningAlg::RS256,
            KeyMaterial::Ec(_) => SigningAlg::ES256,
        }
    }

    /// The public half as a JWK (RFC 7517 §4; RFC 7518 §6.3.1 for RSA, §6.2.1 for P-256).
    pub fn jwk(&self) -> Value {
        match &self.key {
            KeyMaterial::Rsa(key) => {
                let public = key.to_public_key();
                json!({
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                    "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
                })
            }
            KeyMaterial::Ec(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                let coordinate = |c: Option<&[u8]>| URL_SAFE_NO_PAD.encode(c.unwrap_or_default());
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "use": "sig",
                    "alg": "ES256",
                    "kid": self.kid,
                    "x": coordinate(point.x().map(|x| x.as_slice())),
                    "y": coordinate(point.y().map(|y| y.as_slice())),
                })
            }
        }
    }

    /// The JWS signature over `input`: PKCS#1 v1.5 for RS256, `r || s` for ES256 (RFC 7518
    /// §3.4).
    fn sign(&self, input: &[u8]) -> Vec<u8> {
        match &self.key {
            KeyMaterial::Rsa(key) => Rs256Key::<Sha256>::new(key.as_ref().clone())
                .sign(input)
                .to_vec(),
            KeyMaterial::Ec(key) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = key.sign(input);
                signature.to_bytes().to_vec()
            }
        }
    }
}

/// What the Workspace knows about people and how it signs for them.
#[derive(Debug)]
pub struct Identity {
    pub users: Vec<User>,
    /// Workspace session cookie value → `sub`.
    pub sessions: HashMap<String, String>,
    /// The current key first, then keys rotated out but still published (made on first use:
    /// RSA key generation costs time most tests never need).
    keys: Vec<SigningKey>,
    next_kid: u32,
    pub id_token_faults: VecDeque<IdTokenFault>,
    pub userinfo_faults: VecDeque<UserInfoFault>,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            users: seeded_users(),
            sessions: HashMap::new(),
            keys: Vec::new(),
            next_kid: 1,
            id_token_faults: VecDeque::new(),
            userinfo_faults: VecDeque::new(),
        }
    }
}

/// What an ID token says, before any fault.
#[derive(Debug, Clone)]
pub struct IdTokenClaims {
    pub issuer: String,
    pub client_id: String,
    pub user: User,
    pub organization_id: String,
    pub organization_name: String,
    pub nonce: Option<String>,
    pub now: u64,
    pub auth_time: u64,
    pub scopes: Vec<String>,
    /// Another organization's installed client, for [`IdTokenFault::OtherClientAud`].
    pub other_client_id: Option<String>,
    /// A second audience beside the client (with `azp` naming the client): valid, and what a
    /// client must accept only with that `azp` (OIDC Core §3.1.3.7 steps 4–5).
    pub extra_audience: Option<String>,
}

impl Identity {
    /// Seeded users, no sessions, no faults; the signing keys stay (making them costs time).
    pub fn reset_keeping_keys(self) -> Self {
        Self {
            keys: self.keys,
            next_kid: self.next_kid,
            ..Self::default()
        }
    }

    pub fn user(&self, sub: &str) -> Option<&User> {
        self.users.iter().find(|u| u.sub == sub)
    }

    pub fn user_mut(&mut self, sub: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.sub == sub)
    }

    /// The signed-in user of a Workspace session cookie, if the user may still sign in.
    pub fn session_user(&self, cookie: &str) -> Option<&User> {
        let sub = self.sessions.get(cookie)?;
        self.user(sub).filter(|u| !u.disabled)
    }

    /// The keys the JWKS publishes (making the first one if there is none yet).
    pub fn published_keys(&mut self) -> Vec<Value> {
        self.ensure_key();
        self.keys.iter().map(SigningKey::jwk).collect()
    }

    fn ensure_key(&mut self) {
        if self.keys.is_empty() {
            self.rotate();
        }
    }

    /// A new current key of the current algorithm; the old one stays published so tokens it
    /// signed still verify.
    pub fn rotate(&mut self) -> Option<String> {
        let alg = self.keys.first().map(SigningKey::alg).unwrap_or_default();
        self.rotate_to(alg)
    }

    /// A new current key for `alg` (the old ones stay published).
    pub fn rotate_to(&mut self, alg: SigningAlg) -> Option<String> {
        let kid = format!("dev-key-{}", self.next_kid);
        self.next_kid += 1;
        let key = SigningKey::generate(kid.clone(), alg)?;
        self.keys.insert(0, key);
        Some(kid)
    }

    /// Stops publishing every key but the current one.
    pub fn retire_old_keys(&mut self) {
        self.keys.truncate(1);
    }

    pub fn current_kid(&mut self) -> Option<String> {
        self.ensure_key();
        self.keys.first().map(|k| k.kid.clone())
    }

    /// A signed ID token (OIDC Core §2), with the next queued fault applied.
    pub fn id_token(&mut self, claims: &IdTokenClaims) -> Option<String> {
        self.ensure_key();
        let fault = self.id_token_faults.pop_front();
        let mut body = serde_json::Map::new();
        let issuer = if fault == Some(IdTokenFault::WrongIss) {
            "https://impostor.qentrah.invalid".to_owned()
        } else {
            claims.issuer.clone()
        };
        body.insert("iss".into(), issuer.into());
        if fault != Some(IdTokenFault::MissingSub) {
            body.insert("sub".into(), claims.user.sub.clone().into());
        }
        match fault {
            Some(IdTokenFault::WrongAud) => {
                body.insert("aud".into(), "app_someone_else".into());
            }
            Some(IdTokenFault::MissingAud) => {}
            Some(IdTokenFault::OtherClientAud) => {
                let other = claims
                    .other_client_id
                    .clone()
                    .unwrap_or_else(|| "app_other_organization".to_owned());
                body.insert("aud".into(), other.into());
            }
            Some(IdTokenFault::SeveralAudWithoutAzp) => {
                body.insert("aud".into(), json!([claims.client_id, "app_someone_else"]));
            }
            _ => match &claims.extra_audience {
                Some(extra) => {
                    body.insert("aud".into(), json!([claims.client_id, extra]));
                    body.insert("azp".into(), claims.client_id.clone().into());
                }
                None => {
                    body.insert("aud".into(), claims.client_id.clone().into());
                }
            },
        }
        let (iat, exp) = match fault {
            Some(IdTokenFault::Expired) => (claims.now - 600, claims.now - 300),
            Some(IdTokenFault::IatInFuture) => (claims.now + 3600, claims.now + 3900),
            _ => (claims.now, claims.now + ID_TOKEN_LIFETIME_SECS),
        };
        body.insert("iat".into(), iat.into());
        body.insert("exp".into(), exp.into());
        body.insert("auth_time".into(), claims.auth_time.into());
        match (fault, &claims.nonce) {
            (Some(IdTokenFault::MissingNonce), _) => {}
            (Some(IdTokenFault::WrongNonce), _) => {
                body.insert("nonce".into(), "not-the-nonce-you-sent".into());
            }
            (_, Some(nonce)) => {
                body.insert("nonce".into(), nonce.clone().into());
            }
            (_, None) => {}
        }
        let has = |scope: &str| claims.scopes.iter().any(|s| s == scope);
        if has("profile") {
            body.insert("name".into(), claims.user.name.clone().into());
        }
        if has("email") {
            body.insert("email".into(), claims.user.email.clone().into());
            body.insert("email_verified".into(), claims.user.email_verified.into());
        }
        if has("organization") {
            let organization_id = if fault == Some(IdTokenFault::OtherOrganization) {
                "org_someone_else".to_owned()
            } else {
                claims.organization_id.clone()
            };
            body.insert("organization_id".into(), organization_id.into());
            body.insert(
                "organization_name".into(),
                claims.organization_name.clone().into(),
            );
        }
        let payload = Value::Object(body).to_string();
        let current = self.keys.first()?.clone();
        let alg = current.alg().name();
        let (header, signature) = match fault {
            Some(IdTokenFault::AlgNone) => (json!({"alg": "none", "typ": "JWT"}), None),
            Some(IdTokenFault::Hs256WithPublicKey) => (
                json!({"alg": "HS256", "kid": current.kid, "typ": "JWT"}),
                None,
            ),
            Some(IdTokenFault::UnknownKid) => {
                let stranger =
                    SigningKey::generate("dev-key-unpublished".to_owned(), current.alg())?;
                (
                    json!({"alg": alg, "kid": stranger.kid, "typ": "JWT"}),
                    Some(stranger),
                )
            }
            _ => (
                json!({"alg": alg, "kid": current.kid, "typ": "JWT"}),
                Some(current.clone()),
            ),
        };
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut signature = match (fault, signature) {
            (Some(IdTokenFault::AlgNone), _) => Vec::new(),
            (Some(IdTokenFault::Hs256WithPublicKey), _) => {
                // The key an algorithm-confused verifier would use: the public key's JWK `n`
                // (or `x`).
                let jwk = current.jwk();
                let public = jwk["n"]
                    .as_str()
                    .or(jwk["x"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                let mut mac = Hmac::<Sha256>::new_from_slice(public.as_bytes()).ok()?;
                mac.update(input.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            (_, Some(key)) => key.sign(input.as_bytes()),
            (_, None) => Vec::new(),
        };
        if fault == Some(IdTokenFault::BadSignature) {
            if let Some(byte) = signature.last_mut() {
                *byte ^= 0x01;
            }
        }
        Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> IdTokenClaims {
        IdTokenClaims {
            issuer: "http://127.0.0.1:3000".to_owned(),
            client_id: "app_acme".to_owned(),
            user: seeded_users().remove(0),
            organization_id: "org_acme".to_owned(),
            organization_name: "Acme".to_owned(),
            nonce: Some("n-1".to_owned()),
            now: 1_800_000_000,
            auth_time: 1_800_000_000,
            scopes: vec!["openid".into(), "email".into(), "organization".into()],
            other_client_id: None,
            extra_audience: None,
        }
    }

    fn decode(token: &str) -> (Value, Value, Vec<u8>) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        let part = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        (
            part(parts[0]),
            part(parts[1]),
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
    }

    #[test]
    fn an_id_token_verifies_with_the_published_key() {
        use rsa::signature::Verifier;
        let mut identity = Identity::default();
        let token = identity.id_token(&claims()).unwrap();
        let (header, body, signature) = decode(&token);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(body["aud"], "app_acme");
        assert_eq!(body["nonce"], "n-1");
        assert_eq!(body["organization_id"], "org_acme");
        let input = token.rsplit_once('.').unwrap().0;
        let KeyMaterial::Rsa(key) = &identity.keys[0].key else {
            panic!("the default key is RSA")
        };
        let key = key.to_public_key();
        let verifying = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key);
        let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice()).unwrap();
        verifying.verify(input.as_bytes(), &signature).unwrap();
        assert_eq!(header["kid"], identity.published_keys()[0]["kid"]);
    }

    #[test]
    fn an_es256_key_signs_r_and_s_and_publishes_its_point() {
        use p256::ecdsa::signature::Verifier as _;
        let mut identity = Identity::default();
        identity.rotate_to(SigningAlg::ES256).unwrap();
        let token = identity.id_token(&claims()).unwrap();
        let (header, _, signature) = decode(&token);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(signature.len(), 64);
        let KeyMaterial::Ec(key) = &identity.keys[0].key else {
            panic!("rotated to ES256")
        };
        let signature = p256::ecdsa::Signature::from_slice(&signature).unwrap();
        let input = token.rsplit_once('.').unwrap().0;
        key.verifying_key()
            .verify(input.as_bytes(), &signature)
            .unwrap();
        let jwk = &identity.published_keys()[0];
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
    }

    #[test]
    fn rotation_keeps_the_previous_key_published_until_retired() {
        let mut identity = Identity::default();
        let first = identity.current_kid().unwrap();
        let second = identity.rotate().unwrap();
        let kids: Vec<Value> = identity
            .published_keys()
            .iter()
            .map(|k| k["kid"].clone())
            .collect();
        assert_eq!(kids, vec![Value::from(second.clone()), Value::from(first)]);
        identity.retire_old_keys();
        assert_eq!(identity.published_keys().len(), 1);
    }

    #[test]
    fn each_fault_changes_what_it_names() {
        let mut identity = Identity::default();
        for fault in IdTokenFault::ALL {
            assert_eq!(IdTokenFault::parse(&fault.name()), Some(fault));
            identity.id_token_faults.push_back(fault);
            let token = identity.id_token(&claims()).unwrap();
            let (header, body, signature) = decode(&token);
            match fault {
                IdTokenFault::WrongIss => assert_ne!(body["iss"], "http://127.0.0.1:3000"),
                IdTokenFault::WrongAud => assert_eq!(body["aud"], "app_someone_else"),
                IdTokenFault::MissingAud => assert!(body.get("aud").is_none()),
                IdTokenFault::OtherClientAud => assert_eq!(body["aud"], "app_other_organization"),
                IdTokenFault::SeveralAudWithoutAzp => {
                    assert!(body["aud"].is_array() && body.get("azp").is_none())
                }
                IdTokenFault::WrongNonce => assert_ne!(body["nonce"], "n-1"),
                IdTokenFault::MissingNonce => assert!(body.get("nonce").is_none()),
                IdTokenFault::AlgNone => {
                    assert_eq!(header["alg"], "none");
                    assert!(signature.is_empty());
                }
                IdTokenFault::Hs256WithPublicKey => assert_eq!(header["alg"], "HS256"),
                IdTokenFault::BadSignature => assert_eq!(signature.len(), 256),
                IdTokenFault::Expired => assert!(body["exp"].as_u64() < Some(1_800_000_000)),
                IdTokenFault::IatInFuture => assert!(body["iat"].as_u64() > Some(1_800_000_000)),
                IdTokenFault::MissingSub => assert!(body.get("sub").is_none()),
                IdTokenFault::UnknownKid => assert_eq!(header["kid"], "dev-key-unpublished"),
                IdTokenFault::OtherOrganization => {
                    assert_eq!(body["organization_id"], "org_someone_else")
                }
            }
        }
        assert!(identity.id_token_faults.is_empty());
    }
}
