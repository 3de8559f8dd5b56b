//! The label journal: the labels this node should carry (STATE_DB `KUBE_LABELS|SET`) against
//! what is known to be on the Kubernetes node, with every change not yet confirmed by the master
//! kept in order. Plain serializable data, so the daemon can persist it and nothing is lost
//! across master outages or daemon restarts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{LabelKey, LabelValue, NodeLabels};

/// One change of a desired label: set to a value, or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelChange {
    /// The label.
    pub key: LabelKey,
    /// The new value; `None` removes the label from the node.
    pub value: Option<LabelValue>,
}

/// A patch of node labels: keys to set and keys to remove.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelPatch {
    /// Labels to set.
    pub set: NodeLabels,
    /// Labels to remove.
    pub remove: Vec<LabelKey>,
}

impl LabelPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// Applies the patch to a label map.
    pub fn apply_to(&self, labels: &mut NodeLabels) {
        for k in &self.remove {
            labels.remove(k);
        }
        for (k, v) in &self.set {
            labels.insert(k.clone(), v.clone());
        }
    }
}

/// Desired labels, the keys this node manages, and the changes still to be pushed, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelJournal {
    /// The labels the node should carry (the last content of `KUBE_LABELS|SET` seen).
    pub desired: NodeLabels,
    /// Every key ever desired: a managed key that leaves `desired` is removed from the node;
    /// labels the node got elsewhere (kubelet, operators) are never touched.
    pub managed: BTreeSet<LabelKey>,
    /// Changes not yet confirmed on the node, in the order they were made.
    pub queue: Vec<LabelChange>,
    /// Number of queue entries covered by the patch in flight (not persisted: a restored journal
    /// resends them).
    #[serde(skip)]
    in_flight: usize,
    /// Labels known to be on the node, when known (not persisted).
    #[serde(skip)]
    node: Option<NodeLabels>,
}

impl LabelJournal {
    /// A journal restored from persisted data: whatever was in flight is sent again.
    pub fn restored(mut self) -> Self {
        self.in_flight = 0;
        self.node = None;
        self
    }

    /// Records a new complete set of desired labels; queues the differences in key order.
    /// Returns whether anything changed.
    pub fn observe_desired(&mut self, new: &NodeLabels) -> bool {
        if *new == self.desired {
            return false;
        }
        for k in self.desired.keys() {
            if !new.contains_key(k) {
                self.queue.push(LabelChange {
                    key: k.clone(),
                    value: None,
                });
            }
        }
        for (k, v) in new {
            if self.desired.get(k) != Some(v) {
                self.queue.push(LabelChange {
                    key: k.clone(),
                    value: Some(v.clone()),
                });
            }
            self.managed.insert(k.clone());
        }
        self.desired = new.clone();
        self.compact();
        true
    }

    /// Keeps only the latest queued change of each key outside the patch in flight. Patches net
    /// the queue by key (the later change wins), so this changes no patch; it bounds the queue
    /// (and every persisted copy of the journal) by the number of keys instead of the number of
    /// changes made while the master is slow or away.
    fn compact(&mut self) {
        let start = self.in_flight.min(self.queue.len());
        let mut seen = BTreeSet::new();
        let mut kept: Vec<LabelChange> = Vec::with_capacity(self.queue.len() - start);
        for c in self.queue.drain(start..).rev() {
            if seen.insert(c.key.clone()) {
                kept.push(c);
            }
        }
        kept.reverse();
        self.queue.extend(kept);
    }

    /// The labels read from the node after (re)joining: queue whatever makes the node match.
    pub fn resync(&mut self, node: NodeLabels) {
        self.in_flight = 0;
        self.queue.clear();
        for k in &self.managed {
            match (self.desired.get(k), node.get(k)) {
                (Some(d), n) if n != Some(d) => self.queue.push(LabelChange {
                    key: k.clone(),
                    value: Some(d.clone()),
                }),
                (None, Some(_)) => self.queue.push(LabelChange {
                    key: k.clone(),
                    value: None,
                }),
                (Some(_), _) | (None, None) => {}
            }
        }
        self.node = Some(node);
    }

