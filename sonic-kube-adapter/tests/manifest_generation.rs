//! DaemonSet manifests of a feature: golden YAML of snmp, round trip through k8s-openapi types,
//! node selectors, per-ASIC differences, validation, and the sonic-manifest binary.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::PodSpec;
use serde::Deserialize;
use sonic_kube_adapter::manifest::{
    FeatureRuntime, Instance, ManifestError, daemonsets, to_yaml_stream, write_manifests,
};

const SNMP_SPEC: &str = r#"
name: snmp
requires: [swss]
runtime:
  image: sonicdev-microsoft.azurecr.io/docker-snmp
  version: "1.0.1"
  mounts:
    - { host-path: /etc/sonic, container-path: /etc/sonic, read-only: true }
    - { host-path: /etc/localtime, container-path: /etc/localtime, read-only: true }
    - { host-path: /usr/share/sonic/device/current-platform, container-path: /usr/share/sonic/platform, read-only: true }
  env:
    SNMP_LOG_LEVEL: info
  sonic-version: SONiC.20201230.80
  platform: x86_64-kvm_x86_64-r0
  hwsku: Force10-S6000
"#;

const SNMP_GOLDEN: &str = "\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  labels:
    app: snmp-1-0-1
  name: snmp-1-0-1
spec:
  selector:
    matchLabels:
      app: snmp-1-0-1
  template:
    metadata:
      labels:
        app: snmp-1-0-1
    spec:
      containers:
      - env:
        - name: RUNTIME_OWNER
          value: kube
        - name: IMAGE_VERSION
          value: 1.0.1
        - name: SNMP_LOG_LEVEL
          value: info
        image: sonicdev-microsoft.azurecr.io/docker-snmp:1.0.1
        name: snmp
        volumeMounts:
        - mountPath: /var/run/redis
          name: mount0
        - mountPath: /etc/sonic
          name: mount1
          readOnly: true
        - mountPath: /etc/localtime
          name: mount2
          readOnly: true
        - mountPath: /usr/share/sonic/platform
          name: mount3
          readOnly: true
      hostNetwork: true
      nodeSelector:
        hwsku: Force10-S6000
        snmp_1.0.1_enabled: 'true'
        snmp_enabled: 'true'
        sonic_version: SONiC.20201230.80
        worker.sonic/platform: x86_64-kvm_x86_64-r0
      volumes:
      - hostPath:
          path: /var/run/redis
        name: mount0
      - hostPath:
          path: /etc/sonic
        name: mount1
      - hostPath:
          path: /etc/localtime
        name: mount2
      - hostPath:
          path: /usr/share/sonic/device/current-platform
        name: mount3
";

const LLDP_MULTI_ASIC: &str = r#"
name: lldp
runtime:
  image: docker-lldp
  version: "20201230.80"
  tag: latest
  privileged: true
  asic-count: 2
  global-scope: true
  per-asic-scope: true
  mounts:
    - { host-path: /etc/sonic, container-path: /etc/sonic, read-only: true }
    - { host-path: /var/run/lldp, container-path: /var/run/lldp, per-asic: true }
  kube-namespace: sonic
"#;

fn spec(text: &str) -> FeatureRuntime {
    FeatureRuntime::from_yaml(Path::new("spec.yaml"), text).unwrap()
}

fn spec_err(text: &str) -> String {
    match FeatureRuntime::from_yaml(Path::new("spec.yaml"), text) {
        Ok(d) => panic!("accepted: {d:?}"),
        Err(e) => e.to_string(),
    }
}

fn pod(ds: &DaemonSet) -> &PodSpec {
    ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn env(ds: &DaemonSet) -> Vec<(String, String)> {
    pod(ds).containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

/// Host path mounted at `container_path`.
fn host_path_of(ds: &DaemonSet, container_path: &str) -> String {
    let p = pod(ds);
    let mount = p.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == container_path)
        .unwrap();
    let volume = p
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    volume.host_path.as_ref().unwrap().path.clone()
}

fn parse_stream(text: &str) -> Vec<DaemonSet> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| DaemonSet::deserialize(doc).unwrap())
        .collect()
}

#[test]
fn snmp_manifest_matches_golden_yaml() {
    let list = daemonsets(&spec(SNMP_SPEC));
    assert_eq!(list.len(), 1);
    assert_eq!(to_yaml_stream(&list).unwrap(), SNMP_GOLDEN);
}

#[test]
fn manifests_parse_back_into_equal_daemonsets() {
    for text in [SNMP_SPEC, LLDP_MULTI_ASIC] {
        let list = daemonsets(&spec(text));
        let yaml = to_yaml_stream(&list).unwrap();
        assert_eq!(parse_stream(&yaml), list);
    }
}

