//! Node labels: the one merge patch that brings a node's labels to the desired set, and parsing
//! of the labels the node carries.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde_json::{Map, Value, json};
use sonic_feature_core::model::{LabelKey, LabelValue, NodeLabels};

use crate::error::KubeError;

/// The merge patch (`application/merge-patch+json`) that sets every label of `set` whose value
/// differs from `current`, and removes (`null`) every key of `remove` the node carries.
/// `None` when the node is already in sync. A key both in `set` and `remove` is set.
pub fn label_patch(
    current: &BTreeMap<String, String>,
    set: &NodeLabels,
    remove: &[LabelKey],
) -> Option<Value> {
    let mut labels = Map::new();
    for key in remove {
        if current.contains_key(key.as_str()) && !set.contains_key(key) {
            labels.insert(key.as_str().to_string(), Value::Null);
        }
    }
    for (key, value) in set {
        if current.get(key.as_str()).map(String::as_str) != Some(value.as_str()) {
            labels.insert(
                key.as_str().to_string(),
                Value::String(value.as_str().to_string()),
            );
        }
    }
    (!labels.is_empty()).then(|| json!({"metadata": {"labels": labels}}))
}

/// The labels of `node` as plain strings.
pub fn raw_labels(node: &DynamicObject) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

/// The labels of `node` as model types; a label the model rejects is an error naming it.
pub fn node_labels(
    node_name: &str,
    raw: &BTreeMap<String, String>,
) -> Result<NodeLabels, KubeError> {
    raw.iter()
        .map(|(k, v)| {
            let bad = |source| KubeError::InvalidNodeLabel {
                node: node_name.to_string(),
                source,
            };
            Ok((
                LabelKey::parse(k).map_err(bad)?,
                LabelValue::parse(v).map_err(bad)?,
            ))
        })
        .collect()
}

/// Whether the node reports condition `Ready` with status `True`.
pub fn is_ready(node: &DynamicObject) -> bool {
    node.data
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(|c| c.as_array())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(|t| t.as_str()) == Some("Ready")
                    && c.get("status").and_then(|t| t.as_str()) == Some("True")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> LabelKey {
        LabelKey::parse(k).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> NodeLabels {
        pairs
            .iter()
            .map(|(k, v)| (key(k), LabelValue::parse(v).unwrap()))
            .collect()
    }

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn patch_holds_only_changes_and_removals() {
        let current = raw(&[("foo", "bar"), ("hello", "world"), ("old", "x")]);
        let set = labels(&[("foo", "bar"), ("hello", "World"), ("test", "ok")]);
        let patch = label_patch(&current, &set, &[key("old"), key("absent")]).unwrap();
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"hello": "World", "test": "ok", "old": null}}})
        );
    }

    #[test]
    fn no_patch_when_in_sync() {
        let current = raw(&[("foo", "bar")]);
        assert_eq!(
            label_patch(&current, &labels(&[("foo", "bar")]), &[key("gone")]),
            None
        );
    }

    #[test]
    fn set_wins_over_remove_for_the_same_key() {
        let current = raw(&[("a", "1")]);
        let patch = label_patch(&current, &labels(&[("a", "2")]), &[key("a")]).unwrap();
        assert_eq!(patch, json!({"metadata": {"labels": {"a": "2"}}}));
    }
}