    /// Whether a patch is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight > 0
    }

    /// The patch draining the whole queue in order (later changes of a key win), marking it in
    /// flight; `None` when a patch is already in flight or nothing needs pushing. Changes the
    /// node already reflects are left out; a queue of such changes alone is dropped.
    pub fn next_patch(&mut self) -> Option<LabelPatch> {
        if self.in_flight > 0 || self.queue.is_empty() {
            return None;
        }
        let mut net: BTreeMap<&LabelKey, Option<&LabelValue>> = BTreeMap::new();
        for c in &self.queue {
            net.insert(&c.key, c.value.as_ref());
        }
        let mut patch = LabelPatch::default();
        for (k, v) in net {
            let on_node = self.node.as_ref().map(|n| n.get(k));
            match (v, on_node) {
                (Some(v), Some(Some(n))) if n == v => {}
                (None, Some(None)) => {}
                (Some(v), _) => {
                    patch.set.insert(k.clone(), v.clone());
                }
                (None, _) => patch.remove.push(k.clone()),
            }
        }
        if patch.is_empty() {
            self.queue.clear();
            return None;
        }
        self.in_flight = self.queue.len();
        Some(patch)
    }

    /// The patch in flight was applied: drop the entries it covered.
    pub fn patched(&mut self) {
        let n = self.in_flight.min(self.queue.len());
        let mut net: BTreeMap<LabelKey, Option<LabelValue>> = BTreeMap::new();
        for c in self.queue.drain(..n) {
            net.insert(c.key, c.value);
        }
        if let Some(node) = self.node.as_mut() {
            for (k, v) in net {
                match v {
                    Some(v) => {
                        node.insert(k, v);
                    }
                    None => {
                        node.remove(&k);
                    }
                }
            }
        }
        self.in_flight = 0;
    }

    /// The patch in flight failed: keep every entry for the next attempt.
    pub fn patch_failed(&mut self) {
        self.in_flight = 0;
        // What is on the node is uncertain after a failed patch.
        self.node = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> NodeLabels {
        pairs
            .iter()
            .map(|(k, v)| (LabelKey::parse(k).unwrap(), LabelValue::parse(v).unwrap()))
            .collect()
    }

    #[test]
    fn changes_made_offline_are_drained_in_one_ordered_patch() {
        let mut j = LabelJournal::default();
        assert!(j.observe_desired(&labels(&[("a", "1"), ("b", "1")])));
        assert!(j.observe_desired(&labels(&[("a", "2")])));
        assert!(!j.observe_desired(&labels(&[("a", "2")])));
        let p = j.next_patch().unwrap();
        assert_eq!(p.set, labels(&[("a", "2")]));
        assert_eq!(p.remove, vec![LabelKey::parse("b").unwrap()]);
        assert!(j.next_patch().is_none());
        j.patched();
        assert!(j.queue.is_empty());
    }

    #[test]
    fn changes_made_while_a_patch_is_in_flight_survive_its_success() {
        let mut j = LabelJournal::default();
        j.observe_desired(&labels(&[("a", "1")]));
        let _ = j.next_patch().unwrap();
        j.observe_desired(&labels(&[("a", "1"), ("c", "x")]));
        j.patched();
        let p = j.next_patch().unwrap();
        assert_eq!(p.set, labels(&[("c", "x")]));
    }

    #[test]
    fn repeated_changes_of_a_key_keep_one_queued_entry_and_the_same_patches() {
        let mut j = LabelJournal::default();
        j.observe_desired(&labels(&[("a", "0"), ("b", "0")]));
        let first = j.next_patch().unwrap();
        assert_eq!(first.set, labels(&[("a", "0"), ("b", "0")]));
        // While that patch is in flight, a changes 1000 times and b once.
        for i in 1..=1000 {
            let v = i.to_string();
            let b = if i >= 500 { "1" } else { "0" };
            j.observe_desired(&labels(&[("a", &v), ("b", b)]));
        }
        // The in-flight entries stay; one entry per key follows.
        assert_eq!(j.queue.len(), 2 + 2, "{:?}", j.queue);
        j.patched();
        let p = j.next_patch().unwrap();
        assert_eq!(p.set, labels(&[("a", "1000"), ("b", "1")]));
        j.patched();
        assert!(j.queue.is_empty());
    }

    #[test]
    fn a_removal_after_a_set_of_the_same_key_stays_a_removal() {
        let mut j = LabelJournal::default();
        j.observe_desired(&labels(&[("a", "1"), ("b", "1")]));
        j.observe_desired(&labels(&[("b", "1")]));
        j.observe_desired(&labels(&[("a", "2"), ("b", "1")]));
        j.observe_desired(&labels(&[("b", "1")]));
        let p = j.next_patch().unwrap();
        assert_eq!(p.set, labels(&[("b", "1")]));
        assert_eq!(p.remove, vec![LabelKey::parse("a").unwrap()]);
        assert_eq!(j.queue.len(), 2, "{:?}", j.queue);
    }

    #[test]
    fn resync_touches_only_managed_keys() {
        let mut j = LabelJournal::default();
        j.observe_desired(&labels(&[("a", "1"), ("b", "1")]));
        j.observe_desired(&labels(&[("a", "1")]));
        j.resync(labels(&[
            ("a", "1"),
            ("b", "1"),
            ("kubernetes.io/arch", "amd64"),
        ]));
        let p = j.next_patch().unwrap();
        assert!(p.set.is_empty());
        assert_eq!(p.remove, vec![LabelKey::parse("b").unwrap()]);
    }

    #[test]
    fn journal_round_trips_through_json_and_resends_in_flight_entries() {
        let mut j = LabelJournal::default();
        j.observe_desired(&labels(&[("a", "1")]));
        let _ = j.next_patch();
        let text = serde_json::to_string(&j).unwrap();
        let back: LabelJournal = serde_json::from_str::<LabelJournal>(&text)
            .unwrap()
            .restored();
        assert_eq!(back.queue, j.queue);
        assert!(!back.in_flight());
    }
}
