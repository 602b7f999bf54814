//! The built-in profiles (`cta`, `cta-dev`, `platform`, `grid`, `local`): the first layer.

use std::collections::BTreeMap;

use super::env::EnvSnapshot;
use super::model::{BackendKind, Config, OidcSettings, Profile};

/// The built-in profiles, from the data center's public deployments.
pub fn builtin(env: &EnvSnapshot) -> Config {
    let oidc = |client: &str| OidcSettings {
        issuer: Some("https://keycloak.cta.cscs.ch/realms/master/".into()),
        client_id: Some(client.into()),
        ..Default::default()
    };
    let mut profiles = BTreeMap::new();
    profiles.insert(
        "cta".into(),
        Profile {
            backend: Some(BackendKind::Dcache),
            url: Some("https://dcache.cta.cscs.ch:2880".into()),
            oidc: Some(oidc("dcache-cta-cscs-ch-users")),
            ..Default::default()
        },
    );
    profiles.insert(
        "cta-dev".into(),
        Profile {
            backend: Some(BackendKind::Dcache),
            url: Some("https://dcache-dev.ctaodc.ch:2880".into()),
            oidc: Some(oidc("dcache-dev")),
            ..Default::default()
        },
    );
    profiles.insert(
        "platform".into(),
        Profile {
            backend: Some(BackendKind::Downloadservice),
            url: Some("https://platform.cta.cscs.ch/services/downloadservice/".into()),
            certificateservice_url: Some(
                "https://platform.cta.cscs.ch/services/certificateservice/".into(),
            ),
            ..Default::default()
        },
    );
    profiles.insert(
        "grid".into(),
        Profile {
            backend: Some(BackendKind::X509),
            url: Some("https://dcache.cta.cscs.ch:2880".into()),
            ..Default::default()
        },
    );
    profiles.insert(
        "local".into(),
        Profile {
            backend: Some(BackendKind::Local),
            root: Some(env.data_dir().join("local")),
            ..Default::default()
        },
    );
    Config {
        default_profile: Some("cta".into()),
        profiles,
    }
}
