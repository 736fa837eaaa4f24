//! Configuration changes through the API: a whole new configuration (`PUT`),
//! a JSON merge patch (`PATCH`, RFC 7396), or the file re-read (`POST
//! /v1/config/reload`). Validated first; a `PUT` or `PATCH` is then written
//! to the file atomically, and only then published to the shards. Any
//! failure leaves both the running configuration and the file as they were.

use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::{error, json_response};
use crate::config::diff::Changes;
use crate::config::{Config, ConfigError};
use crate::io::control::{write_atomically, Control};
use crate::io::http::SharedBody;

/// Where the new configuration comes from.
pub enum Source {
    /// YAML (or JSON) text of a whole configuration.
    Text(String),
    /// A merge patch against the running configuration.
    Patch(Value),
    /// The configuration file.
    File,
}

/// How long the API waits for every shard to apply a change.
const APPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn run(control: &Control, source: Source, dry_run: bool) -> Response<SharedBody> {
    let Some(change) = control.begin() else {
        return error(
            StatusCode::CONFLICT,
            "another configuration change is in progress; try again",
        );
    };
    let old = control.current().1;
    let file = control.file().to_path_buf();
    let (new, write) = match source {
        Source::Text(text) => match Config::from_yaml(&text, "request body") {
            Ok(c) => (c, Some(text)),
            Err(e) => return invalid(&e),
        },
        Source::Patch(patch) => {
            let mut merged = serde_json::to_value(&*old).unwrap_or(Value::Null);
            merge_patch(&mut merged, &patch);
            let yaml = match serde_saphyr::to_string(&merged) {
                Ok(y) => y,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("cannot use the patch: {e}"),
                    )
                }
            };
            match Config::from_yaml(&yaml, "configuration after the patch") {
                Ok(c) => {
                    let text = format!(
                        "# Written by srtgate (PATCH /v1/config); the previous file's comments are not kept.\n{}",
                        c.to_yaml().unwrap_or(yaml)
                    );
                    (c, Some(text))
                }
                Err(e) => return invalid(&e),
            }
        }
        Source::File => {
            let path = file.clone();
            let read = glommio::executor()
                .spawn_blocking(move || std::fs::read_to_string(&path))
                .await;
            let text = match read {
                Ok(t) => t,
                Err(e) => {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!(
                            "{}: cannot read the configuration file: {e}",
                            file.display()
                        ),
                    )
                }
            };
            match Config::from_yaml(&text, &file.display().to_string()) {
                Ok(c) => (c, None),
                Err(e) => return invalid(&e),
            }
        }
    };
    if let Err(e) = crate::io::runtime::check_new_ports_free(&old, &new) {
        return error(StatusCode::CONFLICT, format!("{e:#}"));
    }
    let changes = Changes::between(&old, &new);
    let restart = restart_needed(&old, &new, &changes);
    if dry_run {
        return json_response(
            StatusCode::OK,
            &json!({
                "applied": false,
                "generation": control.current().0,
                "changes": changes_json(&changes),
                "restart_needed": restart,
                "closed_sessions": 0,
            }),
        );
    }
    if let Some(text) = write {
        let path = file.clone();
        let written = glommio::executor()
            .spawn_blocking(move || write_atomically(&path, &text))
            .await;
        if let Err(e) = written {
            tracing::error!(file = %file.display(), error = %e, "api: configuration not written; nothing applied");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "{}: cannot write the configuration file ({e}); nothing was applied",
                    file.display()
                ),
            );
        }
    }
    let closed_before = control.closed_sessions();
    let (gen, _) = control.publish(&change, new);
    let applied = control.wait_applied(gen, APPLY_TIMEOUT).await;
    let closed = control.closed_sessions() - closed_before;
    drop(change);
    tracing::info!(generation = gen, closed_sessions = closed, restart_needed = ?restart,
        "api: configuration changed");
    if !applied {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("generation {gen} was published but not every shard applied it within 5 s"),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({
            "applied": true,
            "generation": gen,
            "changes": changes_json(&changes),
            "restart_needed": restart,
            "closed_sessions": closed,
        }),
    )
}

/// A refused configuration: where and why.
fn invalid(e: &ConfigError) -> Response<SharedBody> {
    let d = e.diagnostic();
    let mut o = Map::new();
    o.insert("error".into(), json!(e.to_string()));
    o.insert("message".into(), json!(d.message));
    if !d.origin.is_empty() {
        o.insert("file".into(), json!(d.origin));
    }
    if let Some((line, column)) = d.location {
        o.insert("line".into(), json!(line));
        o.insert("column".into(), json!(column));
    }
    if let Some(k) = &d.key {
        o.insert("key".into(), json!(k));
    }
    if let Some(h) = &d.hint {
        o.insert("hint".into(), json!(h));
    }
    json_response(StatusCode::BAD_REQUEST, &Value::Object(o))
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// What a reload cannot change while running.
fn restart_needed(old: &Config, new: &Config, c: &Changes) -> Vec<&'static str> {
    let mut v = c.restart_needed.clone();
    if !c.srtla_listen.is_empty() {
        v.push("srtla.listen");
    }
    if old.http.root != new.http.root {
        v.push("http.root");
    }
    if c.log {
        v.push("log");
    }
    v
}

fn changes_json(c: &Changes) -> Value {
    let rebind = |r: &crate::config::diff::Rebind| {
        json!({
            "open": r.open.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "close": r.close.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    };
    json!({
        "srt_listen": rebind(&c.srt_listen),
        "srtla_listen": rebind(&c.srtla_listen),
        "http_listen": rebind(&c.http_listen),
        "srt_settings": c.srt_settings,
        "srtla_settings": c.srtla_settings,
        "http_settings": c.http_settings,
        "hls": c.hls,
        "log": c.log,
        "rules_added": c.rules_added,
        "rules_changed": c.rules_changed,
        "rules_removed": c.rules_removed,
        "rules_reordered": c.rules_reordered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
    }

    #[test]
    fn a_patched_configuration_round_trips() {
        let old = Config::default();
        let mut v = serde_json::to_value(&old).unwrap();
        merge_patch(&mut v, &json!({"srt": {"latency": "200ms"}}));
        let yaml = serde_saphyr::to_string(&v).unwrap();
        let new = Config::from_yaml(&yaml, "patched").unwrap();
        assert_eq!(new.srt.latency, std::time::Duration::from_millis(200));
        assert_eq!(new.paths, old.paths);
        merge_patch(&mut v, &json!({"srt": {"bogus": 1}}));
        let yaml = serde_saphyr::to_string(&v).unwrap();
        let e = Config::from_yaml(&yaml, "patched").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
