//! The admin routes, sans-IO: a parsed [`Request`] in, a [`Response`] out, with the service
//! reached through [`AdminBackend`].
//!
//! | Method and path                                  | Reply                                  |
//! |--------------------------------------------------|----------------------------------------|
//! | `GET /`                                          | the status page (HTML, no data in it)  |
//! | `GET /metrics`                                   | Prometheus text format 0.0.4           |
//! | `GET /api/v1/torrents`                           | JSON array of torrents                 |
//! | `POST /api/v1/torrents`                          | `.torrent` body, or `{"path": "..."}`  |
//! | `GET /api/v1/torrents/{infohash}`                | one torrent                            |
//! | `DELETE /api/v1/torrents/{infohash}`             | `{"removed": infohash}`                |
//! | `POST /api/v1/torrents/{infohash}/pause`         | the torrent, paused                    |
//! | `POST /api/v1/torrents/{infohash}/resume`        | the torrent, serving again             |
//! | `POST /api/v1/torrents/{infohash}/recheck`       | the torrent, re-checking               |
//!
//! With a token configured, everything but the status page (which holds no data and fetches
//! the rest with the token) needs `Authorization: Bearer TOKEN`. Errors are JSON
//! `{"error": "..."}` with a 4xx status (503 when the service cannot act now).

use std::path::PathBuf;

use serde_json::{json, Value};

use super::auth::Token;
use super::backend::{AdminBackend, AdminError, TorrentStatus};
use super::http::{Method, Request, Response};
use super::{metrics, page};
use crate::metainfo::InfoHash;

/// Routes requests to a backend.
pub struct Router<'a> {
    /// The service.
    pub backend: &'a dyn AdminBackend,
    /// The bearer token every API request must carry, when set.
    pub token: Option<&'a Token>,
}

/// The body of `POST /api/v1/torrents` for a data path.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPath {
    path: PathBuf,
}

impl Router<'_> {
    /// Answers one request. Never panics on any input.
    pub fn handle(&self, req: &Request) -> Response {
        let mut reply = self.route(req);
        reply.close |= req.close;
        reply
    }

    fn route(&self, req: &Request) -> Response {
        let path = match req.path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => req.path.as_str(),
        };
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let method = match &req.method {
            Method::Head => &Method::Get,
            m => m,
        };

        if path == "/" || path == "/index.html" {
            return match method {
                Method::Get => {
                    Response::new(200, page::CONTENT_TYPE, page::HTML.as_bytes().to_vec())
                        .with_header("Content-Security-Policy", page::CSP)
                }
                _ => not_allowed("GET"),
            };
        }
        let known = path == "/metrics" || segments.starts_with(&["api", "v1", "torrents"]);
        if !known {
            return Response::error(404, &format!("no such endpoint: {}", req.path));
        }
        if let Some(token) = self.token {
            if !token.matches_header(req.authorization.as_deref()) {
                return Response::error(401, "missing or wrong bearer token")
                    .with_header("WWW-Authenticate", "Bearer realm=\"seedbox admin\"");
            }
        }
        match (method, segments.as_slice()) {
            (Method::Get, ["metrics"]) => Response::new(
                200,
                metrics::CONTENT_TYPE,
                metrics::render(&self.backend.metrics()).into_bytes(),
            ),
            (_, ["metrics"]) => not_allowed("GET"),
            (Method::Get, ["api", "v1", "torrents"]) => {
                let list: Vec<Value> = self.backend.torrents().iter().map(torrent_json).collect();
                Response::json(200, &Value::Array(list))
            }
            (Method::Post, ["api", "v1", "torrents"]) => self.add(req),
            (_, ["api", "v1", "torrents"]) => not_allowed("GET, POST"),
            (_, ["api", "v1", "torrents", hash, rest @ ..]) => {
                let Some(info_hash) = parse_info_hash(hash) else {
                    return Response::error(
                        400,
                        &format!("bad info-hash {hash:?}: want 40 hexadecimal digits"),
                    );
                };
                self.torrent_route(method, &info_hash, rest)
            }
            _ => Response::error(404, &format!("no such endpoint: {}", req.path)),
        }
    }

    fn torrent_route(&self, method: &Method, info_hash: &InfoHash, rest: &[&str]) -> Response {
        let backend = self.backend;
        match (method, rest) {
            (Method::Get, []) => match backend
                .torrents()
                .iter()
                .find(|t| t.info_hash == *info_hash)
            {
                Some(t) => Response::json(200, &torrent_json(t)),
                None => admin_error(&AdminError::NotFound(*info_hash)),
            },
            (Method::Delete, []) => match backend.remove(info_hash) {
                Ok(()) => Response::json(200, &json!({ "removed": info_hash.to_hex() })),
                Err(e) => admin_error(&e),
            },
            (_, []) => not_allowed("GET, DELETE"),
            (Method::Post, [action @ ("pause" | "resume" | "recheck")]) => {
                let done = match *action {
                    "pause" => backend.pause(info_hash),
                    "resume" => backend.resume(info_hash),
                    _ => backend.recheck(info_hash),
                };
                match done {
                    Ok(t) => Response::json(200, &torrent_json(&t)),
                    Err(e) => admin_error(&e),
                }
            }
            (_, ["pause" | "resume" | "recheck"]) => not_allowed("POST"),
            _ => Response::error(404, "no such endpoint"),
        }
    }

    /// `POST /api/v1/torrents`: a JSON `{"path": ...}` (by content type, or a body starting
    /// with `{`), else the bytes of a `.torrent`.
    fn add(&self, req: &Request) -> Response {
        let body = &req.body;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Response::error(
                400,
                "empty body: send a .torrent file, or JSON {\"path\": \"...\"}",
            );
        }
        let is_json = match req.content_type.as_deref() {
            Some("application/json") => true,
            Some("application/x-bittorrent") => false,
            _ => body.trim_ascii_start().first() == Some(&b'{'),
        };
        let added = if is_json {
            match serde_json::from_slice::<AddPath>(body) {
                Ok(add) => self.backend.add_data_path(&add.path),
                Err(e) => {
                    return Response::error(
                        400,
                        &format!("bad JSON body (want {{\"path\": \"...\"}}): {e}"),
                    )
                }
            }
        } else if body.first() != Some(&b'd') {
            return Response::error(
                400,
                "body is neither a .torrent (a bencoded dictionary) nor JSON {\"path\": \"...\"}",
            );
        } else {
            self.backend.add_torrent_file(body)
        };
        match added {
            Ok(t) => Response::json(201, &torrent_json(&t)),
            Err(e) => admin_error(&e),
        }
    }
}

