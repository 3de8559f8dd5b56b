//! HTTP routing of the fake API server: discovery, CRUD, patch and watch over the [`Store`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::faults::{Fault, Faults, RecordedRequest, RequestLog};
use super::selector::{FieldSelector, LabelSelector, labels_of};
use super::store::{ApiError, EventType, Resource, Store, StoreEvent};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Returned by the service to make hyper drop the connection without an answer.
#[derive(Debug)]
pub(crate) struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for ResetConnection {}

#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub faults: Faults,
    pub log: RequestLog,
}

/// Decodes `a=b&c=d` (form encoding: `+` is a space).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn full(status: StatusCode, body: Vec<u8>, content_type: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *resp.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    full(status, v.to_string().into_bytes(), "application/json")
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}

/// Handles one request: log, faults, then the API.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    shutdown: watch::Receiver<u64>,
) -> Result<Response<Body>, ResetConnection> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| ResetConnection)?
        .to_bytes();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let decision = shared.faults.decide(&method, &path);
    shared.log.push(RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_string),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: body.clone(),
        fault: decision
            .action
            .clone()
            .or((!decision.delay.is_zero()).then_some(Fault::Slow(decision.delay))),
    });
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    match decision.action {
        Some(Fault::Reset) => return Err(ResetConnection),
        Some(Fault::Status(code)) => {
            let reason = match code {
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                _ => "InternalError",
            };
            let mut resp = error_response(&ApiError::new(code, reason, "injected fault"));
            if code == 429 {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            return Ok(resp);
        }
        Some(Fault::Slow(_)) | None => {}
    }
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok(route(
        &shared.store,
        &parts.method,
        &path,
        &query,
        &content_type,
        &body,
        shutdown,
    )
    .unwrap_or_else(|e| error_response(&e)))
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn route(
    store: &Arc<Store>,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    content_type: &str,
    body: &Bytes,
    shutdown: watch::Receiver<u64>,
) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    };
    match segs.as_slice() {
        ["version"] => Ok(json_response(StatusCode::OK, &version())),
        ["api"] => Ok(json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
        )),
        ["apis"] => Ok(json_response(StatusCode::OK, &api_group_list())),
        ["apis", "apps"] => Ok(json_response(StatusCode::OK, &apps_group())),
        ["api", "v1"] => Ok(json_response(StatusCode::OK, &resource_list("v1"))),
        ["apis", "apps", "v1"] => Ok(json_response(StatusCode::OK, &resource_list("apps/v1"))),
        ["api", "v1", rest @ ..] => resource(
            store,
            "v1",
            rest,
            method,
            query,
            content_type,
            body,
            shutdown,
        ),
        ["apis", "apps", "v1", rest @ ..] => resource(
            store,
            "apps/v1",
            rest,
            method,
            query,
            content_type,
            body,
            shutdown,
        ),
        _ => Err(not_found()),
    }
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn apps_group() -> Value {
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": "apps",
        "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}
    })
}

