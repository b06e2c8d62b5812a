//! An https front for a TLS registry that answers blob GETs with a redirect to a "CDN" on
//! another https host (127.0.0.2), as ghcr.io sends blobs to pkg-containers.githubusercontent.com
//! with a signed query: pkg must follow it, check the CDN's certificate too, and never hand it
//! the registry's token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::registry::Registry;

pub struct Front {
    front: Arc<tiny_http::Server>,
    cdn: Arc<tiny_http::Server>,
    /// Blob GETs the CDN served, and how many of them carried an Authorization header.
    pub served: Arc<AtomicUsize>,
    pub authorized: Arc<AtomicUsize>,
}

fn https(addr: &str, cert: &str, key: &str) -> Arc<tiny_http::Server> {
    Arc::new(
        tiny_http::Server::https(
            addr,
            tiny_http::SslConfig {
                certificate: cert.as_bytes().to_vec(),
                private_key: key.as_bytes().to_vec(),
            },
        )
        .expect("serve https"),
    )
}

fn port(server: &tiny_http::Server) -> u16 {
    server.server_addr().to_ip().expect("an IP address").port()
}

impl Front {
    /// In front of `registry` (started with [`Registry::start_tls`]).
    pub fn start(registry: &Registry) -> Front {
        let tls = registry.tls().expect("a TLS registry");
        let front = https("127.0.0.1:0", &tls.cert_pem, &tls.key_pem);
        let cdn = https("127.0.0.2:0", &tls.cert_pem, &tls.key_pem);
        let cdn_base = format!("https://127.0.0.2:{}", port(&cdn));
        let blobs: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let served = Arc::new(AtomicUsize::new(0));
        let authorized = Arc::new(AtomicUsize::new(0));
        let upstream = registry.https_url();
        let ca = ureq::tls::Certificate::from_pem(tls.ca_pem.as_bytes()).expect("the CA");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca])))
                    .build(),
            )
            .build()
            .into();
        {
            let (front, blobs) = (Arc::clone(&front), Arc::clone(&blobs));
            std::thread::spawn(move || {
                for request in front.incoming_requests() {
                    forward(&agent, &upstream, &cdn_base, &blobs, request);
                }
            });
        }
        {
            let (cdn, blobs) = (Arc::clone(&cdn), Arc::clone(&blobs));
            let (served, authorized) = (Arc::clone(&served), Arc::clone(&authorized));
            std::thread::spawn(move || {
                for request in cdn.incoming_requests() {
                    if request
                        .headers()
                        .iter()
                        .any(|h| h.field.equiv("Authorization"))
                    {
                        authorized.fetch_add(1, Ordering::SeqCst);
                    }
                    let digest = request
                        .url()
                        .trim_start_matches("/cdn/")
                        .split('?')
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let body = blobs.lock().unwrap().get(&digest).cloned();
                    let _ = match body {
                        Some(body) => {
                            served.fetch_add(1, Ordering::SeqCst);
                            request.respond(tiny_http::Response::from_data(body))
                        }
                        None => request.respond(tiny_http::Response::empty(404)),
                    };
                }
            });
        }
        Front {
            front,
            cdn,
            served,
            authorized,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", port(&self.front))
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.front.unblock();
        self.cdn.unblock();
    }
}

/// Passes a request on to the registry; a blob it answers 200 is kept and answered with a 307
/// to the CDN instead.
fn forward(
    agent: &ureq::Agent,
    upstream: &str,
    cdn: &str,
    blobs: &Mutex<HashMap<String, Vec<u8>>>,
    mut request: tiny_http::Request,
) {
    let url = format!("{upstream}{}", request.url());
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let mut builder = ureq::http::Request::builder()
        .method(request.method().as_str())
        .uri(&url);
    for h in request.headers() {
        let name = h.field.as_str().as_str().to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "authorization" | "accept" | "range" | "content-type" | "content-length"
        ) {
            builder = builder.header(name, h.value.as_str());
        }
    }
    let Ok(resp) = agent.run(builder.body(body).expect("a request")) else {
        let _ = request.respond(tiny_http::Response::empty(502));
        return;
    };
    let status = resp.status().as_u16();
    let headers: Vec<tiny_http::Header> = resp
        .headers()
        .iter()
        .filter(|(n, _)| {
            matches!(
                n.as_str(),
                "content-type"
                    | "docker-content-digest"
                    | "www-authenticate"
                    | "location"
                    | "docker-upload-uuid"
                    | "range"
            )
        })
        .filter_map(|(n, v)| tiny_http::Header::from_bytes(n.as_str(), v.as_bytes()).ok())
        .collect();
    let data = resp.into_body().read_to_vec().unwrap_or_default();
    let path = request.url().to_owned();
    if *request.method() == tiny_http::Method::Get
        && status == 200
        && let Some(digest) = path.split("/blobs/").nth(1)
    {
        let digest = digest.split('?').next().unwrap_or_default().to_owned();
        blobs.lock().unwrap().insert(digest.clone(), data);
        let location = format!("{cdn}/cdn/{digest}?X-Amz-Signature=secret");
        let _ =
            request.respond(tiny_http::Response::empty(307).with_header(
                tiny_http::Header::from_bytes("Location", location.as_bytes()).unwrap(),
            ));
        return;
    }
    let mut response = tiny_http::Response::from_data(data).with_status_code(status);
    for h in headers {
        response = response.with_header(h);
    }
    let _ = request.respond(response);
}
