//! ConfigDBConnector's field encoding: list values in `name@` fields, `NULL` placeholders.
//!
//! `raw_to_typed` / `typed_to_raw` of sonic-swss-common `configdb.h`. One deliberate
//! difference: an empty `name@` value decodes to an empty list (Python gives `[""]`), so that
//! an empty list round-trips.

use std::collections::BTreeMap;

use crate::db::{Fields, NULL_FIELD};

/// A decoded field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// A plain field.
    Str(String),
    /// A list field, stored as `name@` = comma-joined items.
    List(Vec<String>),
}

/// Decodes raw fields: drops `NULL`, turns `name@` into `name` with a list value.
pub fn raw_to_typed(raw: &Fields) -> BTreeMap<String, FieldValue> {
    raw.iter()
        .filter(|(name, _)| name.as_str() != NULL_FIELD)
        .map(|(name, value)| match name.strip_suffix('@') {
            Some(base) => {
                let items = if value.is_empty() {
                    Vec::new()
                } else {
                    value.split(',').map(str::to_string).collect()
                };
                (base.to_string(), FieldValue::List(items))
            }
            None => (name.clone(), FieldValue::Str(value.clone())),
        })
        .collect()
}

/// Encodes typed fields: lists become `name@` = comma-joined; no fields becomes the
/// placeholder `NULL`=`NULL`.
pub fn typed_to_raw(typed: &BTreeMap<String, FieldValue>) -> Fields {
    if typed.is_empty() {
        return Fields::from([(NULL_FIELD.to_string(), NULL_FIELD.to_string())]);
    }
    typed
        .iter()
        .map(|(name, value)| match value {
            FieldValue::Str(s) => (name.clone(), s.clone()),
            FieldValue::List(items) => (format!("{name}@"), items.join(",")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_fields_and_null_placeholder_round_trip() {
        let raw = Fields::from([
            ("NULL".to_string(), "NULL".to_string()),
            ("ports@".to_string(), "Ethernet0,Ethernet4".to_string()),
            ("empty@".to_string(), String::new()),
            ("mtu".to_string(), "9100".to_string()),
        ]);
        let typed = raw_to_typed(&raw);
        assert_eq!(
            typed,
            BTreeMap::from([
                ("empty".to_string(), FieldValue::List(vec![])),
                (
                    "ports".to_string(),
                    FieldValue::List(vec!["Ethernet0".into(), "Ethernet4".into()])
                ),
                ("mtu".to_string(), FieldValue::Str("9100".into())),
            ])
        );
        let mut expected = raw.clone();
        expected.remove("NULL");
        assert_eq!(typed_to_raw(&typed), expected);
        assert_eq!(
            typed_to_raw(&BTreeMap::new()),
            Fields::from([("NULL".to_string(), "NULL".to_string())])
        );
    }
}
