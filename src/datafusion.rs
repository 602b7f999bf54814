//! DataFusion glue (feature `datafusion`): an object store registry that opens
//! `cta://<profile>/` stores on first use, so SQL can name any profile's files.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = ctadata::datafusion::CtaObjectStoreRegistry::default().session_context()?;
//! ctx.sql("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'cta://cta/lst/DL2/run1/'")
//!     .await?;
//! ctx.sql("SELECT count(*) FROM t").await?.show().await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ::datafusion::error::{DataFusionError, Result as DfResult};
use ::datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use ::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use ::datafusion::prelude::{SessionConfig, SessionContext};
use ctadata_object_store::object_store::ObjectStore;
use url::Url;

use crate::config::{self, EnvSnapshot, LoadOptions};
use crate::OpenOptions;

/// A DataFusion [`ObjectStoreRegistry`] that serves `cta://<profile>/...` URLs by opening the
/// named cta-data profile on first use; every other URL goes to DataFusion's default registry.
pub struct CtaObjectStoreRegistry {
    inner: DefaultObjectStoreRegistry,
    load: LoadOptions,
    open: OpenOptions,
    env: EnvSnapshot,
    opened: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl std::fmt::Debug for CtaObjectStoreRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opened: Vec<String> = match self.opened.lock() {
            Ok(m) => m.keys().cloned().collect(),
            Err(_) => Vec::new(),
        };
        f.debug_struct("CtaObjectStoreRegistry")
            .field("inner", &self.inner)
            .field("opened", &opened)
            .finish()
    }
}

impl Default for CtaObjectStoreRegistry {
    fn default() -> Self {
        Self::new(
            LoadOptions::default(),
            OpenOptions::default(),
            EnvSnapshot::from_process(),
        )
    }
}

impl CtaObjectStoreRegistry {
    /// A registry resolving profiles with `load` (its `profile` is replaced by the URL's host;
    /// `config_file`, `url`, `ca_file`, `token_file` apply to every profile) in `env`.
    pub fn new(load: LoadOptions, open: OpenOptions, env: EnvSnapshot) -> Self {
        Self {
            inner: DefaultObjectStoreRegistry::new(),
            load,
            open,
            env,
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// A DataFusion session whose runtime resolves `cta://` URLs through this registry.
    pub fn session_context(self) -> DfResult<SessionContext> {
        let rt = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(self))
            .build_arc()?;
        Ok(SessionContext::new_with_config_rt(SessionConfig::new(), rt))
    }

    fn open_profile(&self, name: &str) -> crate::Result<Arc<dyn ObjectStore>> {
        let mut opened = self
            .opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = opened.get(name) {
            return Ok(s.clone());
        }
        let load = self
            .load
            .clone()
            .with_profile(Some(name.to_string()))
            .with_profile_origin(Some(format!("the URL {}://{name}/", crate::SCHEME)));
        let profile = config::load(&load, &self.env)?;
        let (_, store) = crate::object_store(&profile, &self.open)?;
        let store: Arc<dyn ObjectStore> = store;
        opened.insert(name.to_string(), store.clone());
        Ok(store)
    }
}

impl ObjectStoreRegistry for CtaObjectStoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        // A store registered by hand wins over one opened from a profile.
        if let Ok(s) = self.inner.get_store(url) {
            return Ok(s);
        }
        match ctadata_object_store::split_url(url) {
            Some((profile, _)) => self.open_profile(&profile).map_err(|e| {
                let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
                DataFusionError::External(Box::new(e))
                    .context(format!("cannot open the store for {url}{hint}"))
            }),
            None => self.inner.get_store(url),
        }
    }
}
