//! How a registry's chain of endpoints (its mirrors, then itself) is used: which endpoint a request
//! goes to first, which ones rest after failing, and what each failed endpoint said — so a request
//! that runs out of endpoints reports every one it tried, with its cause and number of tries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::http::Response;
use url::Url;

use super::error::Tried;
use super::safety::same_origin;
use super::{Call, Client, RegistryError, Repository, Tries, rebase, retry};
use crate::report::Event;

/// Endpoints that failed a request after all their tries, resting until a time: requests skip
/// them (they are tried last) until then, then try them first again. One per client, shared.
#[derive(Debug, Default)]
pub struct Health {
    resting: Mutex<HashMap<String, Rest>>,
}

#[derive(Debug)]
struct Rest {
    until: Instant,
}

impl Health {
    /// The order in which a request tries `chain`: the endpoints not resting, in the chain's
    /// order, then the resting ones (a request never gives up while one is left untried).
    pub fn order(&self, chain: &[Url]) -> Vec<usize> {
        let now = Instant::now();
        let resting = |u: &Url| {
            self.resting
                .lock()
                .ok()
                .and_then(|r| r.get(&key(u)).map(|rest| rest.until > now))
                .unwrap_or(false)
        };
        let (mut awake, asleep): (Vec<usize>, Vec<usize>) =
            (0..chain.len()).partition(|i| !resting(&chain[*i]));
        awake.extend(asleep);
        awake
    }

    /// `endpoint` failed a request after all its tries: it rests for `cooldown`. Returns
    /// whether this is news (it was not resting already), so the caller says it once.
    pub fn failed(&self, endpoint: &Url, cooldown: Duration) -> bool {
        let Ok(mut resting) = self.resting.lock() else {
            return false;
        };
        let now = Instant::now();
        let news = resting.get(&key(endpoint)).is_none_or(|r| r.until <= now);
        resting.insert(
            key(endpoint),
            Rest {
                until: now + cooldown,
            },
        );
        news
    }

    /// `endpoint` answered: it no longer rests.
    pub fn answered(&self, endpoint: &Url) {
        if let Ok(mut resting) = self.resting.lock() {
            resting.remove(&key(endpoint));
        }
    }
}

fn key(u: &Url) -> String {
    u.as_str().trim_end_matches('/').to_owned()
}

/// What a transport failure was, in the words a user searches for: `connection refused`,
/// `connection reset`, `timed out (connect)`, `no such host (DNS)`, `TLS: …`.
pub fn cause(e: &RegistryError) -> String {
    match e {
        RegistryError::Transport { source, .. } => transport_cause(source),
        other => super::first_line(other),
    }
}

fn transport_cause(e: &ureq::Error) -> String {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => "connection refused".into(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => "connection reset".into(),
            ErrorKind::TimedOut => "timed out".into(),
            ErrorKind::UnexpectedEof => "the connection closed before an answer".into(),
            // The resolver's failure reaches ureq as a plain I/O error ("failed to lookup
            // address information: …"): said as the DNS failure it is.
            _ if io.to_string().contains("lookup address") => {
                format!("no such host (DNS: {io})")
            }
            _ => io.to_string(),
        },
        ureq::Error::Timeout(ureq::Timeout::Connect) => {
            "timed out connecting (PKG_CONNECT_TIMEOUT)".into()
        }
        ureq::Error::Timeout(t) => format!("no answer within PKG_READ_TIMEOUT ({t})"),
        ureq::Error::HostNotFound => "no such host (DNS)".into(),
        ureq::Error::ConnectionFailed => "could not connect".into(),
        ureq::Error::Tls(what) => format!("TLS: {what}"),
        ureq::Error::Rustls(e) => format!("TLS: {e}"),
        other => other.to_string(),
    }
}

