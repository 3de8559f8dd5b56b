//! The fake API server's state: an in-memory object store with resource versions, an event
//! history for watches, and typed helpers that tests (and the emulated kubelet) use directly.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, PodStatus};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};

use super::selector::{FieldSelector, LabelSelector, labels_of};

/// The resource types the fake server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Node,
    ConfigMap,
    Pod,
    DaemonSet,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Resource::Node,
        Resource::ConfigMap,
        Resource::Pod,
        Resource::DaemonSet,
    ];

    pub fn plural(self) -> &'static str {
        match self {
            Resource::Node => "nodes",
            Resource::ConfigMap => "configmaps",
            Resource::Pod => "pods",
            Resource::DaemonSet => "daemonsets",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Node => "Node",
            Resource::ConfigMap => "ConfigMap",
            Resource::Pod => "Pod",
            Resource::DaemonSet => "DaemonSet",
        }
    }

    /// `apiVersion` of the objects (`v1` or `apps/v1`).
    pub fn api_version(self) -> &'static str {
        match self {
            Resource::Node | Resource::ConfigMap | Resource::Pod => "v1",
            Resource::DaemonSet => "apps/v1",
        }
    }

    pub fn namespaced(self) -> bool {
        !matches!(self, Resource::Node)
    }

    /// Whether writes to the main endpoint keep `status` (it is written through `/status`).
    pub fn has_status_subresource(self) -> bool {
        !matches!(self, Resource::ConfigMap)
    }

    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Resource::Node => &["no"],
            Resource::ConfigMap => &["cm"],
            Resource::Pod => &["po"],
            Resource::DaemonSet => &["ds"],
        }
    }

    /// The resource served at `<api_version>/<plural>`.
    pub fn from_path(api_version: &str, plural: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.api_version() == api_version && r.plural() == plural)
    }
}

/// Kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the store, in resource-version order.
#[derive(Debug, Clone)]
pub struct StoreEvent {
    pub resource_version: u64,
    pub event_type: EventType,
    pub resource: Resource,
    pub namespace: String,
    pub name: String,
    /// The object before the change (`None` for creations).
    pub old: Option<Value>,
    /// The object after the change (the last state for deletions).
    pub object: Value,
}

/// An error the API server reports as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(resource: Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource.plural()),
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

type Key = (Resource, String, String);

const HISTORY_LIMIT: usize = 4096;

#[derive(Debug, Default)]
struct Inner {
    resource_version: u64,
    uid: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<StoreEvent>,
    /// Resource version of the newest event evicted from `history`.
    history_floor: u64,
}

