//! A counting HTTP proxy in front of the test registry: every request that goes through it is
//! logged (method, path with query, status), so a test can prove what was and was not uploaded.
//! It tells distribution its own address (`X-Forwarded-Host`), so the absolute `Location`s the
//! registry hands out point back at the proxy; with `relative` it also strips the origin from
//! `Location`, so pkg has to resolve relative upload URLs.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::harness::registry::http_agent;

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub status: u16,
}

pub struct Proxy {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    port: u16,
    log: Arc<Mutex<Vec<Logged>>>,
}

const HOP_BY_HOP: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

impl Proxy {
    /// Forwards everything to `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str, relative: bool) -> Proxy {
        Proxy::start_with(upstream, relative, None)
    }

    /// Like [`Proxy::start`], and answers the `nth` PATCH (1-based) with 416 without
    /// forwarding it, as a registry that lost track of an upload's offset would.
    pub fn start_with(upstream: &str, relative: bool, patch_416: Option<usize>) -> Proxy {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("proxy binds"));
        let port = server.server_addr().to_ip().expect("proxy address").port();
        crate::harness::note_host(&format!("127.0.0.1:{port}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let server = Arc::clone(&server);
            let log = Arc::clone(&log);
            let upstream = upstream.to_owned();
            std::thread::spawn(move || {
                let agent = http_agent();
                let me = format!("127.0.0.1:{port}");
                let mut patches = 0;
                for mut request in server.incoming_requests() {
                    let method = request.method().as_str().to_owned();
                    let path = request.url().to_owned();
                    let mut body = Vec::new();
                    let _ = request.as_reader().read_to_end(&mut body);
                    if method == "PATCH" {
                        patches += 1;
                        if Some(patches) == patch_416 {
                            log.lock().unwrap().push(Logged {
                                method,
                                path,
                                status: 416,
                            });
                            let _ = request
                                .respond(tiny_http::Response::empty(tiny_http::StatusCode(416)));
                            continue;
                        }
                    }
                    let mut builder = ureq::http::Request::builder()
                        .method(method.as_str())
                        .uri(format!("{upstream}{path}"));
                    for h in request.headers() {
                        let name = h.field.as_str().as_str();
                        if !HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) {
                            builder = builder.header(name, h.value.as_str());
                        }
                    }
                    builder = builder
                        .header("X-Forwarded-Host", me.as_str())
                        .header("X-Forwarded-Proto", "http");
                    let sent = if matches!(method.as_str(), "GET" | "HEAD" | "DELETE") {
                        agent.run(builder.body(()).expect("request"))
                    } else {
                        agent.run(builder.body(body).expect("request"))
                    };
                    let (status, headers, data) = match sent {
                        Ok(mut resp) => {
                            let status = resp.status().as_u16();
                            let mut headers = Vec::new();
                            for (k, v) in resp.headers() {
                                let name = k.as_str();
                                if HOP_BY_HOP.contains(&name) {
                                    continue;
                                }
                                let mut value = v.to_str().unwrap_or("").to_owned();
                                if relative && name == "location" {
                                    for origin in [format!("http://{me}"), upstream.clone()] {
                                        if let Some(rest) = value.strip_prefix(&origin) {
                                            value = rest.to_owned();
                                        }
                                    }
                                }
                                if let Ok(h) = tiny_http::Header::from_bytes(name, value) {
                                    headers.push(h);
                                }
                            }
                            let data = resp
                                .body_mut()
                                .with_config()
                                .limit(512 << 20)
                                .read_to_vec()
                                .unwrap_or_default();
                            (status, headers, data)
                        }
                        Err(e) => (502, Vec::new(), e.to_string().into_bytes()),
                    };
                    log.lock().unwrap().push(Logged {
                        method,
                        path,
                        status,
                    });
                    let len = data.len();
                    let response = tiny_http::Response::new(
                        tiny_http::StatusCode(status),
                        headers,
                        std::io::Cursor::new(data),
                        Some(len),
                        None,
                    );
                    let _ = request.respond(response);
                }
            })
        };
        Proxy {
            server,
            thread: Some(thread),
            port,
            log,
        }
    }

    /// `127.0.0.1:PORT`, to use as the registry part of a repository.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