impl Client {
    /// Sends `call` with a token for `repository:NAME:<actions>` (`pull` or `pull,push`), answering
    /// one 401 by (re)authenticating. GET and HEAD follow redirects; other methods return them.
    /// The body is a byte slice, so it can be sent again after a 401.
    ///
    /// A pull goes along the registry's chain (its mirrors, then the registry itself): each
    /// endpoint gets its tries (connection failures, 408, 429 and 5xx are tried again after a
    /// backoff or `Retry-After`) before the request moves on. An endpoint that used up its
    /// tries rests (`PKG_MIRROR_COOLDOWN`, said once): later requests try it last until then,
    /// and first again after. When every endpoint failed, the error names each one, its cause
    /// and its tries.
    pub fn request(
        &self,
        repo: &Repository,
        actions: &str,
        call: &Call<'_>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let chain = self.mirrors.chain(&repo.registry)?;
        let on_chain = chain.iter().any(|b| same_origin(b, &call.url));
        if !on_chain || actions != "pull" {
            let mut tries = Tries::default();
            return self.request_at(&chain[0], repo, actions, call, true, &mut tries);
        }
        let order = self.health.order(&chain);
        let mut tried = Vec::new();
        // Said only when a later endpoint answers: when none does, the error says it all.
        let mut notices: Vec<(String, String, u32)> = Vec::new();
        for (n, &i) in order.iter().enumerate() {
            let base = &chain[i];
            let mut moved = Call {
                method: call.method.clone(),
                url: call.url.clone(),
                headers: call.headers.clone(),
                body: call.body,
            };
            rebase(&mut moved.url, base);
            let mut made = Tries::default();
            let answer = self.request_at(base, repo, actions, &moved, true, &mut made);
            let cause = match &answer {
                Ok(resp) if retry::retryable_status(resp.status().as_u16()) => {
                    Some(format!("answered {}", resp.status().as_u16()))
                }
                Err(e @ RegistryError::Transport { .. }) => Some(cause(e)),
                _ => None,
            };
            let Some(cause) = cause else {
                self.health.answered(base);
                let instead = base.as_str().trim_end_matches('/');
                for (shown, cause, made) in notices {
                    self.log(|| format!("{shown} for {}: {cause}; using {instead}", repo.registry));
                    self.notice(Event::EndpointResting {
                        endpoint: &shown,
                        registry: &repo.registry,
                        cause: &cause,
                        tries: made,
                        instead,
                        seconds: self.net.mirror_cooldown.as_secs(),
                    });
                }
                return answer.map_err(|e| self.via_mirror(e, &repo.registry, base));
            };
            if chain.len() == 1 {
                return answer.map_err(|e| self.via_mirror(e, &repo.registry, base));
            }
            let shown = base.as_str().trim_end_matches('/').to_owned();
            let mirror_of = self
                .mirrors
                .is_mirror(&repo.registry, base)
                .then(|| (repo.registry.clone(), self.mirrors.setting().to_owned()));
            tried.push(Tried {
                endpoint: shown.clone(),
                mirror_of,
                cause: cause.clone(),
                tries: made.made,
                out_of_time: made.out_of_time,
            });
            if n + 1 == order.len() {
                break;
            }
            if self.health.failed(base, self.net.mirror_cooldown) {
                notices.push((shown, cause, made.made));
            }
        }
        if let Some(last) = order.last() {
            self.health.failed(&chain[*last], self.net.mirror_cooldown);
        }
        Err(RegistryError::Unreachable {
            registry: repo.registry.clone(),
            tried,
        })
    }

    /// A failure at a mirror says which registry it stands in for, and where it was given.
    fn via_mirror(&self, e: RegistryError, registry: &str, base: &Url) -> RegistryError {
        match e {
            RegistryError::Transport {
                url, source, tries, ..
            } if self.mirrors.is_mirror(registry, base) => RegistryError::Transport {
                url,
                source,
                mirror_of: Some(Box::new((
                    registry.to_owned(),
                    self.mirrors.setting().to_owned(),
                ))),
                tries,
            },
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_resting_endpoint_is_tried_last_and_first_again_once_rested() {
        let chain = [
            url("http://m1:5000/"),
            url("http://m2:5000/"),
            url("https://r/"),
        ];
        let health = Health::default();
        assert_eq!(health.order(&chain), [0, 1, 2]);
        assert!(health.failed(&chain[0], Duration::from_millis(50)));
        assert!(
            !health.failed(&chain[0], Duration::from_millis(50)),
            "said once"
        );
        assert_eq!(health.order(&chain), [1, 2, 0]);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(health.order(&chain), [0, 1, 2]);
        assert!(
            health.failed(&chain[0], Duration::from_secs(60)),
            "a new outage"
        );
        health.answered(&chain[0]);
        assert_eq!(health.order(&chain), [0, 1, 2]);
    }

    #[test]
    fn causes_are_said_as_users_search_for_them() {
        let refused = ureq::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(transport_cause(&refused), "connection refused");
        assert_eq!(
            transport_cause(&ureq::Error::HostNotFound),
            "no such host (DNS)"
        );
        // As the system resolver's failure arrives (getaddrinfo through std).
        let lookup = ureq::Error::Io(std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        ));
        assert!(transport_cause(&lookup).starts_with("no such host (DNS: "));
        let tried = Tried {
            endpoint: "http://127.0.0.1:5999".into(),
            mirror_of: Some(("ghcr.io".into(), "PKG_REGISTRY_MIRRORS".into())),
            cause: "connection refused".into(),
            tries: 5,
            out_of_time: false,
        };
        assert_eq!(
            tried.to_string(),
            "http://127.0.0.1:5999 (the mirror of ghcr.io in PKG_REGISTRY_MIRRORS): connection refused, 5 tries"
        );
    }
}
