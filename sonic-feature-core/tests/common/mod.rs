//! Shared helpers of the core's scenario and property tests: builders for facts and a
//! rust-analyzer style trace comparison.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Display;

use sonic_feature_core::container::CommandFacts;
use sonic_feature_core::model::{
    AdminState, CurrentOwner, FeatureConfig, FeatureName, FeatureStatus, LabelKey, LabelValue,
    NodeLabels, RemoteState, ServerStatus, SetOwner, SystemState, Version,
};

pub const T: &str = "2020-12-08 22:59:57";

pub fn feat(name: &str) -> FeatureName {
    FeatureName::parse(name).unwrap()
}

pub fn ver(v: &str) -> Version {
    Version::parse(v).unwrap()
}

pub fn labels(pairs: &[(&str, &str)]) -> NodeLabels {
    pairs
        .iter()
        .map(|(k, v)| (LabelKey::parse(k).unwrap(), LabelValue::parse(v).unwrap()))
        .collect()
}

/// Compares a trace with the expected text, ignoring the common indentation of `expected` and
/// blank first/last lines, and prints both on mismatch.
pub fn check(actual: &str, expected: &str) {
    let lines: Vec<&str> = expected.lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let want: Vec<String> = lines
        .iter()
        .map(|l| {
            if l.len() >= indent {
                l[indent..].trim_end().to_owned()
            } else {
                String::new()
            }
        })
        .collect();
    let want = want.join("\n");
    let want = want.trim_matches('\n');
    let got = actual.trim_matches('\n');
    assert!(
        got == want,
        "trace mismatch\n--- expected\n{want}\n--- actual\n{got}\n---"
    );
}

/// One action per line.
pub fn trace<A: Display>(actions: &[A]) -> String {
    actions
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Builder of `container` command facts (`snmp`, locally owned, nothing running).
#[derive(Clone)]
pub struct Facts(pub CommandFacts);

impl Facts {
    pub fn new(name: &str) -> Self {
        Self(CommandFacts {
            feature: feat(name),
            config: FeatureConfig::default(),
            status: FeatureStatus::default(),
            server: ServerStatus::default(),
            kube_support: true,
            wall_time: T.to_owned(),
        })
    }
    pub fn owner(mut self, o: SetOwner) -> Self {
        self.0.config.set_owner = o;
        self
    }
    pub fn no_fallback(mut self) -> Self {
        self.0.config.fallback = false;
        self
    }
    pub fn state(mut self, s: AdminState) -> Self {
        self.0.config.state = Some(s);
        self
    }
    pub fn current(mut self, o: CurrentOwner) -> Self {
        self.0.status.current_owner = o;
        self
    }
    pub fn id(mut self, id: &str) -> Self {
        self.0.status.container_id = Some(id.to_owned());
        self
    }
    pub fn remote(mut self, r: RemoteState) -> Self {
        self.0.status.remote_state = r;
        self
    }
    pub fn system(mut self, s: SystemState) -> Self {
        self.0.status.system_state = Some(s);
        self
    }
    pub fn connected(mut self) -> Self {
        self.0.server.connected = true;
        self
    }
    pub fn without_kube_support(mut self) -> Self {
        self.0.kube_support = false;
        self
    }
}