/// A torrent as the API shows it.
pub fn torrent_json(t: &TorrentStatus) -> Value {
    let rate = if t.upload_rate.is_finite() && t.upload_rate >= 0.0 {
        t.upload_rate
    } else {
        0.0
    };
    let mut v = json!({
        "info_hash": t.info_hash.to_hex(),
        "name": t.name,
        "size": t.size,
        "state": t.state.name(),
        "unserved_pieces": t.state.unserved_pieces(),
        "uploaded": t.uploaded,
        "upload_rate": rate,
        "peers": t.peers,
        "unchoked_peers": t.unchoked_peers,
        "announces": t.announces,
        "announce_failures": t.announce_failures,
    });
    if let Some(reason) = t.state.reason() {
        v["reason"] = Value::String(reason.to_owned());
    }
    v
}

/// 40 hexadecimal digits, either case.
pub fn parse_info_hash(s: &str) -> Option<InfoHash> {
    (s.len() == 40)
        .then(|| InfoHash::from_hex(&s.to_ascii_lowercase()))
        .flatten()
}

fn admin_error(e: &AdminError) -> Response {
    Response::error(e.status_code(), &e.to_string())
}

fn not_allowed(allow: &'static str) -> Response {
    Response::error(405, &format!("method not allowed here (allowed: {allow})"))
        .with_header("Allow", allow)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Mutex;

    use super::*;
    use crate::service::admin::backend::{MetricsSnapshot, TorrentState};

    /// A backend that keeps torrents in a list and records what it was asked.
    #[derive(Default)]
    struct Mock {
        torrents: Mutex<Vec<TorrentStatus>>,
        calls: Mutex<Vec<String>>,
    }

    fn status(byte: u8, name: &str) -> TorrentStatus {
        TorrentStatus {
            info_hash: InfoHash([byte; 20]),
            name: name.into(),
            size: 100,
            state: TorrentState::Seeding,
            uploaded: 10,
            upload_rate: 2.5,
            peers: 2,
            unchoked_peers: 1,
            announces: 3,
            announce_failures: 0,
        }
    }

    impl Mock {
        fn with(list: Vec<TorrentStatus>) -> Self {
            Mock {
                torrents: Mutex::new(list),
                calls: Mutex::default(),
            }
        }

        fn set_state(
            &self,
            h: &InfoHash,
            state: TorrentState,
        ) -> Result<TorrentStatus, AdminError> {
            let mut list = self.torrents.lock().unwrap();
            let t = list
                .iter_mut()
                .find(|t| t.info_hash == *h)
                .ok_or(AdminError::NotFound(*h))?;
            t.state = state;
            Ok(t.clone())
        }
    }

    impl AdminBackend for Mock {
        fn torrents(&self) -> Vec<TorrentStatus> {
            self.torrents.lock().unwrap().clone()
        }
        fn add_torrent_file(&self, torrent: &[u8]) -> Result<TorrentStatus, AdminError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("torrent {}", torrent.len()));
            if torrent == b"de" {
                return Err(AdminError::InvalidTorrent("no info dictionary".into()));
            }
            let t = status(9, "added");
            self.torrents.lock().unwrap().push(t.clone());
            Ok(t)
        }
        fn add_data_path(&self, path: &Path) -> Result<TorrentStatus, AdminError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("path {}", path.display()));
            if !path.is_absolute() {
                return Err(AdminError::InvalidPath(format!(
                    "{} is not absolute",
                    path.display()
                )));
            }
            Ok(status(8, "from path"))
        }
        fn remove(&self, h: &InfoHash) -> Result<(), AdminError> {
            let mut list = self.torrents.lock().unwrap();
            let before = list.len();
            list.retain(|t| t.info_hash != *h);
            if list.len() == before {
                return Err(AdminError::NotFound(*h));
            }
            Ok(())
        }
        fn pause(&self, h: &InfoHash) -> Result<TorrentStatus, AdminError> {
            self.set_state(h, TorrentState::Paused)
        }
        fn resume(&self, h: &InfoHash) -> Result<TorrentStatus, AdminError> {
            if self
                .torrents()
                .iter()
                .any(|t| t.info_hash == *h && t.state == TorrentState::Checking)
            {
                return Err(AdminError::Conflict("the torrent is checking".into()));
            }
            self.set_state(h, TorrentState::Seeding)
        }
        fn recheck(&self, h: &InfoHash) -> Result<TorrentStatus, AdminError> {
            self.set_state(h, TorrentState::Rechecking)
        }
        fn metrics(&self) -> MetricsSnapshot {
            MetricsSnapshot {
                torrents: self.torrents(),
                ..Default::default()
            }
        }
    }

    fn req(method: Method, path: &str, body: &[u8]) -> Request {
        Request {
            method,
            path: path.into(),
            authorization: None,
            content_type: None,
            body: body.to_vec(),
            close: false,
        }
    }

    fn body_json(r: &Response) -> Value {
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {:?}", r))
    }

    fn hex(b: u8) -> String {
        InfoHash([b; 20]).to_hex()
    }

    #[test]
    fn list_shows_every_field() {
        let mut stopped = status(2, "b");
        stopped.state = TorrentState::Stopped {
            reason: "data file deleted".into(),
        };
        let mut partial = status(3, "c");
        partial.state = TorrentState::Partial { unserved_pieces: 2 };
        let mock = Mock::with(vec![status(1, "a"), stopped, partial]);
        let r = Router {
            backend: &mock,
            token: None,
        }
        .handle(&req(Method::Get, "/api/v1/torrents", b""));
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/json");
        let v = body_json(&r);
        assert_eq!(v[0]["info_hash"], hex(1));
        assert_eq!(v[0]["name"], "a");
        assert_eq!(v[0]["size"], 100);
        assert_eq!(v[0]["state"], "seeding");
        assert_eq!(v[0]["uploaded"], 10);
        assert_eq!(v[0]["upload_rate"], 2.5);
        assert_eq!(v[0]["peers"], 2);
        assert_eq!(v[0]["unchoked_peers"], 1);
        assert_eq!(v[0]["announces"], 3);
        assert_eq!(v[0]["announce_failures"], 0);
        assert!(v[0].get("reason").is_none());
        assert_eq!(v[1]["state"], "stopped");
        assert_eq!(v[1]["reason"], "data file deleted");
        assert_eq!(v[0]["unserved_pieces"], 0);
        assert_eq!(v[2]["state"], "partial");
        assert_eq!(v[2]["unserved_pieces"], 2);
        let slash = Router {
            backend: &mock,
            token: None,
        }
        .handle(&req(Method::Get, "/api/v1/torrents/", b""));
        assert_eq!(slash.body, r.body);
    }

    #[test]
    fn one_torrent_by_hash_in_either_case() {
        let mock = Mock::with(vec![status(0xab, "a")]);
        let router = Router {
            backend: &mock,
            token: None,
        };
        let upper = hex(0xab).to_ascii_uppercase();
        let r = router.handle(&req(Method::Get, &format!("/api/v1/torrents/{upper}"), b""));
        assert_eq!(r.status, 200);
        assert_eq!(body_json(&r)["name"], "a");
        let r = router.handle(&req(
            Method::Get,
            &format!("/api/v1/torrents/{}", hex(1)),
            b"",
        ));
        assert_eq!(r.status, 404);
        assert!(body_json(&r)["error"].as_str().unwrap().contains(&hex(1)));
    }

    #[test]
    fn add_by_torrent_bytes_or_path() {
        let mock = Mock::default();
        let router = Router {
            backend: &mock,
            token: None,
        };
        let r = router.handle(&req(
            Method::Post,
            "/api/v1/torrents",
            b"d4:infod4:name1:xee",
        ));
        assert_eq!(r.status, 201);
        assert_eq!(body_json(&r)["name"], "added");
        let r = router.handle(&req(
            Method::Post,
            "/api/v1/torrents",
            b" {\"path\": \"/srv/iso\"}",
        ));
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(body_json(&r)["name"], "from path");
        let mut typed = req(Method::Post, "/api/v1/torrents", b"{\"path\": \"rel\"}");
        typed.content_type = Some("application/json".into());
        let r = router.handle(&typed);
        assert_eq!(r.status, 422);
        assert!(body_json(&r)["error"]
            .as_str()
            .unwrap()
            .contains("rel is not absolute"));
        assert_eq!(
            *mock.calls.lock().unwrap(),
            vec!["torrent 19", "path /srv/iso", "path rel"]
        );
        let r = router.handle(&req(Method::Post, "/api/v1/torrents", b"de"));
        assert_eq!(r.status, 422);
        assert!(body_json(&r)["error"]
            .as_str()
            .unwrap()
            .contains("invalid torrent"));
    }

    #[test]
    fn bad_add_bodies_are_400_and_never_reach_the_backend() {
        let mock = Mock::default();
        let router = Router {
            backend: &mock,
            token: None,
        };
        let cases: &[(&[u8], Option<&str>, &str)] = &[
            (b"", None, "empty body"),
            (b"  \n", None, "empty body"),
            (b"garbage", None, "neither"),
            (b"\xff\x00\x12", Some("application/octet-stream"), "neither"),
            (b"{\"path\": 3}", None, "bad JSON"),
            (
                b"{\"path\": \"/x\", \"extra\": 1}",
                None,
                "unknown field `extra`",
            ),
            (b"{\"pth\": \"/x\"}", None, "bad JSON"),
            (b"{not json", None, "bad JSON"),
            (b"d4:info", Some("application/json"), "bad JSON"),
        ];
        for (body, ct, want) in cases {
            let mut r = req(Method::Post, "/api/v1/torrents", body);
            r.content_type = ct.map(str::to_owned);
            let reply = router.handle(&r);
            assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(body));
            let err = body_json(&reply)["error"].as_str().unwrap().to_owned();
            assert!(err.contains(want), "{err}");
        }
        assert!(mock.calls.lock().unwrap().is_empty());
        let megabyte: Vec<u8> = (0..1 << 20).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(
            router
                .handle(&req(Method::Post, "/api/v1/torrents", &megabyte))
                .status,
            400
        );
    }

    #[test]
    fn remove_pause_resume_recheck() {
        let mock = Mock::with(vec![status(1, "a"), status(2, "b")]);
        let router = Router {
            backend: &mock,
            token: None,
        };
        let base = format!("/api/v1/torrents/{}", hex(1));
        for (action, state) in [
            ("pause", "paused"),
            ("resume", "seeding"),
            ("recheck", "rechecking"),
        ] {
            let r = router.handle(&req(Method::Post, &format!("{base}/{action}"), b""));
            assert_eq!(r.status, 200, "{action}");
            assert_eq!(body_json(&r)["state"], state);
        }
        let r = router.handle(&req(Method::Delete, &base, b""));
        assert_eq!(r.status, 200);
        assert_eq!(body_json(&r)["removed"], hex(1));
        assert_eq!(router.handle(&req(Method::Delete, &base, b"")).status, 404);
        assert_eq!(
            router
                .handle(&req(Method::Post, &format!("{base}/pause"), b""))
                .status,
            404
        );
        assert_eq!(mock.torrents().len(), 1);
        mock.set_state(&InfoHash([2; 20]), TorrentState::Checking)
            .unwrap();
        let r = router.handle(&req(
            Method::Post,
            &format!("/api/v1/torrents/{}/resume", hex(2)),
            b"",
        ));
        assert_eq!(r.status, 409);
    }

    #[test]
    fn bad_hashes_routes_and_methods() {
        let mock = Mock::with(vec![status(1, "a")]);
        let router = Router {
            backend: &mock,
            token: None,
        };
        let h = hex(1);
        let cases: Vec<(Method, String, u16)> = vec![
            (Method::Delete, "/api/v1/torrents/xyz".into(), 400),
            (
                Method::Delete,
                format!("/api/v1/torrents/{}", &h[..39]),
                400,
            ),
            (Method::Delete, format!("/api/v1/torrents/{h}0"), 400),
            (
                Method::Delete,
                format!("/api/v1/torrents/{}g", &h[..39]),
                400,
            ),
            (
                Method::Post,
                format!("/api/v1/torrents/{}%41/pause", &h[..37]),
                400,
            ),
            (Method::Get, "/nope".into(), 404),
            (Method::Get, "/api/v2/torrents".into(), 404),
            (Method::Get, "/api/v1".into(), 404),
            (Method::Post, format!("/api/v1/torrents/{h}/explode"), 404),
            (Method::Post, format!("/api/v1/torrents/{h}/pause/now"), 404),
            (Method::Get, format!("/api/v1/torrents/{h}/pause"), 405),
            (Method::Post, format!("/api/v1/torrents/{h}"), 405),
            (Method::Delete, "/api/v1/torrents".into(), 405),
            (Method::Post, "/metrics".into(), 405),
            (Method::Post, "/".into(), 405),
            (
                Method::Other("PATCH".into()),
                "/api/v1/torrents".into(),
                405,
            ),
            (Method::Get, "/api/v1/torrents//".into(), 400),
        ];
        for (method, path, want) in cases {
            let r = router.handle(&req(method.clone(), &path, b""));
            assert_eq!(r.status, want, "{method:?} {path}");
            assert_eq!(r.content_type, "application/json");
            assert!(body_json(&r)["error"].is_string());
            if want == 405 {
                assert!(r.headers.iter().any(|(n, _)| *n == "Allow"));
            }
        }
        assert_eq!(mock.torrents().len(), 1);
    }

    #[test]
    fn the_token_guards_everything_but_the_page() {
        let mock = Mock::with(vec![status(1, "a")]);
        let token = Token::new("0123456789abcdef").unwrap();
        let router = Router {
            backend: &mock,
            token: Some(&token),
        };
        for path in [
            "/api/v1/torrents",
            "/metrics",
            &format!("/api/v1/torrents/{}", hex(1)),
        ] {
            let mut r = req(Method::Get, path, b"");
            let reply = router.handle(&r);
            assert_eq!(reply.status, 401, "{path}");
            assert!(reply.headers.iter().any(|(n, _)| *n == "WWW-Authenticate"));
            r.authorization = Some(b"Bearer wrong-token-0123456".to_vec());
            assert_eq!(router.handle(&r).status, 401);
            r.authorization = Some(b"Bearer 0123456789abcdef".to_vec());
            assert_eq!(router.handle(&r).status, 200, "{path}");
        }
        let mut del = req(Method::Delete, &format!("/api/v1/torrents/{}", hex(1)), b"");
        assert_eq!(router.handle(&del).status, 401);
        assert_eq!(
            mock.torrents().len(),
            1,
            "refused before reaching the backend"
        );
        del.authorization = Some(b"Bearer 0123456789abcdef".to_vec());
        assert_eq!(router.handle(&del).status, 200);
        let page = router.handle(&req(Method::Get, "/", b""));
        assert_eq!(page.status, 200);
        assert!(page.content_type.starts_with("text/html"));
    }

    #[test]
    fn metrics_and_page_and_head() {
        let mock = Mock::with(vec![status(1, "a")]);
        let router = Router {
            backend: &mock,
            token: None,
        };
        let r = router.handle(&req(Method::Get, "/metrics", b""));
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, metrics::CONTENT_TYPE);
        assert!(String::from_utf8(r.body)
            .unwrap()
            .contains("seedbox_torrent_peers{"));
        let r = router.handle(&req(Method::Head, "/", b""));
        assert_eq!(r.status, 200);
        assert!(r
            .headers
            .iter()
            .any(|(n, _)| *n == "Content-Security-Policy"));
        let mut closing = req(Method::Get, "/", b"");
        closing.close = true;
        assert!(router.handle(&closing).close);
    }

    #[test]
    fn odd_rates_serialize_as_numbers() {
        let mut t = status(1, "a");
        t.upload_rate = f64::NAN;
        assert_eq!(torrent_json(&t)["upload_rate"], 0.0);
        t.upload_rate = f64::INFINITY;
        assert_eq!(torrent_json(&t)["upload_rate"], 0.0);
    }

    #[test]
    fn info_hashes_parse() {
        assert_eq!(parse_info_hash(&hex(0xcd)), Some(InfoHash([0xcd; 20])));
        assert_eq!(
            parse_info_hash(&"AB".repeat(20)),
            Some(InfoHash([0xab; 20]))
        );
        assert_eq!(parse_info_hash(""), None);
        assert_eq!(parse_info_hash(&"é".repeat(20)), None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::service::admin::backend::MetricsSnapshot;

    /// A backend that refuses everything, so only routing is exercised.
    struct Refuses;

    impl AdminBackend for Refuses {
        fn torrents(&self) -> Vec<TorrentStatus> {
            Vec::new()
        }
        fn add_torrent_file(&self, _: &[u8]) -> Result<TorrentStatus, AdminError> {
            Err(AdminError::InvalidTorrent("no".into()))
        }
        fn add_data_path(&self, _: &std::path::Path) -> Result<TorrentStatus, AdminError> {
            Err(AdminError::InvalidPath("no".into()))
        }
        fn remove(&self, h: &InfoHash) -> Result<(), AdminError> {
            Err(AdminError::NotFound(*h))
        }
        fn pause(&self, h: &InfoHash) -> Result<TorrentStatus, AdminError> {
            Err(AdminError::NotFound(*h))
        }
        fn resume(&self, h: &InfoHash) -> Result<TorrentStatus, AdminError> {
            Err(AdminError::NotFound(*h))
        }
        fn recheck(&self, h: &InfoHash) -> Result<TorrentStatus, AdminError> {
            Err(AdminError::NotFound(*h))
        }
        fn metrics(&self) -> MetricsSnapshot {
            MetricsSnapshot::default()
        }
    }

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![
            Just(Method::Get),
            Just(Method::Head),
            Just(Method::Post),
            Just(Method::Delete),
            "[A-Z]{1,8}".prop_map(Method::Other),
        ]
    }

    proptest! {
        #[test]
        fn every_request_gets_a_json_or_page_reply(
            method in method(),
            path in "/(api/v1/torrents|metrics|[a-z0-9%]{0,8})(/[a-zA-Z0-9%é.]{0,44}){0,3}/?",
            body in proptest::collection::vec(any::<u8>(), 0..80),
            json_type in any::<bool>(),
        ) {
            let req = Request {
                method,
                path,
                authorization: None,
                content_type: json_type.then(|| "application/json".to_owned()),
                body,
                close: false,
            };
            let reply = Router { backend: &Refuses, token: None }.handle(&req);
            if reply.status >= 400 {
                prop_assert_eq!(reply.content_type, "application/json");
                let v: Value = serde_json::from_slice(&reply.body).unwrap();
                prop_assert!(v["error"].is_string());
                prop_assert!(reply.status < 500 || reply.status == 503);
            }
        }
    }
}
