//! The connection to the remote: an S3 client (`object_store`) for `[remote]`, credentials
//! from the environment or a profile file (never printed, never logged), keys under the
//! remote's prefix, and errors turned into one clear sentence each.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart,
};

use crate::config::RemoteConfig;

/// Why the remote could not be used. Each is one sentence that says what to do; none holds a
/// credential.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No `[remote] url`.
    #[error(
        "no remote configured: add a [remote] section to vaultkeep.toml with url = \"s3://bucket/prefix\" (and endpoint = \"https://...\" for a service other than AWS S3)"
    )]
    NotConfigured,
    /// No credentials anywhere.
    #[error(
        "no credentials for {remote}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add a profile to {file} (and [remote] profile)"
    )]
    NoCredentials {
        /// The remote.
        remote: String,
        /// The credentials file looked at.
        file: String,
    },
    /// The server refused the credentials.
    #[error(
        "{remote} refused the credentials (wrong access key or secret): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the profile"
    )]
    Credentials {
        /// The remote.
        remote: String,
    },
    /// The bucket does not exist.
    #[error("the bucket {bucket} does not exist on {endpoint}: create it, or fix [remote] url")]
    NoBucket {
        /// The bucket.
        bucket: String,
        /// The server.
        endpoint: String,
    },
    /// The machine's clock is too far from the server's for signed requests.
    #[error(
        "{remote} refused the request because this machine's clock is off: set the clock (for example with NTP) and run again"
    )]
    ClockSkew {
        /// The remote.
        remote: String,
    },
    /// The bucket takes no more writes.
    #[error(
        "{remote} refused to store {key}: the bucket is full, read-only, or these credentials may not write ({detail})"
    )]
    Refused {
        /// The remote.
        remote: String,
        /// The key.
        key: String,
        /// The server's word.
        detail: String,
    },
    /// The server could not be reached or answered with an error.
    #[error("cannot reach {remote}: {detail}; nothing is lost, run again when it answers")]
    Unreachable {
        /// The remote.
        remote: String,
        /// What failed.
        detail: String,
    },
    /// A remote file is not what it should be.
    #[error("{key} on {remote} is damaged: {detail}")]
    Damaged {
        /// The remote.
        remote: String,
        /// The key.
        key: String,
        /// How.
        detail: String,
    },
    /// The local archive could not be read or written.
    #[error(transparent)]
    Local(#[from] crate::store::Error),
}

/// A remote: the bucket, under its prefix.
#[derive(Clone)]
pub struct Client {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    name: String,
    endpoint: String,
    bucket: String,
}

/// Objects up to this size go in one request; larger ones in parts, streamed.
const ONE_REQUEST: u64 = 32 * 1024 * 1024;
const PART: usize = 16 * 1024 * 1024;

impl Client {
    /// Connects to the remote `config` names (no request is made yet).
    pub fn open(config: &RemoteConfig) -> Result<Client, RemoteError> {
        let url = config.url.as_ref().ok_or(RemoteError::NotConfigured)?;
        let name = url.to_string();
        let (key, secret, token) = credentials(config, &name)?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&url.bucket)
            .with_region(&config.region)
            .with_access_key_id(key)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(!config.path_style)
            // A few quick retries: a server that is down says so in seconds, not minutes
            // (the next push or pull picks up where this one stopped).
            .with_retry(object_store::RetryConfig {
                max_retries: 4,
                retry_timeout: std::time::Duration::from_secs(30),
                backoff: object_store::BackoffConfig {
                    init_backoff: std::time::Duration::from_millis(200),
                    max_backoff: std::time::Duration::from_secs(5),
                    base: 2.0,
                },
            });
        if let Some(t) = token {
            builder = builder.with_token(t);
        }
        let endpoint = match &config.endpoint {
            Some(e) => {
                builder = builder
                    .with_endpoint(e.as_str().trim_end_matches('/'))
                    .with_allow_http(e.scheme() == "http");
                e.to_string()
            }
            None => format!("s3.{}.amazonaws.com", config.region),
        };
        let store = builder.build().map_err(|e| RemoteError::Unreachable {
            remote: name.clone(),
            detail: e.to_string(),
        })?;
        Ok(Client {
            store: Arc::new(store),
            prefix: url.prefix.clone(),
            name,
            endpoint,
            bucket: url.bucket.clone(),
        })
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full key of `rel` (a path under the prefix).
    fn key(&self, rel: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(rel)
        } else {
            Key::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// `rel` back from a full key.
    fn rel(&self, key: &Key) -> String {
        let full = key.as_ref();
        if self.prefix.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(&format!("{}/", self.prefix))
                .unwrap_or(full)
                .to_string()
        }
    }

