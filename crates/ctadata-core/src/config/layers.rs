//! The figment layers (built-in, caller keys, flags) and the provenance every value keeps:
//! each layer labels its keys, and [`origin_of`] reads the label back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile as FigmentProfile, Provider, Source};

use super::model::Config;
use super::LoadOptions;
use crate::error::{Error, Result};

/// The origin `config show` gives values passed as string keys by a program.
pub const GIVEN_BY_CALLER: &str = "given by the caller";

/// A figment layer whose values each know their origin's label.
pub(super) struct Layer {
    name: &'static str,
    source: Option<Source>,
    dict: Dict,
    labels: Arc<HashMap<String, String>>,
}

impl Layer {
    pub(super) fn new(name: &'static str) -> Self {
        Self {
            name,
            source: None,
            dict: Dict::new(),
            labels: Arc::new(HashMap::new()),
        }
    }

    /// Sets a dotted key to a string value, remembering its label.
    pub(super) fn set(&mut self, dotted: &str, value: Value, label: String) {
        let parts: Vec<&str> = dotted.split('.').collect();
        insert(&mut self.dict, &parts, value);
        Arc::get_mut(&mut self.labels)
            .expect("labels are not shared while building")
            .insert(dotted.to_string(), label);
    }
}

fn insert(dict: &mut Dict, parts: &[&str], value: Value) {
    match parts {
        [] => {}
        [last] => {
            dict.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let labels = self.labels.clone();
        let mut md =
            Metadata::named(self.name).interpolater(move |_p: &FigmentProfile, keys: &[&str]| {
                let k = keys.join(".");
                labels.get(&k).cloned().unwrap_or(k)
            });
        md.source = self.source.clone();
        md
    }

    fn data(&self) -> std::result::Result<Map<FigmentProfile, Dict>, figment::Error> {
        Ok(FigmentProfile::Default.collect(self.dict.clone()))
    }
}

/// The built-in profiles as the first layer.
pub(super) fn builtin_layer(cfg: &Config) -> Result<Layer> {
    let mut layer = Layer::new("built-in");
    let v = Value::serialize(cfg)
        .map_err(|e| Error::internal("the built-in profiles do not load").with_source(e))?;
    if let Value::Dict(_, d) = v {
        layer.dict = d;
    }
    Ok(layer)
}

/// A program's string keys (`url`, `oidc.issuer`) for profile `name`, each labelled
/// [`GIVEN_BY_CALLER`]. The values stay strings: the profile's types parse them, so a bad
/// value fails as it would in a file or a variable.
pub(super) fn caller_layer(name: &str, keys: &BTreeMap<String, String>) -> Layer {
    let mut layer = Layer::new("caller");
    for (k, v) in keys {
        layer.set(
            &format!("profiles.{name}.{}", k.trim()),
            Value::from(v.clone()),
            GIVEN_BY_CALLER.into(),
        );
    }
    layer
}

/// `--url`, `--ca-file` and `--token-file` for profile `name`, the last layer.
pub(super) fn flags_layer(opts: &LoadOptions, name: &str) -> Layer {
    let mut flags = Layer::new("command line");
    let key = |k: &str| format!("profiles.{name}.{k}");
    if let Some(u) = &opts.url {
        flags.set(&key("url"), Value::from(u.clone()), "flag --url".into());
    }
    if let Some(c) = &opts.ca_file {
        flags.set(
            &key("ca_file"),
            Value::from(c.display().to_string()),
            "flag --ca-file".into(),
        );
    }
    if let Some(t) = &opts.token_file {
        flags.set(
            &key("token_file"),
            Value::from(t.display().to_string()),
            "flag --token-file".into(),
        );
    }
    flags
}

/// Where a dotted key's value came from, as a human label.
pub(super) fn origin_of(fig: &Figment, dotted: &str) -> String {
    let Some(md) = fig.find_metadata(dotted) else {
        return "built-in".into();
    };
    match &md.source {
        Some(Source::File(p)) => format!("file {}", p.display()),
        _ if md.name == "built-in" => "built-in".into(),
        _ => {
            let keys: Vec<&str> = dotted.split('.').collect();
            md.interpolate(&FigmentProfile::Default, &keys)
        }
    }
}
