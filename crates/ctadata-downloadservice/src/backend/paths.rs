//! Where paths are: the storage's top-level folders, the hub user and the user folder
//! `<lst|cta>/users/<user>/`, a path from the root for a read, the target of a write.

use ctadata_core::{Error, RemotePath, Result};
use ctadata_webdav::urls::redact;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::DownloadService;
use crate::client::read_limited;

/// The top-level folders known without asking (SPEC: paths start at `cta/` or `lst/`).
const KNOWN_TOP: [&str; 2] = ["cta", "lst"];

/// The hub user name as the service turns it into a folder name: lower-cased, with every
/// character outside `[0-1a-z]` replaced by `_` (sic: the digits 2 to 9 too).
pub fn user_folder_name(hub_user: &str) -> String {
    hub_user
        .to_lowercase()
        .chars()
        .map(|c| {
            if matches!(c, '0'..='1' | 'a'..='z') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl DownloadService {
    /// The top-level folders of the storage (from one listing of the root).
    async fn top_level(&self) -> Result<&Vec<String>> {
        self.top
            .get_or_try_init(|| async {
                match self.list_items(&RemotePath::root()).await {
                    Ok(items) => Ok(items
                        .iter()
                        .filter_map(|i| i.path.as_ref())
                        .filter(|p| !p.is_root())
                        .filter_map(|p| p.segments().next().map(str::to_string))
                        .collect()),
                    Err(e @ Error::Auth { .. }) => Err(e),
                    Err(e) => {
                        tracing::debug!(
                            "cannot list the storage root ({e}): assuming cta/ and lst/"
                        );
                        Ok(KNOWN_TOP.iter().map(|s| s.to_string()).collect())
                    }
                }
            })
            .await
    }

    /// True when `p` starts at a top-level folder of the storage (the root counts).
    async fn is_top_level(&self, p: &RemotePath) -> Result<bool> {
        let Some(first) = p.segments().next() else {
            return Ok(true);
        };
        if KNOWN_TOP.contains(&first) {
            return Ok(true);
        }
        Ok(self.top_level().await?.iter().any(|t| t == first))
    }

    /// The path from the storage root: top-level paths as they are, others in the user folder.
    pub(super) async fn absolute(&self, p: &RemotePath) -> Result<RemotePath> {
        if self.is_top_level(p).await? {
            return Ok(p.clone());
        }
        self.home().await?.join(p.as_str())
    }

    /// The hub user name: from the hub's `api/user`, else `JUPYTERHUB_USER`.
    async fn user_name(&self) -> Result<String> {
        let mut why = String::from("the hub's address is unknown");
        if let Some(url) = self.c.s.hub.api_user() {
            match self
                .c
                .s
                .send(&url, |c| {
                    c.get(url.clone())
                        .header(ACCEPT, "application/json")
                        .header(CONTENT_TYPE, "application/json")
                })
                .await
            {
                Ok((resp, _)) if resp.status().as_u16() == 200 => {
                    let body = read_limited(resp, 1 << 20).await;
                    match serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string))
                    {
                        Some(n) if !n.is_empty() => return Ok(n),
                        _ => why = format!("{} answered without a user name", redact(&url)),
                    }
                }
                Ok((resp, _)) => {
                    why = format!("{} answered HTTP {}", redact(&url), resp.status().as_u16())
                }
                Err(e @ Error::Auth { .. }) => return Err(e),
                Err(e) => why = e.to_string(),
            }
        }
        if let Some(u) = &self.env_user {
            tracing::debug!("hub user from JUPYTERHUB_USER ({why})");
            return Ok(u.clone());
        }
        Err(Error::config(
            format!("cannot tell your hub user name, which names your folder on the storage: {why}, and JUPYTERHUB_USER is not set"),
            "export JUPYTERHUB_USER=<your hub user name> (as shown in the hub's control panel)",
        ))
    }

    /// The user's folder `<lst|cta>/users/<user>`, where the service puts uploads.
    pub async fn home(&self) -> Result<RemotePath> {
        self.home
            .get_or_try_init(|| async {
                let name = self.user_name().await?;
                let folder = user_folder_name(&name);
                for top in ["lst", "cta"] {
                    let users = RemotePath::parse(&format!("{top}/users"))?;
                    if self.visible(&users).await? {
                        let home = users.join(&folder)?;
                        tracing::debug!(user = %name, home = %home, "user folder");
                        return Ok(home);
                    }
                }
                Err(Error::PermissionDenied {
                    path: "/lst/users and /cta/users".into(),
                    message: "neither is visible to you through the downloadservice, so it has no folder to put your files in; ask the CTA-CH DC team for write access".into(),
                })
            })
            .await
            .cloned()
    }

    /// `PROPFIND Depth: 0` through the passthrough: does the directory exist for this user?
    async fn visible(&self, abs: &RemotePath) -> Result<bool> {
        let (resp, token, _) = self
            .c
            .passthrough("PROPFIND", abs, true, |rb| {
                rb.header("depth", "0")
                    .header(CONTENT_TYPE, "application/xml; charset=utf-8")
                    .body(ctadata_webdav::propfind::PROPFIND_BODY)
            })
            .await?;
        match resp.status().as_u16() {
            207 | 200 => Ok(true),
            403 | 404 => Ok(false),
            _ => Err(self
                .c
                .failure(resp, &token, abs, "look at the folder")
                .await),
        }
    }

    /// The target of a write: (path from the root, path below the user folder).
    pub(super) async fn write_target(&self, p: &RemotePath) -> Result<(RemotePath, RemotePath)> {
        let home = self.home().await?;
        if let Some(rel) = p.strip_prefix(&home) {
            return Ok((p.clone(), RemotePath::parse(rel)?));
        }
        if self.is_top_level(p).await? {
            return Err(Error::PermissionDenied {
                path: p.to_string(),
                message: format!(
                    "the downloadservice writes only inside your user folder {home}/; give a path in it, or one relative to it ('results/x.h5' lands in {home}/results/x.h5)"
                ),
            });
        }
        Ok((home.join(p.as_str())?, p.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_folder_names_follow_the_service() {
        assert_eq!(user_folder_name("alice"), "alice");
        assert_eq!(
            user_folder_name("Volodymyr.Savchenko@epfl.ch"),
            "volodymyr_savchenko_epfl_ch"
        );
        assert_eq!(user_folder_name("bob-2024"), "bob__0__");
        assert_eq!(user_folder_name("a10b29"), "a10b__");
        assert_eq!(user_folder_name("Éva"), "_va");
    }
}