    /// Every object under `rel` (a folder), with keys relative to the prefix.
    pub async fn list(&self, rel: &str) -> Result<Vec<(String, ObjectMeta)>, RemoteError> {
        let key = self.key(rel.trim_end_matches('/'));
        let metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&key))
            .try_collect()
            .await
            .map_err(|e| self.error(&key, e))?;
        Ok(metas
            .into_iter()
            .map(|m| (self.rel(&m.location), m))
            .collect())
    }

    /// The names of the folders right under `rel`.
    pub async fn folders(&self, rel: &str) -> Result<Vec<String>, RemoteError> {
        let key = self.key(rel.trim_end_matches('/'));
        let listed = self
            .store
            .list_with_delimiter(Some(&key))
            .await
            .map_err(|e| self.error(&key, e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Creates `rel` with `bytes` unless it exists (a conditional create: two devices never
    /// overwrite each other). Returns whether it was created.
    pub async fn create(&self, rel: &str, bytes: Bytes) -> Result<bool, RemoteError> {
        let key = self.key(rel);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&key, PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.error(&key, e)),
        }
    }

    /// Uploads the local object file `file` as `rel`: in one request when small, else in
    /// parts, streamed. The object appears under its key only once complete. Its bytes are
    /// hashed on the way: a local file that does not hash to `expected` is not sent.
    pub async fn upload_object(
        &self,
        rel: &str,
        file: PathBuf,
        size: u64,
        expected: crate::digest::Digest,
    ) -> Result<bool, RemoteError> {
        let damaged = || RemoteError::Damaged {
            remote: "this archive".into(),
            key: file.display().to_string(),
            detail: "its bytes do not match its name; run `vaultkeep archive verify`".into(),
        };
        let read_error =
            |e: std::io::Error| RemoteError::Local(crate::store::Error::io("read", &file)(e));
        if size <= ONE_REQUEST {
            let path = file.clone();
            let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|e| read_error(std::io::Error::other(e)))?
                .map_err(read_error)?;
            if crate::digest::Digest::of(&bytes) != expected {
                return Err(damaged());
            }
            return self.create(rel, Bytes::from(bytes)).await;
        }
        // Large: content-addressed, so an object already there holds the same bytes.
        let key = self.key(rel);
        if self.store.head(&key).await.is_ok() {
            return Ok(false);
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.error(&key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut hasher = crate::digest::Hasher::new();
        let mut reader = tokio::fs::File::open(&file).await.map_err(read_error)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            use tokio::io::AsyncReadExt;
            let n = match reader.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(read_error(e));
                }
            };
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            writer
                .wait_for_capacity(4)
                .await
                .map_err(|e| self.error(&key, e))?;
            writer.write(&buf[..n]);
        }
        if hasher.finish() != expected {
            let _ = writer.abort().await;
            return Err(damaged());
        }
        writer.finish().await.map_err(|e| self.error(&key, e))?;
        Ok(true)
    }

    /// The bytes of `rel`.
    pub async fn get(&self, rel: &str) -> Result<Bytes, RemoteError> {
        let key = self.key(rel);
        let got = self
            .store
            .get(&key)
            .await
            .map_err(|e| self.error(&key, e))?;
        got.bytes().await.map_err(|e| self.error(&key, e))
    }

    /// Deletes `rel` (remote gc).
    pub async fn delete(&self, rel: &str) -> Result<(), RemoteError> {
        let key = self.key(rel);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(&key, e)),
        }
    }

    /// One clear error for what the server said.
    fn error(&self, key: &Key, e: object_store::Error) -> RemoteError {
        let text = format!("{e:?} {e}");
        let remote = self.name.clone();
        let has = |s: &str| text.contains(s);
        if has("InvalidAccessKeyId") || has("SignatureDoesNotMatch") || has("InvalidToken") {
            RemoteError::Credentials { remote }
        } else if has("RequestTimeTooSkewed") || has("RequestExpired") {
            RemoteError::ClockSkew { remote }
        } else if has("NoSuchBucket") {
            RemoteError::NoBucket {
                bucket: self.bucket.clone(),
                endpoint: self.endpoint.clone(),
            }
        } else if matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) && !has("AccessDenied")
        {
            RemoteError::Credentials { remote }
        } else if has("AccessDenied")
            || has("QuotaExceeded")
            || has("StorageFull")
            || has("InsufficientStorage")
            || has("507")
            || has("ReadOnly")
        {
            RemoteError::Refused {
                remote,
                key: key.to_string(),
                detail: s3_code(&text).unwrap_or_else(|| match e {
                    object_store::Error::PermissionDenied { .. } => "access denied".into(),
                    _ => short(&e.to_string()),
                }),
            }
        } else {
            RemoteError::Unreachable {
                remote,
                detail: short(&e.to_string()),
            }
        }
    }
}

