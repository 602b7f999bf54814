//! figment's errors turned into one configuration error naming where (file, variable, flag,
//! caller), which key, and what is wrong with it.

use figment::{Figment, Profile as FigmentProfile, Source};

use super::model::Config;
use crate::error::{Error, Result};

/// The whole configuration out of the layers so far, or the error saying what is wrong.
pub(super) fn extract(fig: &Figment) -> Result<Config> {
    fig.extract::<Config>().map_err(figment_error)
}

/// Turns figment's errors into one message naming the file (or variable), key and problem.
fn figment_error(err: figment::Error) -> Error {
    let mut lines = Vec::new();
    for e in err {
        let key = e
            .path
            .iter()
            .filter(|s| s.as_str() != "default")
            .cloned()
            .collect::<Vec<_>>()
            .join(".");
        let place = match &e.metadata {
            Some(md) => match &md.source {
                Some(Source::File(p)) => format!("in {}", p.display()),
                _ => {
                    let keys: Vec<&str> = key.split('.').collect();
                    let label = md.interpolate(&FigmentProfile::Default, &keys);
                    if label.starts_with("variable") || label.starts_with("flag") {
                        format!("in {label}")
                    } else if label.starts_with("given by") {
                        label
                    } else {
                        format!("in the {} settings", md.name)
                    }
                }
            },
            None => String::new(),
        };
        let what = describe_kind(&e.kind);
        if key.is_empty() {
            lines.push(format!("{place}: {what}"));
        } else {
            lines.push(format!("{place}: key '{key}': {what}"));
        }
    }
    Error::config(
        lines.join("; "),
        "fix or remove the setting; 'cta-data config show' prints what is in effect and where each value comes from",
    )
}

fn describe_kind(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::UnknownField(f, expected) => {
            format!(
                "unknown key '{f}' (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::InvalidType(actual, expected) => {
            format!("wrong type: found {actual}, expected {expected}")
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value: found {actual}, expected {expected}")
        }
        Kind::UnknownVariant(v, expected) => {
            format!(
                "unknown value '{v}' (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::MissingField(f) => format!("missing key '{f}'"),
        Kind::Message(m) => m.clone(),
        other => other.to_string(),
    }
}
