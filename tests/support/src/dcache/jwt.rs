//! Bearer tokens the way dCache checks them from an OpenID provider: an RS256 JWT whose
//! signature verifies with one of the provider's JWKS keys, with the right issuer and
//! audience, not expired.

use base64::Engine;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};

/// What a token must satisfy.
#[derive(Debug, Clone)]
pub struct JwtPolicy {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud` (one of them when it is a list).
    pub audience: String,
    keys: Vec<(Option<String>, Vec<u8>, Vec<u8>)>,
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("bad base64url: {e}"))
}

impl JwtPolicy {
    /// A policy from the provider's JWKS document (RSA keys only).
    pub fn from_jwks(jwks_json: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(jwks_json).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let mut keys = Vec::new();
        for k in v["keys"].as_array().ok_or("JWKS without keys")? {
            if k["kty"] != "RSA" {
                continue;
            }
            let n = b64(k["n"].as_str().ok_or("RSA key without n")?)?;
            let e = b64(k["e"].as_str().ok_or("RSA key without e")?)?;
            keys.push((k["kid"].as_str().map(str::to_string), n, e));
        }
        if keys.is_empty() {
            return Err("JWKS holds no RSA key".into());
        }
        Ok(Self {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            keys,
        })
    }

    /// Checks a token; the error says why it is refused.
    pub fn check(&self, token: &str) -> Result<(), String> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT".into());
        };
        let header: serde_json::Value =
            serde_json::from_slice(&b64(h)?).map_err(|e| format!("bad header: {e}"))?;
        if header["alg"] != "RS256" {
            return Err(format!("unsupported alg {}", header["alg"]));
        }
        let kid = header["kid"].as_str();
        let sig = b64(s)?;
        let signed = format!("{h}.{p}");
        let verified = self
            .keys
            .iter()
            .filter(|(k, _, _)| kid.is_none() || k.as_deref() == kid)
            .any(|(_, n, e)| {
                RsaPublicKeyComponents { n, e }
                    .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &sig)
                    .is_ok()
            });
        if !verified {
            return Err("signature does not verify".into());
        }
        let claims: serde_json::Value =
            serde_json::from_slice(&b64(p)?).map_err(|e| format!("bad payload: {e}"))?;
        if claims["iss"].as_str() != Some(self.issuer.as_str()) {
            return Err(format!("wrong issuer {}", claims["iss"]));
        }
        let aud_ok = match &claims["aud"] {
            serde_json::Value::String(a) => *a == self.audience,
            serde_json::Value::Array(a) => {
                a.iter().any(|x| x.as_str() == Some(self.audience.as_str()))
            }
            _ => false,
        };
        if !aud_ok {
            return Err(format!("wrong audience {}", claims["aud"]));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match claims["exp"].as_u64() {
            Some(exp) if exp > now => Ok(()),
            Some(_) => Err("expired".into()),
            None => Err("no exp".into()),
        }
    }
}
