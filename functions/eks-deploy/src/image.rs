//! Image references: which ones live in ECR (and so can be resolved to a digest and scanned), and
//! the pinned `repository@sha256:…` form a Deployment gets.
//!
//! An image outside ECR is used exactly as given: we cannot ask its registry for a digest with
//! the function's IAM role, and guessing one would be worse than running the tag.

use std::fmt;

/// An image reference, split the way the registry API needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (`123456789012.dkr.ecr.eu-west-1.amazonaws.com`), when one is named.
    pub registry: Option<String>,
    /// The repository path inside the registry (`shop/web`).
    pub repository: String,
    /// The tag, when one is given (`v2`).
    pub tag: Option<String>,
    /// The digest, when one is given (`sha256:…`).
    pub digest: Option<String>,
}

/// Where an ECR image lives: what DescribeImages needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    /// The registry's account (12 digits): DescribeImages' `registryId`.
    pub account: String,
    /// The registry's region: the client to ask.
    pub region: String,
    /// The repository name.
    pub repository: String,
}

impl ImageRef {
    /// Splits `image`. The reference was checked by the parameter parser (no whitespace, a name
    /// before any tag or digest, a well-formed digest); this only cuts it up.
    pub fn parse(image: &str) -> Self {
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (image, None),
        };
        // A tag is what follows the last ':' after the last '/': a ':' before it is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_owned()),
            ),
            None => (rest, None),
        };
        // Docker's rule: the first component is a registry when it has a '.' or a ':' or is
        // `localhost`.
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first.to_owned()), path.to_owned())
            }
            _ => (None, name.to_owned()),
        };
        Self {
            registry,
            repository,
            tag,
            digest,
        }
    }

    /// The ECR registry this image lives in, or `None` for any other registry.
    pub fn ecr(&self) -> Option<EcrImage> {
        let host = self.registry.as_deref()?;
        // <account>.dkr.ecr.<region>.amazonaws.com, or .amazonaws.com.cn in China.
        let mut parts = host.splitn(4, '.');
        let account = parts.next()?;
        let (dkr, ecr, rest) = (parts.next()?, parts.next()?, parts.next()?);
        let (region, suffix) = rest.split_once('.')?;
        let is_ecr = account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && dkr == "dkr"
            && ecr == "ecr"
            && !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && (suffix == "amazonaws.com" || suffix == "amazonaws.com.cn");
        is_ecr.then(|| EcrImage {
            account: account.to_owned(),
            region: region.to_owned(),
            repository: self.repository.clone(),
        })
    }

    /// The name without tag or digest (`registry/repository`).
    pub fn name(&self) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// The reference pinned to `digest`: `registry/repository@sha256:…`. The tag is dropped
    /// because a reference with both is resolved by digest alone; it is recorded in the
    /// change-cause instead.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// How many hex digits of a digest a summary line shows: as many as `docker images` shows,
/// enough to tell releases apart by eye.
const SHORT_HEX: usize = 12;

/// `sha256:0123456789ab…`: a digest short enough for a one-line summary.
pub fn short_digest(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("", digest));
    if hex.chars().count() <= SHORT_HEX {
        return digest.to_owned();
    }
    let cut: String = hex.chars().take(SHORT_HEX).collect();
    if algorithm.is_empty() {
        format!("{cut}…")
    } else {
        format!("{algorithm}:{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

    #[test]
    fn an_ecr_image_by_tag_is_split_into_account_region_repository_and_tag() {
        let image = ImageRef::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web:v2");
        assert_eq!(
            image.registry.as_deref(),
            Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
        );
        assert_eq!(image.repository, "shop/web");
        assert_eq!(image.tag.as_deref(), Some("v2"));
        assert_eq!(image.digest, None);
        assert_eq!(
            image.ecr(),
            Some(EcrImage {
                account: "123456789012".into(),
                region: "eu-west-1".into(),
                repository: "shop/web".into(),
            })
        );
        assert_eq!(
            image.pinned(DIGEST),
            format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web@{DIGEST}")
        );
    }

    #[test]
    fn china_regions_are_ecr_too() {
        let image = ImageRef::parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/shop:1");
        assert_eq!(image.ecr().map(|e| e.region), Some("cn-north-1".to_owned()));
    }

    #[test]
    fn images_outside_ecr_are_not_ecr() {
        for image in [
            "nginx:1.27",
            "docker.io/library/nginx:1.27",
            "localhost:5000/shop:v2",
            "public.ecr.aws/nginx/nginx:1.27",
            "12345.dkr.ecr.eu-west-1.amazonaws.com/shop:v2",
            "123456789012.dkr.ecr.eu-west-1.example.com/shop:v2",
        ] {
            assert_eq!(ImageRef::parse(image).ecr(), None, "{image}");
        }
    }

    #[test]
    fn a_port_is_not_a_tag_and_a_digest_is_kept() {
        let image = ImageRef::parse("localhost:5000/shop");
        assert_eq!(image.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(image.repository, "shop");
        assert_eq!(image.tag, None);
        let pinned = ImageRef::parse(&format!("localhost:5000/shop:v2@{DIGEST}"));
        assert_eq!(pinned.tag.as_deref(), Some("v2"));
        assert_eq!(pinned.digest.as_deref(), Some(DIGEST));
        assert_eq!(
            pinned.to_string(),
            format!("localhost:5000/shop:v2@{DIGEST}")
        );
        let bare = ImageRef::parse("nginx");
        assert_eq!(
            (bare.registry, bare.repository, bare.tag),
            (None, "nginx".to_owned(), None)
        );
    }

    #[test]
    fn short_digests_keep_the_algorithm_and_twelve_hex_digits() {
        assert_eq!(short_digest(DIGEST), "sha256:ab12cd34ef56…");
        assert_eq!(short_digest("sha256:ab12"), "sha256:ab12");
        assert_eq!(short_digest(&"f".repeat(64)), "ffffffffffff…");
    }
}
