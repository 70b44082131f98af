//! The verifier against tokens a client or an attacker can make: each
//! refusal names its reason and is `401`; the roles come from the claim.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::*;

const SECRET: &str = "a-development-secret-of-32-bytes-or-more";

fn settings() -> AuthSettings {
    AuthSettings::hs256(Secret::new(SECRET))
}

async fn hs256() -> Authenticator {
    Authenticator::new(&settings()).await.unwrap()
}

fn token(claims: &Claims) -> String {
    claims.sign_hs256(&Secret::new(SECRET)).unwrap()
}

fn claims(role: Role) -> Claims {
    Claims::new(&settings(), "alice", role, Duration::from_secs(600))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn reason(result: Result<Principal, AuthError>) -> String {
    match result {
        Err(AuthError::InvalidToken(why)) => why,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

#[tokio::test]
async fn a_good_token_names_its_subject_and_role() {
    let auth = hs256().await;
    for role in [
        Role::Customer,
        Role::Merchant,
        Role::Operator,
        Role::Courier,
    ] {
        let principal = auth
            .authenticate(Some(&bearer(&token(&claims(role)))))
            .unwrap();
        assert_eq!(
            principal,
            Principal {
                subject: "alice".into(),
                role
            }
        );
    }
}

#[tokio::test]
async fn missing_and_malformed_headers_are_refused() {
    let auth = hs256().await;
    assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
    for header in ["", "Basic abc", "Bearer", "Bearer ", "token"] {
        assert_eq!(
            auth.authenticate(Some(header)),
            Err(AuthError::Malformed),
            "{header:?}"
        );
    }
    assert_eq!(reason(auth.authenticate(Some("Bearer x.y.z"))), "malformed");
    assert!(AuthError::Missing.is_unauthenticated());
    assert!(!AuthError::forbidden(Role::Customer, "x").is_unauthenticated());
}

#[tokio::test]
async fn expired_wrong_issuer_and_wrong_audience_are_refused() {
    let auth = hs256().await;
    let mut expired = claims(Role::Customer);
    expired.exp = expired.iat - 3600;
    assert_eq!(reason(auth.verify(&token(&expired))), "expired");
    let mut issuer = claims(Role::Customer);
    issuer.iss = "someone-else".into();
    assert_eq!(reason(auth.verify(&token(&issuer))), "wrong issuer");
    let mut audience = claims(Role::Customer);
    audience.aud = "another-api".into();
    assert_eq!(reason(auth.verify(&token(&audience))), "wrong audience");
}

#[tokio::test]
async fn a_forged_signature_and_alg_none_are_refused() {
    let auth = hs256().await;
    let forged = claims(Role::Operator)
        .sign_hs256(&Secret::new("another-secret-that-is-32-bytes-long!"))
        .unwrap();
    assert_eq!(reason(auth.verify(&forged)), "bad signature");

    let header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = B64.encode(serde_json::to_vec(&claims(Role::Operator)).unwrap());
    for unsigned in [format!("{header}.{body}."), format!("{header}.{body}")] {
        assert!(auth.verify(&unsigned).is_err(), "{unsigned}");
    }
    // Tampered claims under the original signature.
    let good = token(&claims(Role::Customer));
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{body}.{}", parts[0], parts[2]);
    assert_eq!(reason(auth.verify(&tampered)), "bad signature");
}

#[tokio::test]
async fn unknown_roles_and_missing_claims_are_refused() {
    let auth = hs256().await;
    let encode = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let c = claims(Role::Customer);
    let mut admin = serde_json::to_value(&c).unwrap();
    admin["role"] = "admin".into();
    assert_eq!(reason(auth.verify(&encode(admin))), "malformed");
    let mut no_exp = serde_json::to_value(&c).unwrap();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert!(auth.verify(&encode(no_exp)).is_err());
    let mut empty_sub = serde_json::to_value(&c).unwrap();
    empty_sub["sub"] = "".into();
    assert_eq!(reason(auth.verify(&encode(empty_sub))), "empty subject");
}

#[tokio::test]
async fn no_keys_or_a_short_secret_build_nothing() {
    assert!(matches!(
        Authenticator::new(&AuthSettings::default()).await,
        Err(KeysError::NotConfigured)
    ));
    assert!(matches!(
        Authenticator::new(&AuthSettings::hs256(Secret::new("short"))).await,
        Err(KeysError::WeakSecret)
    ));
}

/// An ES256 key pair and its JWKS, as an identity provider publishes it.
struct Provider {
    signing: EncodingKey,
    public_point: Vec<u8>,
    jwks: tempfile::NamedTempFile,
}

fn provider(kid: &str) -> Provider {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    // Uncompressed point: 0x04 || x || y.
    let point = pair.public_key_raw().to_vec();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
    }]});
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, jwks.to_string().as_bytes()).unwrap();
    Provider {
        signing: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        public_point: point,
        jwks: file,
    }
}

