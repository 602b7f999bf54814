//! What the OIDC end-to-end tests share: a real OpenID provider (oidc-provider on Node), the
//! dCache door double that accepts exactly the JWTs signed by that provider's keys, and the
//! `cta-data` binary run with an isolated home.

use std::path::PathBuf;
use std::process::{Command as StdCommand, Output};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::oidc::AUDIENCE;
use ctadata_testsupport::{DcacheConfig, DcacheDouble, JwtPolicy, OidcOptions, OidcProvider};
use tempfile::TempDir;

/// The exit code of authentication errors.
pub const AUTH: i32 = 4;

/// The provider, the door (with `/cta/hello.txt`) and a private directory with `home/` and
/// `config.toml` (profile `door`).
pub struct World {
    pub tmp: TempDir,
    pub idp: OidcProvider,
    pub door: DcacheDouble,
}

impl World {
    /// Starts the provider and the door; the profile logs in at the provider.
    pub fn new(opts: OidcOptions) -> World {
        let idp = OidcProvider::start(opts).expect("oidc-provider (tests/run-all.sh installs it)");
        let policy = JwtPolicy::from_jwks(&idp.jwks(), &idp.issuer(), AUDIENCE).unwrap();
        let door = DcacheDouble::start(DcacheConfig {
            jwt: Some(policy),
            ..Default::default()
        });
        door.put_file("/cta/hello.txt", b"hello\n");
        let w = World {
            tmp: TempDir::new().unwrap(),
            idp,
            door,
        };
        std::fs::create_dir_all(w.path("home/.config")).unwrap();
        w.write_config(&w.idp.issuer(), w.idp.client_id());
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Profile `door` with a login at `issuer` as `client_id`.
    pub fn write_config(&self, issuer: &str, client_id: &str) {
        self.write_profile(&format!(
            "issuer = \"{issuer}\"\nclient_id = \"{client_id}\"\nscope = \"openid offline_access\"\nrefresh_margin = 1\n"
        ));
    }

    /// Profile `door` on the door, with `oidc` as its `[oidc]` section.
    pub fn write_profile(&self, oidc: &str) {
        let cfg = format!(
            "[profiles.door]\nbackend = \"dcache\"\nurl = \"{}\"\n[profiles.door.oidc]\n{oidc}",
            self.door.url()
        );
        std::fs::write(self.path("config.toml"), cfg).unwrap();
    }

    /// `cta-data --config CFG --profile door` with only PATH and the private home set.
    pub fn cmd(&self) -> StdCommand {
        let mut c = StdCommand::new(cargo_bin("cta-data"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_RUNTIME_DIR", self.path("home/run"))
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["--profile", "door"]);
        c
    }
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), err(o));
}
