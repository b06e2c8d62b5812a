//! TLS and proxies as companies have them: the roots pkg trusts — Mozilla's bundled ones, the
//! system's store (which `SSL_CERT_FILE` and `SSL_CERT_DIR` replace, as for OpenSSL) and the
//! `ca_file` setting — and the proxy each request goes through, read as curl reads them:
//! `https_proxy`/`HTTPS_PROXY` for https, `http_proxy` for http, `ALL_PROXY` for both,
//! `NO_PROXY` exempting hosts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{Certificate, PemItem, RootCerts};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("the CA file {} cannot be read: {source}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {} holds no PEM certificate{reason}", path.display())]
    NoCertificate { path: PathBuf, reason: String },
    #[error("{var} is not an http:// or https:// proxy URL: `{value}`")]
    Proxy { var: &'static str, value: String },
}

/// The certificates TLS trusts.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub roots: Arc<Vec<Certificate<'static>>>,
}

/// Mozilla's bundled roots and the system's (or `SSL_CERT_FILE`/`SSL_CERT_DIR`'s), read once
/// per process however many clients a run makes.
fn shared_roots() -> &'static [Certificate<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<Certificate<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        // A broken file in the system store is not pkg's to refuse: what loads is used.
        let native = rustls_native_certs::load_native_certs();
        roots.extend(
            native
                .certs
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned()),
        );
        roots
    })
}

/// The certificates of a PEM file (the `ca_file` setting): refused when it cannot be read or
/// holds none.
pub fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, NetworkError> {
    let pem = std::fs::read(path).map_err(|source| NetworkError::CaFile {
        path: path.to_owned(),
        source,
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(NetworkError::NoCertificate {
                    path: path.to_owned(),
                    reason: format!(" ({e})"),
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(NetworkError::NoCertificate {
            path: path.to_owned(),
            reason: String::new(),
        });
    }
    Ok(certs)
}

impl Trust {
    /// Bundled roots, the system's (or `SSL_CERT_FILE`/`SSL_CERT_DIR`'s), and `ca_file`'s.
    pub fn load(ca_file: Option<&[Certificate<'static>]>) -> Trust {
        let mut roots = shared_roots().to_vec();
        roots.extend(ca_file.into_iter().flatten().cloned());
        Trust {
            roots: Arc::new(roots),
        }
    }

    pub fn root_certs(&self) -> RootCerts {
        if self.roots.is_empty() {
            RootCerts::WebPki
        } else {
            RootCerts::Specific(self.roots.clone())
        }
    }
}

/// The proxies in the environment, as curl reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proxies {
    /// For https URLs: (variable, URL).
    pub https: Option<(&'static str, String)>,
    /// For http URLs.
    pub http: Option<(&'static str, String)>,
    /// `NO_PROXY`/`no_proxy`.
    pub no_proxy: Option<String>,
}

fn var(names: &[&'static str]) -> Option<(&'static str, String)> {
    names.iter().find_map(|n| {
        std::env::var(n)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*n, v.trim().to_owned()))
    })
}

impl Proxies {
    /// As curl: `https_proxy`/`HTTPS_PROXY`, else `all_proxy`/`ALL_PROXY`, for https; only the
    /// lowercase `http_proxy` (an uppercase one may come from a CGI request header), else
    /// `ALL_PROXY`, for http; `no_proxy`/`NO_PROXY`.
    pub fn from_env() -> Result<Proxies, NetworkError> {
        let all = var(&["all_proxy", "ALL_PROXY"]);
        let p = Proxies {
            https: var(&["https_proxy", "HTTPS_PROXY"]).or_else(|| all.clone()),
            http: var(&["http_proxy"]).or(all),
            no_proxy: var(&["no_proxy", "NO_PROXY"]).map(|(_, v)| v),
        };
        for (name, value) in p.https.iter().chain(p.http.iter()) {
            proxy(value, p.no_proxy.as_deref()).map_err(|_| NetworkError::Proxy {
                var: name,
                value: without_userinfo(value),
            })?;
        }
        Ok(p)
    }

    /// The ureq proxy for one scheme.
    pub fn for_scheme(&self, https: bool) -> Option<ureq::Proxy> {
        let (_, url) = if https {
            self.https.as_ref()?
        } else {
            self.http.as_ref()?
        };
        proxy(url, self.no_proxy.as_deref()).ok()
    }

    /// `https: http://proxy:3128 (HTTPS_PROXY); no proxy for: localhost`, never a password.
    /// As `pkg config --json` shows it: each proxy as `{"url", "from"}` (no password) or
    /// null, and the hosts that go direct.
    pub fn as_json(&self) -> serde_json::Value {
        let one = |p: &Option<(&'static str, String)>| match p {
            Some((var, url)) => serde_json::json!({"url": without_userinfo(url), "from": var}),
            None => serde_json::Value::Null,
        };
        serde_json::json!({
            "https": one(&self.https),
            "http": one(&self.http),
            "no_proxy": self.no_proxy.as_deref().map(|n| {
                n.split(',').map(str::trim).filter(|h| !h.is_empty()).collect::<Vec<_>>()
            }),
        })
    }

    pub fn describe(&self) -> String {
        let one = |p: &Option<(&'static str, String)>| match p {
            Some((var, url)) => format!("{} ({var})", without_userinfo(url)),
            None => "none".into(),
        };
        let mut out = format!("https: {}, http: {}", one(&self.https), one(&self.http));
        if let Some(n) = &self.no_proxy {
            out.push_str(&format!("; not for: {n}"));
        }
        out
    }
}

fn proxy(url: &str, no_proxy: Option<&str>) -> Result<ureq::Proxy, ureq::Error> {
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let bad = || ureq::Error::InvalidProxyUrl;
    let parsed = url::Url::parse(&url).map_err(|_| bad())?;
    // (SOCKS needs a ureq feature pkg does not build with.)
    let protocol = match parsed.scheme() {
        "http" => ureq::ProxyProtocol::Http,
        "https" => ureq::ProxyProtocol::Https,
        _ => return Err(bad()),
    };
    let mut builder = ureq::Proxy::builder(protocol)
        .host(parsed.host_str().ok_or_else(bad)?)
        .port(parsed.port_or_known_default().unwrap_or(8080));
    if !parsed.username().is_empty() {
        builder = builder.username(parsed.username());
        if let Some(p) = parsed.password() {
            builder = builder.password(p);
        }
    }
    if let Some(n) = no_proxy {
        for host in n.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            builder = builder.no_proxy(host);
        }
    }
    builder.build()
}

/// A proxy URL without its password.
fn without_userinfo(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() || !u.username().is_empty() => {
            let _ = u.set_username("***");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