/// The shared, inspectable object store.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<StoreEvent>,
    changed: watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        let (changed, _) = watch::channel(0);
        Self {
            inner: Mutex::new(Inner::default()),
            events,
            changed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is one insert).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current (latest) resource version.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    /// Waits until `pred` holds, re-checking after each change; false on timeout.
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&Store) -> bool) -> bool {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return pred(self),
            }
        }
    }

    // ----- generic object operations (used by the HTTP layer) -----

    pub fn get(&self, res: Resource, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(res, ns_of(res, ns), name.to_string()))
            .cloned()
    }

    /// Objects of `res` in namespace `ns` (all namespaces when `None`) matching the selectors,
    /// and the resource version of the list.
    pub fn list(
        &self,
        res: Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((r, n, _), obj)| {
                *r == res
                    && ns.is_none_or(|want| *n == ns_of(res, want))
                    && labels.matches(&labels_of(obj))
                    && fields.matches(obj)
            })
            .map(|(_, obj)| obj.clone())
            .collect();
        (items, inner.resource_version)
    }

    /// Creates an object; `ns` is the namespace from the URL (ignored for cluster objects).
    pub fn create(&self, res: Resource, ns: &str, mut obj: Value) -> Result<Value, ApiError> {
        check_kind(res, &obj)?;
        let ns = ns_of(res, ns);
        let mut inner = self.lock();
        let meta = metadata_mut(&mut obj)?;
        if res.namespaced() {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(format!(
                        "the namespace of the provided object ({n}) does not match the namespace sent on the request ({ns})"
                    )));
                }
                _ => {
                    meta.insert("namespace".into(), Value::String(ns.clone()));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    inner.uid += 1;
                    let n = format!("{prefix}{:05x}", inner.uid);
                    meta.insert("name".into(), Value::String(n.clone()));
                    n
                }
                _ => return Err(ApiError::invalid("metadata.name: Required value")),
            },
        };
        let key = (res, ns.clone(), name.clone());
        if inner.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", res.plural()),
            ));
        }
        validate_object(&obj)?;
        inner.uid += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", inner.uid);
        let meta = metadata_mut(&mut obj)?;
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        if matches!(res, Resource::DaemonSet | Resource::Pod) {
            meta.insert("generation".into(), json!(1));
        }
        set_kind(res, &mut obj);
        Ok(self.commit(&mut inner, EventType::Added, key, None, obj))
    }

    /// Replaces an object (PUT). `status_only` is the `/status` subresource.
    pub fn replace(
        &self,
        res: Resource,
        ns: &str,
        name: &str,
        new: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        check_kind(res, &new)?;
        let key = (res, ns_of(res, ns), name.to_string());
        let mut inner = self.lock();
        let old = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))?;
        check_precondition(&old, &new, name, res)?;
        let merged = combine(res, &old, new, status_only)?;
        Ok(self.commit(&mut inner, EventType::Modified, key, Some(old), merged))
    }

    /// Applies a JSON merge patch (RFC 7386). `status_only` is the `/status` subresource.
    pub fn merge_patch(
        &self,
        res: Resource,
        ns: &str,
        name: &str,
        patch: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        if !patch.is_object() {
            return Err(ApiError::bad_request(
                "merge patch body must be a JSON object",
            ));
        }
        let key = (res, ns_of(res, ns), name.to_string());
        let mut inner = self.lock();
        let old = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))?;
        check_precondition(&old, patch, name, res)?;
        let mut new = old.clone();
        apply_merge_patch(&mut new, patch);
        let merged = combine(res, &old, new, status_only)?;
        Ok(self.commit(&mut inner, EventType::Modified, key, Some(old), merged))
    }

    /// Changes an object in place as a test or an emulated controller would (no subresource
    /// rules, no validation of the change).
    pub fn update_with(
        &self,
        res: Resource,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let key = (res, ns_of(res, ns), name.to_string());
        let mut inner = self.lock();
        let old = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))?;
        let mut new = old.clone();
        f(&mut new);
        set_kind(res, &mut new);
        Ok(self.commit(&mut inner, EventType::Modified, key, Some(old), new))
    }

    pub fn delete(&self, res: Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        let key = (res, ns_of(res, ns), name.to_string());
        let mut inner = self.lock();
        let old = inner
            .objects
            .remove(&key)
            .ok_or_else(|| ApiError::not_found(res, name))?;
        let mut obj = old.clone();
        Ok(self.commit_deleted(&mut inner, key, &mut obj, old))
    }

    /// Starts a watch: the events to send first and a receiver for later ones, taken atomically.
    /// `from` is the client's `resourceVersion` (`None`/0: synthetic ADDED for every object).
    pub fn watch_start(
        &self,
        res: Resource,
        from: Option<u64>,
    ) -> Result<(Vec<StoreEvent>, broadcast::Receiver<StoreEvent>), ApiError> {
        let inner = self.lock();
        let rx = self.events.subscribe();
        let initial = match from {
            None | Some(0) => inner
                .objects
                .iter()
                .filter(|((r, _, _), _)| *r == res)
                .map(|((r, ns, name), obj)| StoreEvent {
                    resource_version: inner.resource_version,
                    event_type: EventType::Added,
                    resource: *r,
                    namespace: ns.clone(),
                    name: name.clone(),
                    old: None,
                    object: obj.clone(),
                })
                .collect(),
            Some(rv) => {
                if rv < inner.history_floor {
                    return Err(ApiError::new(
                        410,
                        "Expired",
                        format!("too old resource version: {rv} ({})", inner.history_floor),
                    ));
                }
                inner
                    .history
                    .iter()
                    .filter(|e| e.resource == res && e.resource_version > rv)
                    .cloned()
                    .collect()
            }
        };
        Ok((initial, rx))
    }

    fn commit(
        &self,
        inner: &mut Inner,
        event_type: EventType,
        key: Key,
        old: Option<Value>,
        mut obj: Value,
    ) -> Value {
        inner.resource_version += 1;
        let rv = inner.resource_version;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        inner.objects.insert(key.clone(), obj.clone());
        self.record(inner, event_type, key, old, obj.clone());
        obj
    }

    fn commit_deleted(&self, inner: &mut Inner, key: Key, obj: &mut Value, old: Value) -> Value {
        inner.resource_version += 1;
        let rv = inner.resource_version;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        self.record(inner, EventType::Deleted, key, Some(old), obj.clone());
        obj.clone()
    }

    fn record(
        &self,
        inner: &mut Inner,
        event_type: EventType,
        key: Key,
        old: Option<Value>,
        obj: Value,
    ) {
        let event = StoreEvent {
            resource_version: inner.resource_version,
            event_type,
            resource: key.0,
            namespace: key.1,
            name: key.2,
            old,
            object: obj,
        };
        inner.history.push_back(event.clone());
        while inner.history.len() > HISTORY_LIMIT {
            if let Some(e) = inner.history.pop_front() {
                inner.history_floor = e.resource_version;
            }
        }
        // Nobody listening is fine.
        let _ = self.events.send(event);
        self.changed.send_replace(inner.resource_version);
    }

    /// Creates or replaces an object wholesale (tests seeding state).
    pub fn put(&self, res: Resource, ns: &str, obj: Value) -> Result<Value, ApiError> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("metadata.name: Required value"))?
            .to_string();
        if self.get(res, ns, &name).is_some() {
            self.update_with(res, ns, &name, |o| {
                let keep = o.get("metadata").cloned();
                *o = obj;
                if let (Some(Value::Object(keep)), Some(Value::Object(meta))) =
                    (keep, o.get_mut("metadata"))
                {
                    for k in ["uid", "creationTimestamp", "namespace"] {
                        if let Some(v) = keep.get(k) {
                            meta.insert(k.into(), v.clone());
                        }
                    }
                }
            })
        } else {
            self.create(res, ns, obj)
        }
    }

    // ----- typed helpers for tests and the emulated kubelet -----

    /// Adds (or replaces) a node with `labels` and a Ready condition.
    pub fn add_node(&self, name: &str, labels: &[(&str, &str)], ready: bool) -> Node {
        let labels: Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {},
            "status": {"conditions": [ready_condition(ready)]},
        });
        let stored = self.put(Resource::Node, "", obj).unwrap_or_else(|e| {
            panic!("fake kube: cannot add node {name}: {e}");
        });
        from_value(stored)
    }

    pub fn node(&self, name: &str) -> Option<Node> {
        self.get(Resource::Node, "", name).map(from_value)
    }

    /// Labels of node `name`, `None` when the node does not exist.
    pub fn node_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.get(Resource::Node, "", name).map(|o| labels_of(&o))
    }

    /// Replaces the node's labels wholesale.
    pub fn set_node_labels(&self, name: &str, labels: &[(&str, &str)]) -> Result<(), ApiError> {
        let labels: Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        self.update_with(Resource::Node, "", name, |o| {
            o["metadata"]["labels"] = Value::Object(labels);
        })
        .map(drop)
    }

    /// Sets the node's `Ready` condition to True or False.
    pub fn set_node_ready(&self, name: &str, ready: bool) -> Result<(), ApiError> {
        self.update_with(Resource::Node, "", name, |o| {
            let mut conditions: Vec<Value> = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("Ready"));
            conditions.push(ready_condition(ready));
            if !o.get("status").is_some_and(Value::is_object) {
                o["status"] = json!({});
            }
            o["status"]["conditions"] = Value::Array(conditions);
        })
        .map(drop)
    }

    pub fn delete_node(&self, name: &str) -> Result<(), ApiError> {
        self.delete(Resource::Node, "", name).map(drop)
    }

    pub fn nodes(&self) -> Vec<Node> {
        self.list_typed(Resource::Node, None)
    }

    /// Creates or replaces config map `ns/name` with `data`.
    pub fn set_configmap(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        let data: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let obj = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns},
            "data": data,
        });
        self.put(Resource::ConfigMap, ns, obj)
            .unwrap_or_else(|e| panic!("fake kube: cannot set config map {ns}/{name}: {e}"));
    }

    pub fn delete_configmap(&self, ns: &str, name: &str) -> Result<(), ApiError> {
        self.delete(Resource::ConfigMap, ns, name).map(drop)
    }

    pub fn configmap(&self, ns: &str, name: &str) -> Option<ConfigMap> {
        self.get(Resource::ConfigMap, ns, name).map(from_value)
    }

    /// Sets `default/kube-root-ca.crt` to `{"ca.crt": pem}`.
    pub fn set_root_ca(&self, pem: &str) {
        self.set_configmap("default", "kube-root-ca.crt", &[("ca.crt", pem)]);
    }

    pub fn daemonsets(&self, ns: Option<&str>) -> Vec<DaemonSet> {
        self.list_typed(Resource::DaemonSet, ns)
    }

    pub fn daemonset(&self, ns: &str, name: &str) -> Option<DaemonSet> {
        self.get(Resource::DaemonSet, ns, name).map(from_value)
    }

    /// Creates a daemon set as `kubectl apply` would (through the same checks as the API).
    pub fn create_daemonset(&self, ds: &DaemonSet) -> Result<DaemonSet, ApiError> {
        let ns = ds
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let obj = serde_json::to_value(ds).map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.create(Resource::DaemonSet, &ns, obj).map(from_value)
    }

    pub fn delete_daemonset(&self, ns: &str, name: &str) -> Result<(), ApiError> {
        self.delete(Resource::DaemonSet, ns, name).map(drop)
    }

    pub fn pods(&self, ns: Option<&str>) -> Vec<Pod> {
        self.list_typed(Resource::Pod, ns)
    }

    pub fn pod(&self, ns: &str, name: &str) -> Option<Pod> {
        self.get(Resource::Pod, ns, name).map(from_value)
    }

    /// Creates a pod (the emulated kubelet / daemon-set controller uses this).
    pub fn create_pod(&self, pod: &Pod) -> Result<Pod, ApiError> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let obj = serde_json::to_value(pod).map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.create(Resource::Pod, &ns, obj).map(from_value)
    }

    /// Replaces the pod's status (what a kubelet reports).
    pub fn set_pod_status(
        &self,
        ns: &str,
        name: &str,
        status: &PodStatus,
    ) -> Result<Pod, ApiError> {
        let status =
            serde_json::to_value(status).map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.update_with(Resource::Pod, ns, name, |o| o["status"] = status)
            .map(from_value)
    }

    pub fn delete_pod(&self, ns: &str, name: &str) -> Result<(), ApiError> {
        self.delete(Resource::Pod, ns, name).map(drop)
    }

    fn list_typed<T: serde::de::DeserializeOwned>(
        &self,
        res: Resource,
        ns: Option<&str>,
    ) -> Vec<T> {
        self.list(
            res,
            ns,
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .0
        .into_iter()
        .map(from_value)
        .collect()
    }
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> T {
    // Everything in the store went through JSON validation of its own type, so this holds
    // unless a test stored an ill-typed object on purpose; panicking then is the right report.
    serde_json::from_value(v)
        .unwrap_or_else(|e| panic!("fake kube: stored object does not parse: {e}"))
}

fn ns_of(res: Resource, ns: &str) -> String {
    if res.namespaced() {
        if ns.is_empty() {
            "default".into()
        } else {
            ns.into()
        }
    } else {
        String::new()
    }
}

fn ready_condition(ready: bool) -> Value {
    json!({
        "type": "Ready",
        "status": if ready { "True" } else { "False" },
        "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
        "message": if ready { "kubelet is posting ready status" } else { "kubelet stopped posting node status" },
        "lastHeartbeatTime": now_rfc3339(),
        "lastTransitionTime": now_rfc3339(),
    })
}

fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let o = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("object must be a JSON object"))?;
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be a JSON object"))
}

