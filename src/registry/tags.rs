//! Tag listing: `GET /v2/NAME/tags/list`, following `Link: <…>; rel="next"` on the same origin,
//! with a cap on pages so an endless pagination cannot keep pkg busy forever.

use super::{Call, Client, RegistryError, Repository, read_limited};

/// Pages followed at most.
pub const MAX_PAGES: usize = 100;
const MAX_PAGE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Client {
    /// Every tag of `repo`, in the registry's order. More than [`MAX_PAGES`] pages is an error.
    pub fn list_tags(&self, repo: &Repository) -> Result<Vec<String>, RegistryError> {
        let mut url = self.url(repo, "tags/list?n=1000")?;
        let origin = url.origin();
        let mut tags = Vec::new();
        for _ in 0..MAX_PAGES {
            // One page is one try: a body that breaks off or ends early is asked again.
            let (page, next) = self.with_body_retries(|| {
                let resp = self.request(
                    repo,
                    "pull",
                    &Call::get(&url).header("Accept", "application/json"),
                )?;
                if resp.status() != 200 {
                    return Err(
                        self.status_error(repo, url.as_str(), resp, || "tag list".to_owned())
                    );
                }
                let next = resp
                    .headers()
                    .get_all("link")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(next_link);
                let body = read_limited(resp, url.as_str(), MAX_PAGE_BYTES)?;
                let page: Page = serde_json::from_slice(&body).map_err(|e| {
                    if e.is_eof() && !body.is_empty() {
                        return RegistryError::CutShort {
                            url: url.to_string(),
                            what: "tag list",
                        };
                    }
                    RegistryError::Status {
                        url: url.to_string(),
                        status: 200,
                        detail: format!(": the tag list is not valid JSON ({e})"),
                    }
                })?;
                Ok((page, next))
            })?;
            tags.extend(page.tags.unwrap_or_default());
            let Some(next) = next else {
                return Ok(tags);
            };
            let next = url.join(&next).map_err(|e| RegistryError::BadUrl {
                url: next.clone(),
                reason: e.to_string(),
            })?;
            if next.origin() != origin {
                return Err(RegistryError::Redirect {
                    url: url.to_string(),
                    reason: format!(
                        "the next page of tags is on another origin ({})",
                        next.origin().ascii_serialization()
                    ),
                });
            }
            url = next;
        }
        Err(RegistryError::Status {
            url: url.to_string(),
            status: 200,
            detail: format!(": the tag list goes on for more than {MAX_PAGES} pages; giving up"),
        })
    }
}

/// The target of `<URL>; rel="next"` in a `Link` header value (several links may be listed).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/b/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/b/tags/list?last=x&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next>; rel=next"#).as_deref(),
            Some("https://x/next")
        );
        assert_eq!(next_link(r#"<https://x/prev>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }
}
