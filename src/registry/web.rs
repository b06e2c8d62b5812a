//! Plain documents outside the registry API (homebrew/core's formula JSON), fetched through the
//! same agent, proxies, timeouts, retries and redirect rules, and revalidated with
//! `If-None-Match` / `If-Modified-Since`.

use url::Url;

use super::{Call, Client, RegistryError, read_limited, redact};

/// What a conditional GET brought.
pub enum Document {
    /// The server said 304: what was fetched before is still current.
    NotModified,
    Fresh {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// The validators of an earlier fetch, sent back so an unchanged document costs a 304.
#[derive(Default)]
pub struct Validators<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

impl Client {
    /// GET `url` (at most `limit` bytes), anonymous; 304 when `validators` still hold.
    pub fn get_document(
        &self,
        url: &Url,
        validators: &Validators<'_>,
        limit: u64,
    ) -> Result<Document, RegistryError> {
        self.with_body_retries(|| self.get_document_once(url, validators, limit))
    }

    fn get_document_once(
        &self,
        url: &Url,
        validators: &Validators<'_>,
        limit: u64,
    ) -> Result<Document, RegistryError> {
        let mut call = Call::get(url).header("Accept", "application/json");
        if let Some(etag) = validators.etag {
            call = call.header("If-None-Match", etag);
        }
        if let Some(date) = validators.last_modified {
            call = call.header("If-Modified-Since", date);
        }
        let resp = self.with_retries(true, || self.send_following(url, &call, None))?;
        let status = resp.status().as_u16();
        if status == 304 {
            return Ok(Document::NotModified);
        }
        let shown = redact(url);
        if status != 200 {
            return Err(RegistryError::Status {
                url: shown,
                status,
                detail: format!(": {}", super::error_detail(resp)),
            });
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= 1024)
                .map(str::to_owned)
        };
        let etag = header("etag");
        let last_modified = header("last-modified");
        let bytes = read_limited(resp, &shown, limit)?;
        Ok(Document::Fresh {
            bytes,
            etag,
            last_modified,
        })
    }
}
