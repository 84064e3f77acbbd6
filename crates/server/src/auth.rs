//! Credentials: argon2 password hashes, signed access tokens (HS256 JWTs, which is also what
//! realtime-js hands to the socket), the customer's identity cookie and its session scope, and
//! opaque tokens (refresh tokens, resume links) that are stored only as hashes.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine as _;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use wrenchline_protocol::{Role, User};

/// What a signed token is for; a token of one kind is never accepted as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Bearer token for HTTP and realtime.
    Access,
    /// The customer's browser identity, kept in an HttpOnly cookie.
    Customer,
}

/// Which of a user's sessions a token reaches. A browser that came in through a resume link holds
/// the customer's identity for the sessions it was given only; every check of a session
/// (HTTP and realtime joins) asks [`Claims::reaches`].
pub type Scope = Option<Vec<Uuid>>;

/// Most sessions one scoped identity remembers; the oldest is dropped beyond it.
pub const SCOPE_MAX: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub typ: TokenKind,
    pub iat: i64,
    pub exp: i64,
    /// `None`: every session of `sub`; otherwise only these sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Scope,
}

impl Claims {
    /// Whether the token reaches `session` (its participant check is separate).
    pub fn reaches(&self, session: Uuid) -> bool {
        scope_reaches(&self.scope, session)
    }
}

/// Whether `scope` reaches `session`.
pub fn scope_reaches(scope: &Scope, session: Uuid) -> bool {
    scope.as_ref().is_none_or(|ids| ids.contains(&session))
}

/// `scope` with `session` added (the oldest dropped past [`SCOPE_MAX`]); an unscoped identity
/// stays unscoped.
pub fn scope_with(scope: &Scope, session: Uuid) -> Scope {
    scope.as_ref().map(|ids| {
        let mut ids: Vec<Uuid> = ids.iter().copied().filter(|id| *id != session).collect();
        ids.push(session);
        let excess = ids.len().saturating_sub(SCOPE_MAX);
        ids.drain(..excess);
        ids
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

/// Signs and verifies every token the server issues.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(<secret>)")
    }
}

impl TokenSigner {
    pub fn new(secret: &[u8]) -> Self {
        TokenSigner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    pub fn sign(
        &self,
        user: &User,
        typ: TokenKind,
        ttl: Duration,
        scope: Scope,
        now: OffsetDateTime,
    ) -> String {
        let claims = Claims {
            sub: user.id,
            role: user.role,
            typ,
            iat: now.unix_timestamp(),
            exp: (now + ttl).unix_timestamp(),
            scope,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with a byte key cannot fail")
    }

    /// Verifies the signature, the kind and the expiry (no leeway: an expired token is expired).
    pub fn verify(&self, token: &str, typ: TokenKind) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data =
            decode::<Claims>(token, &self.decoding, &validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if data.claims.typ != typ {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }
}

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// Runs password hashing (argon2: ~19 MiB and tens of milliseconds of one core per hash) off the
/// async threads, at most one per core at a time. Without the bound a burst of sign-ins hashes on
/// as many blocking threads at once, and the allocator keeps each thread's memory afterwards:
/// ten concurrent sign-ins left the server ~200 MiB larger for good.
pub async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    static PERMITS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    });
    let _permit = PERMITS
        .acquire()
        .await
        .expect("the hashing semaphore is never closed");
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Checks a password against a stored hash. With no hash, a dummy is checked so that unknown
/// accounts take as long as known ones.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not a real password"));
    let (hash, real) = match stored {
        Some(h) if !h.is_empty() => (h, true),
        _ => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How refresh tokens and resume links are stored: never in the clear.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> User {
        User {
            id: Uuid::new_v4(),
            role,
            name: "N".into(),
            email: "n@example.com".into(),
        }
    }

    #[test]
    fn tokens_round_trip_and_keep_their_kind() {
        let signer = TokenSigner::new(b"0123456789abcdef0123456789abcdef");
        let u = user(Role::Mechanic);
        let now = OffsetDateTime::now_utc();
        let token = signer.sign(&u, TokenKind::Access, Duration::minutes(5), None, now);
        let claims = signer.verify(&token, TokenKind::Access).unwrap();
        assert_eq!(claims.sub, u.id);
        assert_eq!(claims.role, Role::Mechanic);
        assert_eq!(
            signer.verify(&token, TokenKind::Customer).unwrap_err(),
            TokenError::Invalid
        );
        let other = TokenSigner::new(b"another secret another secret!!!");
        assert_eq!(
            other.verify(&token, TokenKind::Access).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn expired_tokens_are_refused() {
        let signer = TokenSigner::new(b"0123456789abcdef0123456789abcdef");
        let then = OffsetDateTime::now_utc() - Duration::hours(1);
        let token = signer.sign(
            &user(Role::Customer),
            TokenKind::Access,
            Duration::minutes(5),
            None,
            then,
        );
        assert_eq!(
            signer.verify(&token, TokenKind::Access).unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn a_scoped_token_reaches_its_sessions_only() {
        let signer = TokenSigner::new(b"0123456789abcdef0123456789abcdef");
        let u = user(Role::Customer);
        let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
        let now = OffsetDateTime::now_utc();
        let scoped = signer.sign(
            &u,
            TokenKind::Access,
            Duration::minutes(5),
            Some(vec![mine]),
            now,
        );
        let claims = signer.verify(&scoped, TokenKind::Access).unwrap();
        assert!(claims.reaches(mine));
        assert!(!claims.reaches(other));
        let whole = signer.sign(&u, TokenKind::Access, Duration::minutes(5), None, now);
        assert!(signer
            .verify(&whole, TokenKind::Access)
            .unwrap()
            .reaches(other));
        assert_eq!(scope_with(&None, mine), None);
        let mut scope = Some(vec![]);
        for _ in 0..SCOPE_MAX + 3 {
            scope = scope_with(&scope, Uuid::new_v4());
        }
        scope = scope_with(&scope, mine);
        let ids = scope.unwrap();
        assert_eq!(ids.len(), SCOPE_MAX);
        assert_eq!(ids.last(), Some(&mine));
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse");
        assert!(verify_password("correct horse", Some(&hash)));
        assert!(!verify_password("wrong horse", Some(&hash)));
        assert!(!verify_password("correct horse", None));
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = random_token();
        assert_ne!(a, random_token());
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}