fn jwks_settings(p: &Provider) -> AuthSettings {
    AuthSettings {
        keys: Some(KeySource::JwksFile(p.jwks.path().to_path_buf())),
        ..AuthSettings::default()
    }
}

#[tokio::test]
async fn es256_tokens_verify_against_the_jwks_and_hs256_confusion_does_not() {
    let idp = provider("key-1");
    let auth = Authenticator::new(&jwks_settings(&idp)).await.unwrap();
    let c = claims(Role::Merchant);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("key-1".into());
    let good = jsonwebtoken::encode(&header, &c, &idp.signing).unwrap();
    assert_eq!(auth.verify(&good).unwrap().role, Role::Merchant);

    // Unknown kid: no key.
    header.kid = Some("key-2".into());
    let other_kid = jsonwebtoken::encode(&header, &c, &idp.signing).unwrap();
    assert_eq!(reason(auth.verify(&other_kid)), "no key for this token");

    // Another provider's key under the same kid: bad signature.
    let stranger = provider("key-1");
    header.kid = Some("key-1".into());
    let forged = jsonwebtoken::encode(&header, &c, &stranger.signing).unwrap();
    assert_eq!(reason(auth.verify(&forged)), "bad signature");

    // HS/RS confusion: HS256 keyed with the public key the JWKS publishes.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("key-1".into());
    let confused =
        jsonwebtoken::encode(&hs, &c, &EncodingKey::from_secret(&idp.public_point)).unwrap();
    assert!(
        reason(auth.verify(&confused)).contains("not accepted"),
        "HS256 against an ES256 key"
    );

    // And an HS256 verifier refuses an ES256 token.
    let dev = hs256().await;
    header.kid = None;
    let es = jsonwebtoken::encode(&header, &c, &idp.signing).unwrap();
    assert!(reason(dev.verify(&es)).contains("not accepted"));
}

#[tokio::test]
async fn refresh_picks_up_a_rotated_jwks() {
    let old = provider("old");
    let auth = Authenticator::new(&jwks_settings(&old)).await.unwrap();
    let new = provider("new");
    std::fs::copy(new.jwks.path(), old.jwks.path()).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("new".into());
    let token = jsonwebtoken::encode(&header, &claims(Role::Operator), &new.signing).unwrap();
    assert!(auth.verify(&token).is_err(), "not before the refresh");
    auth.refresh().await.unwrap();
    assert_eq!(auth.verify(&token).unwrap().role, Role::Operator);
}

#[test]
fn settings_take_one_key_source_and_never_print_the_secret() {
    use crate::settings::Sources;
    #[derive(Deserialize)]
    struct Vars {
        #[serde(flatten)]
        auth: AuthVars,
    }
    let load = |vars: &[(&str, &str)]| {
        let v: Vars = Sources::default()
            .vars(vars.iter().copied())
            .load()
            .unwrap();
        let mut s = AuthSettings::default();
        s.apply(v.auth);
        s.check().map(|()| s)
    };
    let s = load(&[
        ("ORDERSAGA_AUTH_ISSUER", "https://idp.example"),
        ("ORDERSAGA_AUTH_AUDIENCE", "shop"),
        ("ORDERSAGA_AUTH_HS256_SECRET", SECRET),
    ])
    .unwrap();
    assert_eq!(s.issuer, "https://idp.example");
    assert_eq!(s.audience, "shop");
    assert_eq!(s.keys, Some(KeySource::Hs256(Secret::new(SECRET))));
    assert!(!format!("{s:?}").contains(SECRET));
    let s = load(&[("ORDERSAGA_AUTH_JWKS_URL", "https://idp.example/jwks")]).unwrap();
    assert_eq!(
        s.keys,
        Some(KeySource::JwksUrl("https://idp.example/jwks".into()))
    );
    assert_eq!(load(&[]).unwrap(), AuthSettings::default());
    assert!(
        load(&[
            ("ORDERSAGA_AUTH_HS256_SECRET", SECRET),
            ("ORDERSAGA_AUTH_JWKS_FILE", "/jwks.json"),
        ])
        .is_err()
    );
}