#[test]
fn node_selector_gates_on_feature_and_version_labels_plus_extras() {
    let list = daemonsets(&spec(SNMP_SPEC));
    let selector = pod(&list[0]).node_selector.clone().unwrap();
    let expected: BTreeMap<String, String> = [
        ("snmp_enabled", "true"),
        ("snmp_1.0.1_enabled", "true"),
        ("sonic_version", "SONiC.20201230.80"),
        ("worker.sonic/platform", "x86_64-kvm_x86_64-r0"),
        ("hwsku", "Force10-S6000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(selector, expected);
}

#[test]
fn single_asic_feature_runs_once_without_namespace_id() {
    let desc = spec(SNMP_SPEC);
    assert_eq!(desc.instances(), vec![Instance::Host]);
    let ds = &daemonsets(&desc)[0];
    assert_eq!(
        env(ds),
        [
            ("RUNTIME_OWNER", "kube"),
            ("IMAGE_VERSION", "1.0.1"),
            ("SNMP_LOG_LEVEL", "info")
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(host_path_of(ds, "/var/run/redis"), "/var/run/redis");
    assert_eq!(pod(ds).host_network, Some(true));
    assert_eq!(pod(ds).containers[0].security_context, None);
}

#[test]
fn multi_asic_feature_gets_one_manifest_per_asic_plus_host_with_its_differences() {
    let list = daemonsets(&spec(LLDP_MULTI_ASIC));
    let names: Vec<_> = list
        .iter()
        .map(|d| d.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        ["lldp-20201230-80", "lldp0-20201230-80", "lldp1-20201230-80"]
    );
    let containers: Vec<_> = list
        .iter()
        .map(|d| pod(d).containers[0].name.clone())
        .collect();
    assert_eq!(containers, ["lldp", "lldp0", "lldp1"]);

    let ns_id = |ds: &DaemonSet| {
        env(ds)
            .into_iter()
            .find(|(k, _)| k == "NAMESPACE_ID")
            .unwrap()
            .1
    };
    assert_eq!(list.iter().map(ns_id).collect::<Vec<_>>(), ["", "0", "1"]);
    let redis: Vec<_> = list
        .iter()
        .map(|d| host_path_of(d, "/var/run/redis"))
        .collect();
    assert_eq!(
        redis,
        ["/var/run/redis", "/var/run/redis0", "/var/run/redis1"]
    );
    let lldp: Vec<_> = list
        .iter()
        .map(|d| host_path_of(d, "/var/run/lldp"))
        .collect();
    assert_eq!(lldp, ["/var/run/lldp", "/var/run/lldp0", "/var/run/lldp1"]);
    let sonic: Vec<_> = list.iter().map(|d| host_path_of(d, "/etc/sonic")).collect();
    assert_eq!(sonic, ["/etc/sonic"; 3]);

    for ds in &list {
        assert_eq!(ds.metadata.namespace.as_deref(), Some("sonic"));
        let c = &pod(ds).containers[0];
        assert_eq!(c.image.as_deref(), Some("docker-lldp:latest"));
        assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
        assert!(env(ds).contains(&("IMAGE_VERSION".to_owned(), "20201230.80".to_owned())));
        let sel = pod(ds).node_selector.as_ref().unwrap();
        assert_eq!(
            sel.get("lldp_20201230.80_enabled").map(String::as_str),
            Some("true")
        );
        // The selector of the DaemonSet matches its own pod template.
        let spec = ds.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.match_labels,
            spec.template.metadata.as_ref().unwrap().labels
        );
    }
}

#[test]
fn unquoted_versions_keep_their_text() {
    // YAML would read 20201230.80 as the float 20201230.8; the version must stay as written
    // because it is the image tag and part of a label.
    let desc = spec("name: snmp\nruntime:\n  image: docker-snmp\n  version: 20201230.80\n");
    assert_eq!(desc.runtime().version.as_str(), "20201230.80");
    assert_eq!(desc.image(), "docker-snmp:20201230.80");
}

#[test]
fn scopes_choose_the_instances() {
    let with = |extra: &str| {
        spec(&format!(
            "name: syncd\nruntime:\n  image: docker-syncd\n  version: \"1.0\"\n{extra}"
        ))
    };
    let per_asic_only = with("  asic-count: 3\n  global-scope: false\n  per-asic-scope: true\n");
    assert_eq!(
        per_asic_only.instances(),
        [Instance::Asic(0), Instance::Asic(1), Instance::Asic(2)]
    );
    let host_only = with("  asic-count: 3\n");
    assert_eq!(host_only.instances(), [Instance::Host]);
    let single_asic = with("  per-asic-scope: true\n");
    assert_eq!(single_asic.instances(), [Instance::Host]);
    let err = spec_err(
        "name: syncd\nruntime:\n  image: docker-syncd\n  version: \"1.0\"\n  asic-count: 2\n  \
         global-scope: false\n",
    );
    assert!(err.contains("field runtime.global-scope"), "{err}");
}

#[test]
fn kubernetes_names_are_derived_from_feature_names_kubernetes_rejects() {
    let desc =
        spec("name: dhcp_relay.v2\nruntime:\n  image: docker-dhcp-relay\n  version: \"2.0.0\"\n");
    let ds = &daemonsets(&desc)[0];
    assert_eq!(ds.metadata.name.as_deref(), Some("dhcp-relay-v2-2-0-0"));
    assert_eq!(pod(ds).containers[0].name, "dhcp-relay-v2");
    let sel = pod(ds).node_selector.as_ref().unwrap();
    assert!(sel.contains_key("dhcp_relay.v2_enabled"), "{sel:?}");
    assert!(sel.contains_key("dhcp_relay.v2_2.0.0_enabled"), "{sel:?}");
}

#[test]
fn invalid_descriptions_are_rejected_naming_the_field() {
    let base = "name: snmp\nruntime:\n  image: docker-snmp\n  version: \"1.0\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "  env: { RUNTIME_OWNER: local }\n",
            "field runtime.env.RUNTIME_OWNER",
        ),
        (
            "  env: { \"BAD-NAME\": x }\n",
            "invalid environment variable name",
        ),
        (
            "  mounts: [{ host-path: relative, container-path: /x }]\n",
            "must be absolute",
        ),
        (
            "  mounts: [{ host-path: /a, container-path: /var/run/redis }]\n",
            "field runtime.mounts[0].container-path",
        ),
        (
            "  node-selector: { hwsku: x }\n  hwsku: y\n",
            "field runtime.node-selector",
        ),
        (
            "  node-selector: { \"bad key!\": x }\n",
            "invalid label key",
        ),
        ("  hwsku: \"has space\"\n", "invalid label value"),
        ("  tag: \"-bad\"\n", "invalid image tag"),
        ("  kube-namespace: Sonic\n", "field runtime.kube-namespace"),
        ("  hostnetwork: true\n", "unknown field `hostnetwork`"),
    ];
    for (extra, expected) in cases {
        let err = spec_err(&format!("{base}{extra}"));
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
    let err = spec_err("name: snmp\nruntime:\n  image: docker-snmp\n  version: 1.x\n");
    assert!(err.contains("invalid version \"1.x\""), "{err}");
    let err = spec_err("name: snmp\nruntime:\n  image: \"Docker SNMP\"\n  version: \"1\"\n");
    assert!(err.contains("invalid image repository"), "{err}");
    let long = "a".repeat(32);
    let err = spec_err(&format!(
        "name: {long}\nruntime:\n  image: x\n  version: \"1.2.3.4.5.6.7.8.9.10.11.12.13\"\n"
    ));
    assert!(
        err.contains("field runtime.version: invalid label key"),
        "{err}"
    );
    assert!(err.contains("at most 63 characters"), "{err}");
    let err = spec_err("name: snmp\nrequires: [swss]\n");
    assert!(
        err.starts_with("feature spec spec.yaml has no runtime section"),
        "{err}"
    );
}

#[test]
fn write_manifests_puts_one_file_per_daemonset() {
    let dir = tempfile::tempdir().unwrap();
    let list = daemonsets(&spec(LLDP_MULTI_ASIC));
    let files = write_manifests(&dir.path().join("out"), &list).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "lldp-20201230-80.yaml",
            "lldp0-20201230-80.yaml",
            "lldp1-20201230-80.yaml"
        ]
    );
    for (file, ds) in files.iter().zip(&list) {
        let back: DaemonSet =
            serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(&back, ds);
    }
}

fn run_bin(args: &[&str]) -> std::process::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sonic-manifest"))
            .args(args)
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(30), out)
            .await
            .unwrap()
            .unwrap()
    })
}

#[test]
fn sonic_manifest_binary_prints_and_writes_the_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let spec_file = dir.path().join("lldp.yaml");
    std::fs::write(&spec_file, LLDP_MULTI_ASIC).unwrap();
    let expected = daemonsets(&spec(LLDP_MULTI_ASIC));

    let out = run_bin(&["print", spec_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        parse_stream(&String::from_utf8(out.stdout).unwrap()),
        expected
    );

    let out_dir = dir.path().join("manifests");
    let out = run_bin(&[
        "write",
        spec_file.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 3);

    let out = run_bin(&["print", dir.path().join("missing.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: cannot read feature spec"));
    let out = run_bin(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn errors_are_typed_for_callers() {
    let err = FeatureRuntime::from_file(Path::new("/nonexistent/spec.yaml")).unwrap_err();
    assert!(matches!(err, ManifestError::ReadSpec { .. }), "{err}");
}
