//! The fake API server's HTTP surface: the REST paths of namespaced resources, with
//! list, watch, get, create, patch (apply and merge), delete and the status subresource.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::kinds::{ApiError, Kind, Selector};
use super::store::{Event, Store, Sub};

pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/api/{version}/namespaces/{ns}/{resource}", any(handle))
        .route(
            "/api/{version}/namespaces/{ns}/{resource}/{name}",
            any(handle),
        )
        .route(
            "/api/{version}/namespaces/{ns}/{resource}/{name}/{sub}",
            any(handle),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{resource}",
            any(handle),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}",
            any(handle),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}/{sub}",
            any(handle),
        )
        .with_state(store)
}

fn error(err: ApiError) -> Response {
    let code = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(err.status())).into_response()
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

async fn handle(
    State(store): State<Arc<Store>>,
    method: Method,
    Path(path): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let group = path.get("group").map(String::as_str).unwrap_or_default();
    let Some(kind) = Kind::find(group, &path["version"], &path["resource"]) else {
        return error(ApiError::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource {}",
                path["resource"]
            ),
        ));
    };
    let ns = path["ns"].clone();
    let result = match (path.get("name"), path.get("sub").map(String::as_str)) {
        (None, _) => collection(&store, kind, &ns, &method, &query, &body).await,
        (Some(name), None) => item(
            &store,
            kind,
            &ns,
            name,
            Sub::Main,
            &method,
            &query,
            &headers,
            &body,
        ),
        (Some(name), Some("status")) if kind.has_status => item(
            &store,
            kind,
            &ns,
            name,
            Sub::Status,
            &method,
            &query,
            &headers,
            &body,
        ),
        (Some(_), Some(sub)) => Err(ApiError::new(
            404,
            "NotFound",
            format!("{} has no subresource {sub} here", kind.qualified()),
        )),
    };
    result.unwrap_or_else(error)
}

async fn collection(
    store: &Arc<Store>,
    kind: &'static Kind,
    ns: &str,
    method: &Method,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    match *method {
        Method::GET => {
            let selector = Selector::parse(
                query
                    .get("labelSelector")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )?;
            if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
                return Ok(watch(store, kind, ns, selector, query));
            }
            let (items, rv) = store.list(kind, ns, &selector);
            Ok(Json(json!({
                "apiVersion": kind.api_version(),
                "kind": format!("{}List", kind.kind),
                "metadata": { "resourceVersion": rv.to_string() },
                "items": items,
            }))
            .into_response())
        }
        Method::POST => {
            let object: Value =
                serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
            let name = object["metadata"]["name"]
                .as_str()
                .ok_or_else(|| bad("metadata.name is required"))?
                .to_owned();
            let manager = query
                .get("fieldManager")
                .map(String::as_str)
                .unwrap_or("unknown");
            let created = store.update(kind, ns, &name, object, manager, Sub::Main, true)?;
            Ok((StatusCode::CREATED, Json(created)).into_response())
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on a collection by the fake API server"),
        )),
    }
}

#[expect(clippy::too_many_arguments, reason = "mirrors the request's parts")]
fn item(
    store: &Store,
    kind: &'static Kind,
    ns: &str,
    name: &str,
    sub: Sub,
    method: &Method,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    match *method {
        Method::GET => Ok(Json(store.get(kind, ns, name)?).into_response()),
        Method::PATCH => {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let manager = query.get("fieldManager").map(String::as_str);
            match content_type.split(';').next().unwrap_or_default().trim() {
                "application/apply-patch+yaml" => {
                    let manager =
                        manager.ok_or_else(|| bad("PATCH with apply requires a fieldManager"))?;
                    let object: Value = serde_yaml::from_slice(body)
                        .map_err(|e| bad(format!("invalid apply body: {e}")))?;
                    let force = query.get("force").is_some_and(|f| f == "true");
                    let (object, created) =
                        store.apply(kind, ns, name, object, manager, force, sub)?;
                    let code = if created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    };
                    Ok((code, Json(object)).into_response())
                }
                "application/merge-patch+json" => {
                    let patch: Value = serde_json::from_slice(body)
                        .map_err(|e| bad(format!("invalid merge patch: {e}")))?;
                    Ok(Json(store.update(
                        kind,
                        ns,
                        name,
                        patch,
                        manager.unwrap_or("unknown"),
                        sub,
                        false,
                    )?)
                    .into_response())
                }
                other => Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the fake API server does not support {other} patches"),
                )),
            }
        }
        // A replace, as leader election does it: the whole object, refused with 409
        // when its `metadata.resourceVersion` is not the live one. (Fields the body
        // leaves out are kept, unlike on a real server; the writers here send them all.)
        Method::PUT if sub == Sub::Main => {
            let object: Value =
                serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
            if object["metadata"]["resourceVersion"].as_str().is_none() {
                return Err(bad("a replace needs metadata.resourceVersion in this fake"));
            }
            let manager = query
                .get("fieldManager")
                .map(String::as_str)
                .unwrap_or("unknown");
            Ok(Json(store.update(kind, ns, name, object, manager, sub, false)?).into_response())
        }
        Method::DELETE if sub == Sub::Main => {
            let options: Value = if body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(body)
                    .map_err(|e| bad(format!("invalid DeleteOptions: {e}")))?
            };
            let policy = options["propagationPolicy"]
                .as_str()
                .or(query.get("propagationPolicy").map(String::as_str))
                .unwrap_or("Background");
            let orphan = match policy {
                "Background" => false,
                "Orphan" => true,
                other => {
                    return Err(bad(format!(
                        "propagationPolicy {other} is not supported by the fake API server"
                    )))
                }
            };
            Ok(match store.delete(kind, ns, name, orphan)? {
                Some(still_there) => Json(still_there).into_response(),
                None => Json(json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": { "name": name, "kind": kind.resource },
                }))
                .into_response(),
            })
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported here by the fake API server"),
        )),
    }
}

/// A watch stream: newline-delimited `{"type", "object"}` events until `timeoutSeconds`.
fn watch(
    store: &Arc<Store>,
    kind: &'static Kind,
    ns: &str,
    selector: Selector,
    query: &HashMap<String, String>,
) -> Response {
    let since = query
        .get("resourceVersion")
        .and_then(|rv| rv.parse::<u64>().ok())
        .filter(|rv| *rv > 0);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(300u64)
        .min(600);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let (backlog, rx) = store.watch(kind, ns, since);
    let ns = ns.to_owned();
    let selector = Arc::new(selector);
    let line = |e: Event| {
        Ok::<_, Infallible>(Bytes::from(format!(
            "{}\n",
            json!({"type": e.kind, "object": e.object})
        )))
    };
    let stream = futures::stream::unfold(
        (VecDeque::from(backlog), rx),
        move |(mut backlog, mut rx)| {
            let (selector, ns) = (selector.clone(), ns.clone());
            async move {
                while let Some(event) = backlog.pop_front() {
                    if selector.matches(&event.object) {
                        return Some((line(event), (backlog, rx)));
                    }
                }
                loop {
                    tokio::select! {
                        received = rx.recv() => match received {
                            Ok(e) if e.resource == kind.resource && e.namespace == ns && selector.matches(&e.object) => {
                                return Some((line(e), (backlog, rx)));
                            }
                            Ok(_) => continue,
                            // Too slow a reader: end the stream; the client watches again.
                            Err(_) => return None,
                        },
                        () = tokio::time::sleep_until(deadline) => return None,
                    }
                }
            }
        },
    );
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .expect("a valid response")
}