/// The S3 error code in a server's answer (`AccessDenied`, `QuotaExceeded`...).
fn s3_code(text: &str) -> Option<String> {
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(text[start..end].to_string())
}

/// The first line of a message, bounded (servers answer with whole XML documents).
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    line.chars().take(300).collect()
}

/// The access key, secret and session token: from the environment, or a profile of the
/// shared credentials file.
fn credentials(
    config: &RemoteConfig,
    remote: &str,
) -> Result<(String, String, Option<String>), RemoteError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(k), Some(s)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok((k, s, env("AWS_SESSION_TOKEN")));
    }
    let file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")))
        .unwrap_or_else(|| PathBuf::from("~/.aws/credentials"));
    let profile = config
        .profile
        .clone()
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let none = || RemoteError::NoCredentials {
        remote: remote.to_string(),
        file: file.display().to_string(),
    };
    let text = std::fs::read_to_string(&file).map_err(|_| none())?;
    let section = profile_section(&text, &profile).ok_or_else(none)?;
    match (
        section.get("aws_access_key_id"),
        section.get("aws_secret_access_key"),
    ) {
        (Some(k), Some(s)) => Ok((
            k.clone(),
            s.clone(),
            section.get("aws_session_token").cloned(),
        )),
        _ => Err(none()),
    }
}

/// The keys of one `[profile]` of an INI credentials file.
fn profile_section(text: &str, profile: &str) -> Option<std::collections::HashMap<String, String>> {
    let mut inside = false;
    let mut found = false;
    let mut keys = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            inside = name == profile || name == format!("profile {profile}");
            found |= inside;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            keys.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    found.then_some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_read_from_the_credentials_file() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n\
                    # the collective's bucket\n[profile atlas]\naws_access_key_id=C\n\
                    aws_secret_access_key=D\naws_session_token = T\n";
        let atlas = profile_section(text, "atlas").unwrap();
        assert_eq!(atlas["aws_access_key_id"], "C");
        assert_eq!(atlas["aws_session_token"], "T");
        assert_eq!(
            profile_section(text, "default").unwrap()["aws_secret_access_key"],
            "B"
        );
        assert!(profile_section(text, "other").is_none());
    }
}