fn api_group_list() -> Value {
    let mut group = apps_group();
    if let Some(o) = group.as_object_mut() {
        o.remove("kind");
        o.remove("apiVersion");
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
}

fn resource_list(group_version: &str) -> Value {
    let mut resources = Vec::new();
    for r in Resource::ALL
        .into_iter()
        .filter(|r| r.api_version() == group_version)
    {
        resources.push(json!({
            "name": r.plural(), "singularName": r.kind().to_lowercase(), "namespaced": r.namespaced(),
            "kind": r.kind(), "shortNames": r.short_names(),
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        }));
        if r.has_status_subresource() {
            resources.push(json!({
                "name": format!("{}/status", r.plural()), "singularName": "", "namespaced": r.namespaced(),
                "kind": r.kind(), "verbs": ["get", "patch", "update"]
            }));
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

#[allow(clippy::too_many_arguments)]
fn resource(
    store: &Arc<Store>,
    group_version: &str,
    rest: &[&str],
    method: &Method,
    query: &[(String, String)],
    content_type: &str,
    body: &Bytes,
    shutdown: watch::Receiver<u64>,
) -> Result<Response<Body>, ApiError> {
    // (namespace from URL, plural, name, subresource)
    let (ns, plural, name, sub): (Option<&str>, &str, Option<&str>, Option<&str>) = match rest {
        ["namespaces", ns, plural] => (Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => (Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => (Some(ns), plural, Some(name), Some(sub)),
        [plural] => (None, plural, None, None),
        [plural, name] => (None, plural, Some(name), None),
        [plural, name, sub] => (None, plural, Some(name), Some(sub)),
        _ => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    let res = Resource::from_path(group_version, plural).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({plural})"),
        )
    })?;
    if res.namespaced() != ns.is_some()
        && !(res.namespaced() && name.is_none() && *method == Method::GET)
    {
        return Err(ApiError::new(
            404,
            "NotFound",
            format!(
                "{} must be addressed {} a namespace",
                res.plural(),
                if res.namespaced() {
                    "within"
                } else {
                    "without"
                }
            ),
        ));
    }
    let status_only = match sub {
        None => false,
        Some("status") if res.has_status_subresource() => true,
        Some(other) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("subresource {other} of {} is not served", res.plural()),
            ));
        }
    };
    let ns_str = ns.unwrap_or("");
    let labels = LabelSelector::parse(param(query, "labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(param(query, "fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let parse_body = || -> Result<Value, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    };
    match (method.clone(), name) {
        (Method::GET, None) => {
            if matches!(param(query, "watch"), Some("true" | "1")) {
                watch_response(store, res, ns, labels, fields, query, shutdown)
            } else {
                let (items, rv) = store.list(res, ns, &labels, &fields);
                Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": format!("{}List", res.kind()), "apiVersion": res.api_version(),
                        "metadata": {"resourceVersion": rv.to_string()}, "items": items
                    }),
                ))
            }
        }
        (Method::GET, Some(name)) => store
            .get(res, ns_str, name)
            .map(|o| json_response(StatusCode::OK, &o))
            .ok_or_else(|| ApiError::not_found(res, name)),
        (Method::POST, None) => {
            let created = store.create(res, ns_str, parse_body()?)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (Method::PUT, Some(name)) => {
            let obj = parse_body()?;
            if let Some(n) = obj.pointer("/metadata/name").and_then(Value::as_str)
                && n != name
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            Ok(json_response(
                StatusCode::OK,
                &store.replace(res, ns_str, name, obj, status_only)?,
            ))
        }
        (Method::PATCH, Some(name)) => {
            let mime = content_type.split(';').next().unwrap_or("").trim();
            match mime {
                // Strategic merge equals merge patch for maps (labels, annotations, data);
                // lists are replaced instead of merged by key, which the users here never rely on.
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    let patch = parse_body()?;
                    Ok(json_response(
                        StatusCode::OK,
                        &store.merge_patch(res, ns_str, name, &patch, status_only)?,
                    ))
                }
                other => Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got {other})"
                    ),
                )),
            }
        }
        (Method::DELETE, Some(name)) => Ok(json_response(
            StatusCode::OK,
            &store.delete(res, ns_str, name)?,
        )),
        (Method::DELETE, None) => {
            let (items, rv) = store.list(res, ns, &labels, &fields);
            let mut deleted = Vec::new();
            for item in items {
                let ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if let Ok(d) = store.delete(res, ns, name) {
                    deleted.push(d);
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", res.kind()), "apiVersion": res.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()}, "items": deleted
                }),
            ))
        }
        (m, _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("method {m} is not allowed on {path}", path = rest.join("/")),
        )),
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// Translates a store event into what a watcher with these filters sees (a change that makes
/// an object stop matching is a DELETED, start matching an ADDED).
fn visible(
    e: &StoreEvent,
    res: Resource,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Option<&'static str> {
    if e.resource != res || ns.is_some_and(|n| n != e.namespace) {
        return None;
    }
    let matches = |o: &Value| labels.matches(&labels_of(o)) && fields.matches(o);
    let now = matches(&e.object);
    let before = e.old.as_ref().is_some_and(matches);
    match e.event_type {
        EventType::Added => now.then_some("ADDED"),
        EventType::Deleted => before.then_some("DELETED"),
        EventType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

fn watch_response(
    store: &Arc<Store>,
    res: Resource,
    ns: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &[(String, String)],
    mut shutdown: watch::Receiver<u64>,
) -> Result<Response<Body>, ApiError> {
    let from = match param(query, "resourceVersion").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s}")))?,
        ),
    };
    let timeout = param(query, "timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let ns = ns.map(str::to_string);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    match store.watch_start(res, from) {
        Err(e) => {
            // Kubernetes answers 200 with an ERROR event for an expired resource version.
            let _ = tx.try_send(event_line("ERROR", &e.to_status()));
            drop(tx);
        }
        Ok((initial, mut events)) => {
            tokio::spawn(async move {
                let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
                for e in &initial {
                    if let Some(kind) = visible(e, res, ns.as_deref(), &labels, &fields)
                        && tx.send(event_line(kind, &e.object)).await.is_err()
                    {
                        return;
                    }
                }
                loop {
                    let next = async {
                        match deadline {
                            Some(d) => tokio::time::timeout_at(d, events.recv()).await.ok(),
                            None => Some(events.recv().await),
                        }
                    };
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tx.closed() => return,
                        got = next => match got {
                            None => return,
                            Some(Ok(e)) => {
                                if let Some(kind) = visible(&e, res, ns.as_deref(), &labels, &fields)
                                    && tx.send(event_line(kind, &e.object)).await.is_err()
                                {
                                    return;
                                }
                            }
                            Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                                let gone = ApiError::new(410, "Expired", "watch fell behind; relist");
                                let _ = tx.send(event_line("ERROR", &gone.to_status())).await;
                                return;
                            }
                            Some(Err(broadcast::error::RecvError::Closed)) => return,
                        }
                    }
                }
            });
        }
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_handles_percent_and_plus() {
        let q = parse_query("labelSelector=a%3Db%2Cc%21%3Dd&x=y+z&watch=true");
        assert_eq!(q[0], ("labelSelector".into(), "a=b,c!=d".into()));
        assert_eq!(q[1], ("x".into(), "y z".into()));
        assert_eq!(q[2], ("watch".into(), "true".into()));
    }
}
