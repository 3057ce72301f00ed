//! The archive's object store: a local folder or S3, chosen by the URL's scheme.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Where files go: a store and the prefix of the archive in it.
#[derive(Debug, Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    root: Path,
}

impl Target {
    /// `options` are the config's; `AWS_*` environment variables are added (and win), as
    /// `AmazonS3Builder::from_env` would. Other stores ignore what they do not know.
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let parsed = muster_schemas::archive::parse_url(url).map_err(anyhow::Error::msg)?;
        let mut opts: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        for (k, v) in std::env::vars() {
            if k.starts_with("AWS_") {
                opts.insert(k.to_ascii_lowercase(), v);
            }
        }
        let (store, root) = object_store::parse_url_opts(&parsed, opts).with_context(|| {
            let hint = if parsed.scheme().starts_with("s3") && !cfg!(feature = "s3") {
                " (this muster was built without S3 support: build with --features muster-projections/s3)"
            } else {
                ""
            };
            format!("opening the archive at projections.archive.url {url:?}{hint}")
        })?;
        Ok(Self {
            store: Arc::from(store),
            root,
        })
    }

    /// `relative` below the root (relative paths come from `layout`, already encoded).
    pub fn location(&self, relative: &str) -> anyhow::Result<Path> {
        let full = if self.root.as_ref().is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.root)
        };
        Path::parse(&full).with_context(|| format!("archive path {full:?}"))
    }

    /// Writes a whole file or nothing: a reader never sees a partial one, and writing the same
    /// path again replaces it.
    pub async fn put(&self, relative: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let location = self.location(relative)?;
        self.store
            .put(&location, PutPayload::from(bytes))
            .await
            .with_context(|| format!("writing {location} to {}", self.store))?;
        Ok(())
    }
    /// Deletes every file of `topic` in a `date=` folder before `cutoff` (a whole UTC day
    /// past retention), and returns how many went. For personal data: privacy law wants
    /// check-ins gone after the configured time, in the archive as in Kafka.
    pub async fn prune_days_before(
        &self,
        topic: &str,
        cutoff: chrono::NaiveDate,
    ) -> anyhow::Result<usize> {
        use futures::TryStreamExt;
        let prefix = self.location(topic)?;
        let files: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .with_context(|| format!("listing {prefix} in {}", self.store))?;
        let mut deleted = 0;
        for meta in files {
            let day = meta
                .location
                .parts()
                .find_map(|p| p.as_ref().strip_prefix("date=").map(str::to_owned))
                .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
            if day.is_some_and(|d| d < cutoff) {
                self.store
                    .delete(&meta.location)
                    .await
                    .with_context(|| format!("deleting {} past retention", meta.location))?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_file_urls_name_the_same_root() {
        let none = BTreeMap::new();
        let a = Target::open("/var/lib/muster/archive", &none).unwrap();
        let b = Target::open("file:///var/lib/muster/archive/", &none).unwrap();
        let rel = "muster.raw.checkins.v1/date=2026-01-01/event=a%2Fb/part-0-1.parquet";
        assert_eq!(a.location(rel).unwrap(), b.location(rel).unwrap());
        assert_eq!(
            a.location(rel).unwrap().as_ref(),
            format!("var/lib/muster/archive/{rel}")
        );
        assert!(Target::open("relative/dir", &none).is_err());
    }

    #[tokio::test]
    async fn put_writes_the_encoded_name_once_on_disk() {
        let dir = std::env::temp_dir().join(format!("muster-archive-{}", std::process::id()));
        let target = Target::open(dir.to_str().unwrap(), &BTreeMap::new()).unwrap();
        let rel = "t/date=2026-01-01/event=a%2Fb/part-0-1.parquet";
        target.put(rel, b"one".to_vec()).await.unwrap();
        target.put(rel, b"two".to_vec()).await.unwrap();
        let on_disk = dir.join("t/date=2026-01-01/event=a%2Fb/part-0-1.parquet");
        assert_eq!(std::fs::read(&on_disk).unwrap(), b"two");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn pruning_deletes_whole_days_of_one_topic_before_the_cutoff() {
        let dir = std::env::temp_dir().join(format!("muster-prune-{}", std::process::id()));
        let target = Target::open(dir.to_str().unwrap(), &BTreeMap::new()).unwrap();
        for rel in [
            "c/date=2026-01-01/event=a/part-0-1.parquet",
            "c/date=2026-01-02/event=b/part-0-2.parquet",
            "c/date=2026-01-03/event=a/part-0-3.parquet",
            "n/date=2026-01-01/event=a/part-0-1.parquet",
        ] {
            target.put(rel, b"x".to_vec()).await.unwrap();
        }
        let cutoff = chrono::NaiveDate::from_ymd_opt(2026, 1, 3).unwrap();
        assert_eq!(target.prune_days_before("c", cutoff).await.unwrap(), 2);
        assert!(
            !dir.join("c/date=2026-01-02/event=b/part-0-2.parquet")
                .exists()
        );
        assert!(
            dir.join("c/date=2026-01-03/event=a/part-0-3.parquet")
                .exists()
        );
        assert!(
            dir.join("n/date=2026-01-01/event=a/part-0-1.parquet")
                .exists()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