fn check_kind(res: Resource, obj: &Value) -> Result<(), ApiError> {
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && kind != res.kind()
    {
        return Err(ApiError::bad_request(format!(
            "kind {kind} does not match the resource {}",
            res.plural()
        )));
    }
    Ok(())
}

fn set_kind(res: Resource, obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        o.insert("kind".into(), Value::String(res.kind().into()));
        o.insert("apiVersion".into(), Value::String(res.api_version().into()));
    }
}

fn check_precondition(old: &Value, new: &Value, name: &str, res: Resource) -> Result<(), ApiError> {
    let want = new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let have = old
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    if let Some(want) = want
        && Some(want) != have
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                res.plural()
            ),
        ));
    }
    Ok(())
}

/// Builds the stored object from the old one and a client's new version, following the
/// subresource rules, and validates it.
fn combine(
    res: Resource,
    old: &Value,
    mut new: Value,
    status_only: bool,
) -> Result<Value, ApiError> {
    if status_only {
        let mut out = old.clone();
        out["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        return Ok(out);
    }
    if res.has_status_subresource() {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    // Identity fields are immutable.
    let meta = metadata_mut(&mut new)?;
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
    ] {
        match old.pointer(&format!("/metadata/{k}")) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.remove(k);
            }
        }
    }
    if matches!(res, Resource::DaemonSet | Resource::Pod) && old.get("spec") != new.get("spec") {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        new["metadata"]["generation"] = json!(generation + 1);
    }
    set_kind(res, &mut new);
    validate_object(&new)?;
    Ok(new)
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` removes, anything else replaces.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        apply_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn validate_object(obj: &Value) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !is_dns_subdomain(name) {
        return Err(ApiError::invalid(format!(
            "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
        )));
    }
    if let Some(labels) = obj.pointer("/metadata/labels") {
        let labels = labels
            .as_object()
            .ok_or_else(|| ApiError::invalid("metadata.labels: must be an object"))?;
        for (k, v) in labels {
            let Some(v) = v.as_str() else {
                return Err(ApiError::invalid(format!(
                    "metadata.labels: Invalid value: {v}: label values must be strings"
                )));
            };
            if !is_label_key(k) {
                return Err(ApiError::invalid(format!(
                    "metadata.labels: Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"
                )));
            }
            if !is_label_name(v, true) {
                return Err(ApiError::invalid(format!(
                    "metadata.labels: Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'"
                )));
            }
        }
    }
    Ok(())
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn is_label_name(s: &str, allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    let b = s.as_bytes();
    s.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name, false),
        None => is_label_name(k, false),
    }
}

/// The current UTC time as RFC 3339 with second precision.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_sets_overwrites_and_removes_with_null() {
        let mut obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        apply_merge_patch(
            &mut obj,
            &json!({"metadata": {"labels": {"a": "x", "b": null, "c": "3"}}}),
        );
        assert_eq!(obj, json!({"metadata": {"labels": {"a": "x", "c": "3"}}}));
    }

    #[test]
    fn writes_bump_resource_versions_and_invalid_labels_are_rejected() {
        let store = Store::new();
        store.add_node("n1", &[("a", "1")], true);
        let rv1 = store.resource_version();
        store
            .merge_patch(
                Resource::Node,
                "",
                "n1",
                &json!({"metadata": {"labels": {"b": "2"}}}),
                false,
            )
            .unwrap();
        assert!(store.resource_version() > rv1);
        let err = store
            .merge_patch(
                Resource::Node,
                "",
                "n1",
                &json!({"metadata": {"labels": {"b": "$(x)"}}}),
                false,
            )
            .unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            store
                .node_labels("n1")
                .unwrap()
                .get("b")
                .map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn timestamps_look_like_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.ends_with('Z'));
    }
}
